// The two-node lab the e2e tests, the failover benchmark and the demo share: one L2 segment
// (a bridge in its own namespace), three node namespaces (node-1 and node-2 labelled
// ipcontroller= and running agents, node-3 not), two scheduler replicas in their own
// namespaces on the same segment (so their probes cross the network a fault cuts), and a
// client namespace whose test link reaches the external IPs, as the original's --testlink did.
// Each node also runs an HTTP server answering with its name, standing in for kube-proxy and
// the pod behind a Service.
import { readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CoordinationV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { claimName } from '../../api/names.js';
import { AGENT_NODE_LABEL } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import {
  Lab,
  startAgentProcess,
  startApiForwarder,
  type AgentProcess,
  type ApiForwarder,
  type LabProcess,
  type Netns,
  type Port,
} from '../lab/index.js';
import { downtimeAround, type Downtime, type RequestResult } from '../support/downtime.js';
import { startRequestLoop, type RequestLoop } from '../lab/requestloop.js';
import {
  AGENT_POLICY_MANIFEST,
  agentPod,
  agentPolicyInForce,
  applyManifest,
  kubeConfigForToken,
  podBoundToken,
  serviceAccountTokenBound,
} from '../support/agent-identity.js';

const CLI = fileURLToPath(new URL('../../cli.ts', import.meta.url));
const ECHO = fileURLToPath(new URL('./echo-server.ts', import.meta.url));

export const AGENT_PORT = 9610;
export const SCHEDULER_PORT = 9611;
export const ECHO_PORT = 80;
// The namespace examples/auth.yaml creates; the scheduler's Role allows Leases only there.
export const LEASE_NAMESPACE = 'ipcontroller-system';
export const LEASE_NAME = 'ipcontroller-scheduler';

export interface LabNode {
  name: string;
  ns: Netns;
  port: Port;
  ip4: string;
  ip6: string;
  labelled: boolean;
  echo: LabProcess;
  agent?: AgentProcess;
}

export interface SchedulerReplica {
  identity: string;
  ns: Netns;
  ip4: string;
  proc: LabProcess;
}

export type { RequestLoop };

/** A fault applied to the serving node while the client kept asking. */
export interface Move {
  from: string;
  to: string;
  /** When the fault was applied (ms since the epoch). */
  at: number;
  results: RequestResult[];
  downtime: Downtime | null;
}

export interface TwoNodeLabOptions {
  /** Root-namespace kubeconfig of the control plane. */
  kubeconfigPath: string;
  /** Name of the client's link inside the client namespace (make e2e TESTLINK=...). */
  testlink?: string;
  /** Extra agent flags, e.g. ['--garp-interval', '200ms']. */
  agentArgs?: string[];
  /** Extra scheduler flags. */
  schedulerArgs?: string[];
  /** Lab prefix (default per run). */
  prefix?: string;
  /** Install SIGINT/SIGTERM handlers that tear the lab down (default true). */
  handleSignals?: boolean;
  /**
   * Run agents and schedulers as the ServiceAccounts of examples/auth.yaml, with tokens from
   * the TokenRequest API, so every scenario also proves the RBAC rules, and each agent with a
   * token bound to a Pod on its node under examples/agent-policy.yaml, as a kubelet would give
   * it, so every scenario also runs under the policy (default true).
   */
  serviceAccounts?: boolean;
}

export const AGENT_ACCOUNT = { namespace: 'ipcontroller-system', name: 'ipcontroller-agent' };
export const SCHEDULER_ACCOUNT = { namespace: 'ipcontroller-system', name: 'ipcontroller-scheduler' };
const AUTH_MANIFEST = fileURLToPath(new URL('../../examples/auth.yaml', import.meta.url));

/** A token for a ServiceAccount from the TokenRequest API, bound to nothing. */
export function serviceAccountToken(core: CoreV1Api, account: { namespace: string; name: string }): Promise<string> {
  return serviceAccountTokenBound(core, account, undefined);
}

/** A copy of a kubeconfig that authenticates with token instead of its own credentials. */
export function kubeconfigWithToken(source: string, token: string, target: string): string {
  const doc = YAML.parse(readFileSync(source, 'utf8')) as { users?: { name: string; user: Record<string, unknown> }[] };
  for (const user of doc.users ?? []) user.user = { token };
  writeFileSync(target, YAML.stringify(doc));
  return target;
}

export interface TwoNodeLab {
  lab: Lab;
  /** The lab's API forwarders: pause(ns)/resume(ns) black-hole one namespace's API connection. */
  api: ApiForwarder;
  kc: KubeConfig;
  core: CoreV1Api;
  ip: IpClients;
  nodes: LabNode[];
  client: { ns: Netns; port: Port; ip4: string; ip6: string };
  schedulers: SchedulerReplica[];
  node(name: string): LabNode;
  /** The identity holding the scheduler Lease, if any. */
  leader(): Promise<string | undefined>;
  /** One HTTP GET from the client namespace; body is the answering node's name. */
  clientGet(ip: string, timeoutSeconds?: number): Promise<{ ok: boolean; body: string }>;
  /** A request every intervalMs from the client namespace, bounded by maxMs. */
  requestLoop(ip: string, intervalMs: number, maxMs: number): RequestLoop;
  /** Names of the lab nodes whose interface holds ip. */
  holders(ip: string): Promise<string[]>;
  /**
   * Waits until the claim for ip is Assigned and the agent of its node confirmed it (and, with
   * `not`, that node is another one); returns the node.
   */
  servingNode(ip: string, options?: { not?: string; timeoutMs?: number }): Promise<string>;
  /** The scheduler replica holding the Lease, if it is one of the lab's. */
  leaderReplica(): Promise<SchedulerReplica | undefined>;
  /**
   * With loop asking ip: waits for steady answers, applies fault to the node serving ip, waits
   * until another node has confirmed the claim and answers are steady again, and reads the
   * client's downtime around the fault.
   */
  move(loop: RequestLoop, ip: string, fault: (node: LabNode) => void | Promise<void>): Promise<Move>;
  /** Hard failure: freeze the node's agent (SIGSTOP) and cut its link. */
  fail(node: LabNode): Promise<void>;
  /** Undo fail(): link up, agent resumed. */
  recover(node: LabNode): Promise<void>;
  /** Starts (or restarts) the agent of a labelled node and waits until it is ready. */
  startAgent(node: LabNode): Promise<AgentProcess>;
  /** Starts a scheduler replica again after it was stopped or killed. */
  startScheduler(replica: SchedulerReplica): SchedulerReplica;
  destroy(): Promise<void>;
}

const NODE_PLAN = [
  { name: 'node-1', ip4: '192.0.2.11', ip6: '2001:db8::11', mac: '02:00:00:00:00:11', labelled: true },
  { name: 'node-2', ip4: '192.0.2.12', ip6: '2001:db8::12', mac: '02:00:00:00:00:12', labelled: true },
  { name: 'node-3', ip4: '192.0.2.13', ip6: '2001:db8::13', mac: '02:00:00:00:00:13', labelled: false },
];
const SCHEDULER_PLAN = [
  { identity: 'scheduler-a', ip4: '192.0.2.21' },
  { identity: 'scheduler-b', ip4: '192.0.2.22' },
];
const CLIENT = { ip4: '192.0.2.2', ip6: '2001:db8::2', mac: '02:00:00:00:00:02' };

/** Per-namespace sysctls: answer ARP only for addresses on the asking interface, as a node would. */
// keep_addr_on_down: a cut link (ip link set down) must not flush IPv6 addresses, or a node
// that comes back would have lost its own address rather than just its claims.
const NODE_SYSCTLS = {
  'net.ipv4.conf.all.arp_ignore': 1,
  'net.ipv4.conf.all.arp_announce': 2,
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
  'net.ipv6.conf.all.keep_addr_on_down': 1,
  'net.ipv6.conf.default.keep_addr_on_down': 1,
};

async function registerNode(core: CoreV1Api, plan: (typeof NODE_PLAN)[number]): Promise<void> {
  const body: V1Node = {
    metadata: { name: plan.name, labels: { 'kubernetes.io/hostname': plan.name, ...(plan.labelled ? { [AGENT_NODE_LABEL]: '' } : {}) } },
  };
  try {
    await core.deleteNode({ name: plan.name });
  } catch {
    /* not there */
  }
  await core.createNode({ body });
  await core.replaceNodeStatus({
    name: plan.name,
    body: {
      ...body,
      status: {
        addresses: [
          { type: 'InternalIP', address: plan.ip4 },
          { type: 'Hostname', address: plan.name },
        ],
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'LabNode',
            message: 'network-namespace node',
            lastHeartbeatTime: new Date(),
            lastTransitionTime: new Date(),
          },
        ],
      },
    },
  });
}

