// A real Kubernetes cluster in the lab, the way users run the project: a kube-apiserver and etcd
// (the harness, with ServiceAccount admission and Node,RBAC authorization), the upstream
// kube-controller-manager and kube-scheduler, and three nodes as network namespaces on the lab
// bridge, each with its own containerd, kubelet and kube-proxy (realnode.ts). Pods are real:
// the images come from test/image/build.sh as OCI archives (no registry is reachable here).
//
//   segment 192.0.2.0/24 and 2001:db8::/64 (bridge): client .2 / ::2, api 192.0.2.3, node-N .1N / ::1N
//   pods: node-N owns 198.51.100.(N-1)*64/26 and 2001:db8:1:N::/64; Services: 198.51.100.192/27 and
//   2001:db8:ffff::/112 (dual stack, IPv4 first: the `kubernetes` Service is IPv4)
//
// The apiserver stays on the root namespace's 127.0.0.1 (../../../shared/LAB.md): kubelets and
// kube-proxies reach it through the lab's API forwarder on their own 127.0.0.1, and pods through
// the `kubernetes` Service, whose EndpointSlice (written here) points at a forwarder on
// 192.0.2.3:6443 in the `api` namespace.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startControlPlane, waitFor, type ControlPlane, type KubectlResult, type TokenUser } from '../controlplane/harness.js';
import { startApiForwarder, type ApiForwarder } from './apiforward.js';
import { Lab, type LabProcess, type Netns, type Port } from './lab.js';
import { startRealNode, type RealNode } from './realnode.js';
import { ipClients } from '../../api/client.js';
import { claimName } from '../../api/names.js';
import { startRequestLoop, type RequestLoop } from './requestloop.js';

const CONTROLPLANE_DIR = fileURLToPath(new URL('../controlplane/', import.meta.url));
const IMAGE_SCRIPT = fileURLToPath(new URL('../image/build.sh', import.meta.url));
export const PAUSE_IMAGE = 'localhost/ipcontroller-lab/pause:1';
export const SERVICE_CIDR = '198.51.100.192/27';
export const SERVICE_CIDR6 = '2001:db8:ffff::/112';
export const CLUSTER_CIDR = '198.51.100.0/25';
export const CLUSTER_CIDR6 = '2001:db8:1::/48';
const API_IP = '192.0.2.3';
const API_PORT = 6443;

export interface RealNodeAssets {
  kubelet: string;
  kubeProxy: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  containerdDir: string;
  cniDir: string;
  /** OCI archives: the project's image, nginx:1.27 and the sandbox image. */
  images: { ipcontroller: string; nginx: string; pause: string };
}

function lastLine(script: string, args: string[] = []): string {
  const out = execFileSync('bash', [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const line = out.split('\n').pop();
  if (!line) throw new Error(`${script} printed nothing`);
  return line;
}

/** Builds (or finds in the cache) the node binaries, containerd and the images. */
export function resolveRealNodeAssets(): RealNodeAssets {
  const nodes = lastLine(join(CONTROLPLANE_DIR, 'build.sh'), ['nodes']);
  const containerdDir = lastLine(join(CONTROLPLANE_DIR, 'build-containerd.sh'));
  const imageLines = execFileSync('bash', [IMAGE_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const images = Object.fromEntries(
    imageLines
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
  if (!images.ipcontroller || !images.nginx || !images.pause) throw new Error(`${IMAGE_SCRIPT} did not print every image: ${imageLines}`);
  return {
    kubelet: join(nodes, 'kubelet'),
    kubeProxy: join(nodes, 'kube-proxy'),
    kubeControllerManager: join(nodes, 'kube-controller-manager'),
    kubeScheduler: join(nodes, 'kube-scheduler'),
    containerdDir,
    cniDir: '/usr/lib/cni',
    images: { ipcontroller: images.ipcontroller, nginx: images.nginx, pause: images.pause },
  };
}

export interface RealClusterOptions {
  /** Lab prefix (default per run). */
  prefix?: string;
  handleSignals?: boolean;
  /** Labels each node registers with, by node name (default none: the README's `kubectl label` does it). */
  nodeLabels?: Record<string, Record<string, string>>;
  proxyMode?: 'iptables' | 'nftables';
  /** Name of the client's link (make e2e TESTLINK=...). */
  testlink?: string;
}

export interface RealCluster {
  lab: Lab;
  controlPlane: ControlPlane;
  nodes: RealNode[];
  client: { ns: Netns; port: Port; ip4: string };
  /** kubectl as the cluster admin, from the root namespace. */
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /** Like kubectl, but throws with stderr when it fails; returns stdout. */
  mustKubectl(args: string[], input?: string): Promise<string>;
  node(name: string): RealNode;
  /** One HTTP GET from the client namespace. */
  clientGet(url: string, timeoutSeconds?: number): Promise<{ ok: boolean; body: string }>;
  /** Names of the nodes whose eth0 holds address. */
  holders(address: string): Promise<string[]>;
  /** Waits until the claim for address is Assigned and confirmed by its node's agent (and not on `not`). */
  servingNode(address: string, not?: string, timeoutMs?: number): Promise<string>;
  /** A fresh HTTP request to http://address/ every intervalMs from the client namespace. */
  requestLoop(address: string, intervalMs: number, maxMs: number): RequestLoop;
  /** Hard failure of a node: its agent container paused (cgroup freezer) and its link cut. */
  fail(nodeName: string): Promise<void>;
  /** Undoes fail(): link and routes back, agent resumed. */
  recover(nodeName: string): Promise<void>;
  /** Start-up figures in seconds. */
  timings: Record<string, number>;
  /** Resident memory (MiB) of the control plane, each node's daemons and pods, and in total. */
  memory(): Record<string, number>;
  destroy(): Promise<void>;
}

export type { RequestLoop };

export const AGENT_NAMESPACE = 'ipcontroller-system';

export const NODE_PLAN = [
  {
    name: 'node-1',
    short: 'n1',
    ip4: '192.0.2.11',
    ip6: '2001:db8::11',
    mac: '02:00:00:00:01:11',
    podCidr: '198.51.100.0/26',
    podCidr6: '2001:db8:1:1::/64',
  },
  {
    name: 'node-2',
    short: 'n2',
    ip4: '192.0.2.12',
    ip6: '2001:db8::12',
    mac: '02:00:00:00:01:12',
    podCidr: '198.51.100.64/26',
    podCidr6: '2001:db8:1:2::/64',
  },
  {
    name: 'node-3',
    short: 'n3',
    ip4: '192.0.2.13',
    ip6: '2001:db8::13',
    mac: '02:00:00:00:01:13',
    podCidr: '198.51.100.128/26',
    podCidr6: '2001:db8:1:3::/64',
  },
];
const CLIENT = { ip4: '192.0.2.2', ip6: '2001:db8::2', mac: '02:00:00:00:01:02' };

// A node answers ARP only for addresses on the asking interface, forwards (kube-proxy DNAT to
// pods), and keeps IPv6 addresses on a cut link, as in the process lab.
const NODE_SYSCTLS = {
  'net.ipv4.ip_forward': 1,
  'net.ipv6.conf.all.forwarding': 1,
  'net.ipv4.conf.all.arp_ignore': 1,
  'net.ipv4.conf.all.arp_announce': 2,
  'net.ipv6.conf.all.keep_addr_on_down': 1,
};

function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** PIDs whose command line has an argument containing text. */
function pidsWithArg(text: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8')
          .split('\0')
          .some((a) => a.includes(text));
      } catch {
        return false;
      }
    })
    .map(Number);
}

function token(user: string, groups: string[]): TokenUser {
  return { token: randomBytes(16).toString('hex'), user, uid: user, groups };
}

function withToken(source: string, tokenValue: string, target: string): string {
  const doc = YAML.parse(readFileSync(source, 'utf8')) as { users?: { user: Record<string, unknown> }[] };
  for (const user of doc.users ?? []) user.user = { token: tokenValue };
  writeFileSync(target, YAML.stringify(doc));
  return target;
}

/** Routes a namespace on the segment needs: Services via its own eth0 (nodes only), pods via their node. */
async function addRoutes(lab: Lab, ns: Netns, self: string | undefined, ipv6 = true): Promise<void> {
  const ip = async (args: string[]): Promise<void> => {
    const r = await lab.exec(ns, ['ip', ...args]);
    if (r.code !== 0 && !r.stderr.includes('File exists')) throw new Error(`ip ${args.join(' ')} in ${ns.name}: ${r.stderr}`);
  };
  // Without a route, a node's own packet to a ClusterIP fails (ENETUNREACH) before kube-proxy's DNAT.
  if (self) {
    await ip(['route', 'replace', SERVICE_CIDR, 'dev', 'eth0']);
    await ip(['-6', 'route', 'replace', SERVICE_CIDR6, 'dev', 'eth0']);
  }
  for (const plan of NODE_PLAN) {
    if (plan.name === self) continue;
    await ip(['route', 'replace', plan.podCidr, 'via', plan.ip4]);
    if (ipv6) await ip(['-6', 'route', 'replace', plan.podCidr6, 'via', plan.ip6]);
  }
}

export async function startRealCluster(options: RealClusterOptions = {}): Promise<RealCluster> {
  const timings: Record<string, number> = {};
  const started = Date.now();
  let t = started;
  const lap = (step: string): void => {
    timings[step] = (Date.now() - t) / 1000;
    t = Date.now();
  };
  const assets = resolveRealNodeAssets();
  lap('assets');

  const nodeTokens = new Map(NODE_PLAN.map((p) => [p.name, token(`system:node:${p.name}`, ['system:nodes'])]));
  const proxyToken = token('system:kube-proxy', []);
  const kcmToken = token('system:kube-controller-manager', []);
  const schedulerToken = token('system:kube-scheduler', []);
  const controlPlane = await startControlPlane({
    installCrds: false,
    serviceAccountAdmission: true,
    authorizationModes: ['Node', 'RBAC'],
    extraTokens: [...nodeTokens.values(), proxyToken, kcmToken, schedulerToken],
    extraApiserverArgs: [`--service-cluster-ip-range=${SERVICE_CIDR},${SERVICE_CIDR6}`, '--kubelet-preferred-address-types=InternalIP'],
  });
  lap('control plane');

  const lab = Lab.create({ ...(options.prefix ? { prefix: options.prefix } : {}), handleSignals: options.handleSignals ?? true });
  let api: ApiForwarder | undefined;
  const destroy = async (): Promise<void> => {
    await lab.destroy();
    await api?.close();
    await controlPlane.stop();
  };
  try {
    const kubectl = (args: string[], input?: string): Promise<KubectlResult> => controlPlane.kubectl(args, input);
    const mustKubectl = async (args: string[], input?: string): Promise<string> => {
      const r = await kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    api = await startApiForwarder(lab, controlPlane.kubeconfigPath);
    const forwarder = api;

    // The `kubernetes` Service's backend for pods: a forwarder on the segment.
    const apiNs = await lab.addNamespace('api');
    await lab.attach(apiNs, { ifname: 'eth0', addresses: [`${API_IP}/24`] });
    await addRoutes(lab, apiNs, undefined, false);
    lab.spawn(apiNs, ['socat', `TCP-LISTEN:${API_PORT},bind=${API_IP},fork,reuseaddr`, `UNIX-CONNECT:${forwarder.socketPath}`], {
      label: 'socat',
    });
    await mustKubectl(
      ['apply', '-f', '-'],
      YAML.stringify({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: 'kubernetes-lab',
          namespace: 'default',
          labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'ipcontroller-lab' },
        },
        addressType: 'IPv4',
        endpoints: [{ addresses: [API_IP], conditions: { ready: true } }],
        ports: [{ name: 'https', port: API_PORT, protocol: 'TCP' }],
      }),
    );

    const clientNs = await lab.addNamespace('client');
    const clientPort = await lab.attach(clientNs, {
      ifname: options.testlink ?? 'testlink',
      mac: CLIENT.mac,
      addresses: [`${CLIENT.ip4}/24`, `${CLIENT.ip6}/64`],
    });

    // Controllers in the root namespace, on the apiserver's loopback address.
    const kcmKubeconfig = controlPlane.kubeconfigFor(kcmToken);
    const schedulerKubeconfig = controlPlane.kubeconfigFor(schedulerToken);
    lab.spawnRaw(
      [
        assets.kubeControllerManager,
        `--kubeconfig=${kcmKubeconfig}`,
        '--use-service-account-credentials=true',
        `--root-ca-file=${join(controlPlane.dir, 'pki', 'apiserver.crt')}`,
        `--service-account-private-key-file=${join(controlPlane.dir, 'sa.key')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR},${SERVICE_CIDR6}`,
        '--leader-elect=false',
        '--secure-port=0',
        // Pods on a node whose kubelet stops reporting are evicted after the default 5 minutes;
        // the lab never cuts a kubelet off the API, so this does not come up.
      ],
      { label: 'kube-controller-manager' },
    );
    lab.spawnRaw([assets.kubeScheduler, `--kubeconfig=${schedulerKubeconfig}`, '--leader-elect=false', '--secure-port=0'], {
      label: 'kube-scheduler',
    });

    const nodes = await Promise.all(
      NODE_PLAN.map(async (plan) => {
        const ns = await lab.addNamespace(plan.short, NODE_SYSCTLS);
        await lab.attach(ns, { ifname: 'eth0', mac: plan.mac, addresses: [`${plan.ip4}/24`, `${plan.ip6}/64`] });
        await addRoutes(lab, ns, plan.name);
        const base = await forwarder.kubeconfigFor(ns);
        const nodeToken = nodeTokens.get(plan.name) as TokenUser;
        return startRealNode(lab, {
          name: plan.name,
          ns,
          ip4: plan.ip4,
          ip6: plan.ip6,
          podCidr: plan.podCidr,
          podCidr6: plan.podCidr6,
          clusterCidr: `${CLUSTER_CIDR},${CLUSTER_CIDR6}`,
          kubeletKubeconfig: withToken(base, nodeToken.token, `${base}-kubelet`),
          proxyKubeconfig: withToken(base, proxyToken.token, `${base}-kube-proxy`),
          labels: options.nodeLabels?.[plan.name] ?? {},
          binaries: { kubelet: assets.kubelet, kubeProxy: assets.kubeProxy, containerdDir: assets.containerdDir, cniDir: assets.cniDir },
          images: [assets.images.pause, assets.images.ipcontroller, assets.images.nginx],
          sandboxImage: PAUSE_IMAGE,
          ...(options.proxyMode ? { proxyMode: options.proxyMode } : {}),
        });
      }),
    );
    lap('nodes started');
    for (const node of nodes) for (const [step, s] of Object.entries(node.timings)) timings[`${node.name} ${step}`] = s;

    const alive = (proc: LabProcess, what: string): void => {
      if (proc.child.exitCode !== null) throw new Error(`${what} exited; see ${proc.logFile}`);
    };
    await waitFor(
      'three nodes Ready',
      async () => {
        for (const node of nodes) {
          alive(node.kubelet, `kubelet of ${node.name}`);
          alive(node.kubeProxy, `kube-proxy of ${node.name}`);
        }
        const out = await kubectl([
          'get',
          'nodes',
          '-o',
          'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
        ]);
        return out.stdout.split('\n').filter((l) => l.endsWith('=True')).length === nodes.length;
      },
      120_000,
      250,
    );
    lap('nodes Ready');
    // Pods need the cluster's CA (published by the controller manager) and a token.
    await waitFor(
      'kube-root-ca.crt in default',
      async () => (await kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', 'default'])).code === 0,
      60_000,
      250,
    );
    await waitFor(
      'ServiceAccount default',
      async () => (await kubectl(['get', 'serviceaccount', 'default', '-n', 'default'])).code === 0,
      60_000,
      250,
    );
    lap('cluster ready');
    timings.total = (Date.now() - started) / 1000;

    const ip = ipClients(controlPlane.kubeConfig());
    const node = (name: string): RealNode => {
      const found = nodes.find((n) => n.name === name);
      if (!found) throw new Error(`no node ${name}`);
      return found;
    };
    const frozen = new Map<string, string>();
    return {
      lab,
      controlPlane,
      nodes,
      async holders(address) {
        const found: string[] = [];
        for (const n of nodes) {
          const r = await lab.exec(n.ns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
          const links = JSON.parse(r.stdout || '[]') as { addr_info?: { local?: string }[] }[];
          if (links.some((l) => l.addr_info?.some((a) => a.local === address))) found.push(n.name);
        }
        return found;
      },
      async servingNode(address, not, timeoutMs = 60_000) {
        let serving = '';
        await waitFor(
          `claim for ${address} assigned${not ? ` away from ${not}` : ''}`,
          async () => {
            const claim = await ip.claims.get(claimName(address));
            serving = claim?.status?.phase === 'Assigned' && claim.status.node === claim.spec.nodeName ? (claim.status.node ?? '') : '';
            return serving !== '' && serving !== not;
          },
          timeoutMs,
          20,
        );
        return serving;
      },
      requestLoop(address, intervalMs, maxMs) {
        return startRequestLoop(lab, clientNs, `http://${address}/`, { intervalMs, maxMs, steadyTimeoutMs: 30_000 });
      },
      async fail(name) {
        const n = node(name);
        const listed = await n.ctr(['tasks', 'list']);
        const running = new Set(
          listed.stdout
            .split('\n')
            .filter((l) => l.includes('RUNNING'))
            .map((l) => l.split(/\s+/)[0]),
        );
        const container = (await n.containers(AGENT_NAMESPACE, 'agent')).find((id) => running.has(id));
        if (!container) throw new Error(`no running agent container on ${name}`);
        const paused = await n.ctr(['tasks', 'pause', container]);
        if (paused.code !== 0) throw new Error(`pausing the agent on ${name}: ${paused.stderr}`);
        frozen.set(name, container);
        await lab.exec(n.ns, ['ip', 'link', 'set', 'eth0', 'down']);
      },
      async recover(name) {
        const n = node(name);
        await lab.exec(n.ns, ['ip', 'link', 'set', 'eth0', 'up']);
        // A link going down takes its routes with it.
        await addRoutes(lab, n.ns, name);
        const container = frozen.get(name);
        if (container) await n.ctr(['tasks', 'resume', container]);
        frozen.delete(name);
      },
      client: { ns: clientNs, port: clientPort, ip4: CLIENT.ip4 },
      kubectl,
      mustKubectl,
      node,
      async clientGet(url, timeoutSeconds = 2) {
        const r = await lab.exec(clientNs, ['curl', '-s', '-g', '-m', String(timeoutSeconds), url]);
        return { ok: r.code === 0, body: r.stdout };
      },
      timings,
      memory() {
        const mib = (pids: number[]): number => Math.round(pids.reduce((sum, pid) => sum + rssKiB(pid), 0) / 1024);
        const report: Record<string, number> = {
          'etcd + kube-apiserver': mib(pidsWithArg(controlPlane.dir)),
          'controller-manager, scheduler, lab helpers': mib(
            [...lab.processes]
              .filter((p) => !nodes.some((n) => [n.containerd, n.kubelet, n.kubeProxy].includes(p)))
              .map((p) => p.child.pid ?? 0),
          ),
        };
        for (const node of nodes) {
          report[`${node.name} containerd`] = mib([node.containerd.child.pid ?? 0]);
          report[`${node.name} kubelet`] = mib([node.kubelet.child.pid ?? 0]);
          report[`${node.name} kube-proxy`] = mib([node.kubeProxy.child.pid ?? 0]);
          report[`${node.name} pods + shims`] = mib(node.podPids());
        }
        report.total = Object.values(report).reduce((a, b) => a + b, 0);
        return report;
      },
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}