export async function startTwoNodeLab(options: TwoNodeLabOptions): Promise<TwoNodeLab> {
  const lab = Lab.create({ ...(options.prefix ? { prefix: options.prefix } : {}), handleSignals: options.handleSignals ?? true });
  let forwarder: ApiForwarder | undefined;
  const destroy = async (): Promise<void> => {
    await lab.destroy();
    await forwarder?.close();
  };
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(options.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const coordination = kc.makeApiClient(CoordinationV1Api);
    const ip = ipClients(kc);
    forwarder = await startApiForwarder(lab, options.kubeconfigPath);
    const api = forwarder;
    const useAccounts = options.serviceAccounts ?? true;
    // examples/auth.yaml: namespace, ServiceAccounts, RBAC; then the agent's node policy.
    await applyManifest(kc, AUTH_MANIFEST);
    if (useAccounts) await applyManifest(kc, AGENT_POLICY_MANIFEST);
    const schedulerToken = useAccounts ? await serviceAccountToken(core, SCHEDULER_ACCOUNT) : undefined;
    /** Each agent's token, bound to a Pod on its node (made once its Node exists). */
    const agentTokens = new Map<string, string>();
    /** The kubeconfig a process in ns uses: through the forwarder, as token's account (or admin). */
    const kubeconfigIn = async (ns: Netns, role: string, token: string | undefined): Promise<string> => {
      const path = await api.kubeconfigFor(ns);
      return token ? kubeconfigWithToken(path, token, `${path}-${role}`) : path;
    };

    const clientNs = await lab.addNamespace('client');
    const clientPort = await lab.attach(clientNs, {
      ifname: options.testlink ?? 'testlink',
      mac: CLIENT.mac,
      addresses: [`${CLIENT.ip4}/24`, `${CLIENT.ip6}/64`],
    });

    const nodes: LabNode[] = [];
    for (const plan of NODE_PLAN) {
      const ns = await lab.addNamespace(plan.name.replace('node-', 'n'), NODE_SYSCTLS);
      const port = await lab.attach(ns, { ifname: 'eth0', mac: plan.mac, addresses: [`${plan.ip4}/24`, `${plan.ip6}/64`] });
      await registerNode(core, plan);
      if (useAccounts && plan.labelled)
        agentTokens.set(plan.name, await podBoundToken(core, AGENT_ACCOUNT, await agentPod(core, AGENT_ACCOUNT, plan.name)));
      const echo = lab.spawn(ns, [process.execPath, '--import', 'tsx', ECHO, plan.name, String(ECHO_PORT)], { label: 'echo' });
      nodes.push({ name: plan.name, ns, port, ip4: plan.ip4, ip6: plan.ip6, labelled: plan.labelled, echo });
    }

    // The policy takes effect a few hundred ms after it is created; every scenario runs under it.
    const [firstAgent] = agentTokens;
    if (firstAgent) await agentPolicyInForce(kubeConfigForToken(kc, firstAgent[1]), `not-${firstAgent[0]}`);

    const startAgent = async (node: LabNode): Promise<AgentProcess> => {
      const agent = startAgentProcess(lab, node.ns, {
        kubeconfig: await kubeconfigIn(node.ns, 'agent', agentTokens.get(node.name)),
        hostname: node.name,
        iface: 'eth0',
        port: AGENT_PORT,
        // The scheduler probes across the segment, so the status server listens on every address.
        args: ['--metrics-bind', `0.0.0.0:${AGENT_PORT}`, '--probe-address', node.ip4, ...(options.agentArgs ?? [])],
      });
      node.agent = agent;
      await agent.ready();
      return agent;
    };
    await Promise.all(nodes.filter((n) => n.labelled).map(startAgent));

    const schedulerKubeconfigs = new Map<string, string>();
    const startScheduler = (replica: SchedulerReplica): SchedulerReplica => {
      replica.proc = lab.spawn(
        replica.ns,
        [
          process.execPath,
          '--import',
          'tsx',
          CLI,
          'scheduler',
          '--kubeconfig',
          schedulerKubeconfigs.get(replica.identity) ?? '',
          '--identity',
          replica.identity,
          '--lease-namespace',
          LEASE_NAMESPACE,
          '--lease-name',
          LEASE_NAME,
          '--metrics-bind',
          `0.0.0.0:${SCHEDULER_PORT}`,
          ...(options.schedulerArgs ?? []),
        ],
        { label: `scheduler-${Date.now().toString(36)}` },
      );
      return replica;
    };
    const schedulers: SchedulerReplica[] = [];
    for (const plan of SCHEDULER_PLAN) {
      const ns = await lab.addNamespace(plan.identity.replace('scheduler-', 's'));
      await lab.attach(ns, { ifname: 'eth0', addresses: [`${plan.ip4}/24`] });
      schedulerKubeconfigs.set(plan.identity, await kubeconfigIn(ns, 'scheduler', schedulerToken));
      const replica = { identity: plan.identity, ns, ip4: plan.ip4 } as SchedulerReplica;
      schedulers.push(startScheduler(replica));
    }

    const leader = async (): Promise<string | undefined> => {
      try {
        const lease = await coordination.readNamespacedLease({ name: LEASE_NAME, namespace: LEASE_NAMESPACE });
        return lease.spec?.holderIdentity ?? undefined;
      } catch {
        return undefined;
      }
    };
    await waitFor('a scheduler leader', async () => (await leader()) !== undefined, 30_000, 200);
    await waitFor(
      'both agents Ready as seen by the scheduler',
      async () => {
        const listed = await ip.nodes.list();
        const fresh = listed.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return fresh.length >= 2;
      },
      30_000,
      200,
    );

    const holders = async (address: string): Promise<string[]> => {
      const found: string[] = [];
      for (const node of nodes) {
        const r = await lab.exec(node.ns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
        const links = JSON.parse(r.stdout || '[]') as { addr_info?: { local?: string }[] }[];
        if (links.some((l) => l.addr_info?.some((a) => a.local === address))) found.push(node.name);
      }
      return found;
    };

    const handle: TwoNodeLab = {
      lab,
      api,
      kc,
      core,
      ip,
      nodes,
      client: { ns: clientNs, port: clientPort, ip4: CLIENT.ip4, ip6: CLIENT.ip6 },
      schedulers,
      node(name) {
        const found = nodes.find((n) => n.name === name);
        if (!found) throw new Error(`no lab node ${name}`);
        return found;
      },
      leader,
      async clientGet(address, timeoutSeconds = 2) {
        const host = address.includes(':') ? `[${address}]` : address;
        const r = await lab.exec(clientNs, ['curl', '-s', '-g', '-m', String(timeoutSeconds), `http://${host}:${ECHO_PORT}/`]);
        return { ok: r.code === 0, body: r.stdout.trim() };
      },
      requestLoop(address, intervalMs, maxMs) {
        const host = address.includes(':') ? `[${address}]` : address;
        return startRequestLoop(lab, clientNs, `http://${host}:${ECHO_PORT}/`, { intervalMs, maxMs, steadyTimeoutMs: 15_000 });
      },
      holders,
      async servingNode(address, { not, timeoutMs = 20_000 } = {}) {
        let node = '';
        await waitFor(
          `claim for ${address} assigned${not ? ` away from ${not}` : ''}`,
          async () => {
            const claim = await ip.claims.get(claimName(address));
            const confirmed = claim?.status?.phase === 'Assigned' && claim.status.node === claim.spec.nodeName;
            node = confirmed ? (claim?.status?.node ?? '') : '';
            return node !== '' && node !== not;
          },
          timeoutMs,
          20,
        );
        return node;
      },
      async leaderReplica() {
        const identity = await leader();
        return schedulers.find((s) => s.identity === identity);
      },
      async move(loop, address, fault) {
        const from = await handle.servingNode(address);
        await loop.steady(10);
        const at = Date.now();
        await fault(handle.node(from));
        const to = await handle.servingNode(address, { not: from });
        await loop.steady(5);
        await loop.settled();
        const results = loop.results();
        return { from, to, at, results, downtime: downtimeAround(results, at) };
      },
      async fail(node) {
        node.agent?.proc.signal('SIGSTOP');
        await lab.exec(node.ns, ['ip', 'link', 'set', 'eth0', 'down']);
      },
      async recover(node) {
        await lab.exec(node.ns, ['ip', 'link', 'set', 'eth0', 'up']);
        node.agent?.proc.signal('SIGCONT');
      },
      startAgent,
      startScheduler,
      destroy,
    };
    return handle;
  } catch (err) {
    await destroy();
    throw err;
  }
}
