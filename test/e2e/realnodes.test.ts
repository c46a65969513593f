// End to end on real nodes, the way users run the project (test/lab/realcluster.ts): three
// kubelets with containerd and kube-proxy, the image built from the repository's Dockerfile,
// the manifests of examples/ applied with kubectl as the README says. The client's requests go
// external IP -> node -> kube-proxy DNAT -> nginx pod. Run with `sudo make e2e`.
import { test } from 'uvu';
import { README_INSTALL } from '../support/readme-install.js';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ipClients, type IpClients } from '../../api/client.js';
import { claimName } from '../../api/names.js';
import { waitFor } from '../controlplane/harness.js';
import { neighbour, run, startCapture, type Capture } from '../lab/index.js';
import { NODE_PLAN, startRealCluster, type RealCluster } from '../lab/realcluster.js';
import { downtimeAround, type RequestResult } from '../support/downtime.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SYSTEM_NS = 'ipcontroller-system';
const NGINX_PAGE = 'Welcome to nginx!';
let cluster: RealCluster;
let ip: IpClients;
let capture: Capture;
const log = (message: string): void => void process.stderr.write(`  real nodes: ${message}\n`);

test.before(async () => {
  try {
    cluster = await startRealCluster(process.env.TESTLINK ? { testlink: process.env.TESTLINK } : {});
    ip = ipClients(cluster.controlPlane.kubeConfig());
    capture = await startCapture(cluster.client.ns, cluster.client.port.ifname);
    const t = cluster.timings;
    log(
      `cluster up in ${t.total?.toFixed(1)} s (${Object.entries(t)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')})`,
    );
  } catch (err) {
    // uvu counts a failed before-hook against every test but does not print it.
    console.error('the real-node lab did not start:', err);
    throw err;
  }
});
test.after(async () => {
  const t0 = Date.now();
  await capture?.stop();
  await cluster?.destroy();
  log(`torn down in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

const holders = (address: string): Promise<string[]> => cluster.holders(address);
const servingNode = (address: string, not?: string, timeoutMs?: number): Promise<string> => cluster.servingNode(address, not, timeoutMs);

async function nginxThrough(address: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `nginx's page through ${address}`,
    async () => (await cluster.clientGet(`http://${address}/`, 1)).body.includes(NGINX_PAGE),
    timeoutMs,
    200,
  );
}

async function rollout(kind: string, namespace: string): Promise<void> {
  const r = await cluster.kubectl(['rollout', 'status', kind, '-n', namespace, '--timeout=180s']);
  assert.is(r.code, 0, `rollout of ${kind}: ${r.stderr}`);
}

// README.md's install sequence, then the look a user takes.
const INSTALL = [...README_INSTALL, ['get', 'ipclaims']];

test('real nodes 1. the README install sequence: kubectl get svc shows the external IP, the client gets nginx through kube-proxy', async () => {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  for (const args of INSTALL) {
    const shown = `kubectl ${args.join(' ')}`.replace(/node-\d/, 'NODE');
    assert.ok(readme.includes(shown), `README.md says: ${shown}`);
    const r = await cluster.kubectl(args.map((a) => (a.startsWith('examples/') ? `${root}${a}` : a)));
    assert.is(r.code, 0, `${shown}: ${r.stderr}`);
  }
  const t0 = Date.now();
  await rollout('daemonset/ipcontroller-agent', SYSTEM_NS);
  await rollout('deployment/ipcontroller-scheduler', SYSTEM_NS);
  await rollout('deployment/nginx', 'default');
  log(`agents, schedulers and nginx rolled out ${((Date.now() - t0) / 1000).toFixed(1)} s after the last kubectl apply`);

  let external = '';
  await waitFor(
    'nginx external IP',
    async () => {
      external = (await cluster.kubectl(['get', 'svc', 'nginx', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).stdout;
      return external !== '';
    },
    30_000,
    200,
  );
  const table = await cluster.mustKubectl(['get', 'svc', 'nginx']);
  assert.match(table, new RegExp(`nginx\\s+LoadBalancer\\s+\\S+\\s+${external.replace(/\./g, '\\.')}\\s+80:`), table);
  const node = await servingNode(external);
  assert.ok(['node-1', 'node-2'].includes(node), `${external} is on a labelled node (${node})`);
  assert.equal(await holders(external), [node]);
  await nginxThrough(external);
  // The agent's announcement (NET_RAW) reached the client, and its ARP entry names the node.
  const mac = NODE_PLAN.find((p) => p.name === node)?.mac;
  await capture.waitFor(
    `announcement of ${external}`,
    (f) => f.srcMac === mac && f.arp?.senderIp === external && f.arp.targetIp === external,
    15_000,
  );
  assert.is((await neighbour(cluster.lab, cluster.client.ns, external))?.mac, mac);

  // The agent pods run with exactly the manifest's security context, and are Ready.
  const manifest = YAML.parseAllDocuments(readFileSync(`${root}examples/claims/controller.yaml`, 'utf8'))[0]?.toJS() as {
    spec: { template: { spec: { hostNetwork: boolean; containers: { securityContext: unknown }[] } } };
  };
  const pods = JSON.parse(
    await cluster.mustKubectl(['get', 'pods', '-n', SYSTEM_NS, '-l', 'app.kubernetes.io/component=agent', '-o', 'json']),
  ) as {
    items: {
      spec: { nodeName: string; hostNetwork?: boolean; containers: { securityContext: unknown }[] };
      status: { conditions?: { type: string; status: string }[] };
    }[];
  };
  assert.equal(pods.items.map((p) => p.spec.nodeName).sort(), ['node-1', 'node-2']);
  for (const pod of pods.items) {
    assert.is(pod.spec.hostNetwork, manifest.spec.template.spec.hostNetwork);
    assert.equal(pod.spec.containers[0]?.securityContext, manifest.spec.template.spec.containers[0]?.securityContext);
    assert.ok(
      pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      `agent on ${pod.spec.nodeName} Ready`,
    );
  }
  log(`nginx at ${external} served through ${node}`);
  // Where the schedulers run: the manifest prefers node-3, the one node without an agent.
  const schedulerNodes = await cluster.mustKubectl([
    'get',
    'pods',
    '-n',
    SYSTEM_NS,
    '-l',
    'app.kubernetes.io/component=scheduler',
    '-o',
    'jsonpath={.items[*].spec.nodeName}',
  ]);
  log(`schedulers on ${schedulerNodes}`);
  log(
    `memory (RSS MiB): ${Object.entries(cluster.memory())
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
});

// A backend on the unlabelled node-3, so cutting the serving node never cuts the backend.
const WEB_IP = '192.0.2.60';
const WEB = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: default }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node-3 }
      containers:
        - { name: nginx, image: "nginx:1.27", ports: [{ containerPort: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  selector: { app: web }
  externalIPs: [${WEB_IP}]
  ports: [{ name: http, port: 80, targetPort: 80 }]
`;

test('real nodes 4. hard failure of the serving node (agent container frozen, link cut): the client follows', async () => {
  await cluster.mustKubectl(['apply', '-f', '-'], WEB);
  await rollout('deployment/web', 'default');
  const from = await servingNode(WEB_IP);
  await nginxThrough(WEB_IP);
  const leader = (
    await cluster.kubectl(['get', 'lease', 'ipcontroller-scheduler', '-n', SYSTEM_NS, '-o', 'jsonpath={.spec.holderIdentity}'])
  ).stdout;
  const leaderNode = (await cluster.kubectl(['get', 'pod', leader, '-n', SYSTEM_NS, '-o', 'jsonpath={.spec.nodeName}'])).stdout;

  const loop = cluster.requestLoop(WEB_IP, 20, 120_000);
  let at: number;
  let to = '';
  try {
    await loop.steady(10);
    at = Date.now();
    await cluster.fail(from);
    to = await servingNode(WEB_IP, from);
    await loop.steady(10);
  } finally {
    await loop.stop();
    await cluster.recover(from);
  }
  const downtime = downtimeAround(loop.results(), at);
  assert.ok(downtime, 'the client had answers before and after the fault');
  assert.ok(['node-1', 'node-2'].includes(to) && to !== from);
  assert.equal(await holders(WEB_IP).then((h) => h.filter((n) => n === to)), [to]);
  assert.is((await neighbour(cluster.lab, cluster.client.ns, WEB_IP))?.mac, NODE_PLAN.find((p) => p.name === to)?.mac);
  log(
    `hard failover ${WEB_IP}: ${from} -> ${to}, client downtime ${downtime?.downtimeMs} ms (scheduler leader on ${leaderNode}${leaderNode === from ? ', the cut node' : ''})`,
  );
  // The old node's agent comes back: it withdraws the address it no longer owns.
  await waitFor(`${from} no longer holds ${WEB_IP}`, async () => !(await holders(WEB_IP)).includes(from), 60_000, 200);
  await rollout('daemonset/ipcontroller-agent', SYSTEM_NS);
});

test('real nodes 5. kubectl rollout restart of the agents: no downtime; at most the request in flight at each handover is reset', async () => {
  const before = await servingNode(WEB_IP);
  await nginxThrough(WEB_IP);
  const loop = cluster.requestLoop(WEB_IP, 20, 300_000);
  let results: RequestResult[];
  const t0 = Date.now();
  // Where the address is, sampled through the rollout, to count handovers.
  const seen: string[] = [before];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const claim = await ip.claims.get(claimName(WEB_IP)).catch(() => undefined);
      const node = claim?.spec.nodeName;
      if (node && node !== seen[seen.length - 1]) seen.push(node);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await loop.steady(10);
    await cluster.mustKubectl(['rollout', 'restart', 'daemonset/ipcontroller-agent', '-n', SYSTEM_NS]);
    await rollout('daemonset/ipcontroller-agent', SYSTEM_NS);
    await servingNode(WEB_IP);
    await loop.steady(25);
  } finally {
    results = await loop.stop();
    sampling = false;
    await sampler;
  }
  const failed = results.filter((r) => !r.ok);
  const handovers = seen.length - 1;
  let longestGap = 0;
  let lastOk = results.find((r) => r.ok)?.t ?? 0;
  for (const r of results) {
    if (!r.ok) continue;
    longestGap = Math.max(longestGap, r.t - lastOk);
    lastOk = r.t;
  }
  log(
    `rollout restart: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${results.length - failed.length} of ${results.length} requests answered, ` +
      `${handovers} handover(s) ${seen.join(' -> ')}, longest gap between answers ${longestGap} ms, failures: ${JSON.stringify(failed.map((f) => f.error))}`,
  );
  assert.ok(handovers >= 1, 'the serving agent was restarted, so the address was handed over');
  // A connection open at the moment the client's ARP entry moves to the new node is reset
  // there (the new node has no state for it): L2 failover cannot keep it. Anything more is a fault.
  assert.ok(failed.length <= handovers, `at most one reset per handover: ${JSON.stringify(failed)}`);
  assert.ok(
    failed.every((f) => f.error === 'read ECONNRESET'),
    `only connections reset in flight: ${JSON.stringify(failed)}`,
  );
  // No window without service: the new node answered before the old one let go (the bound
  // leaves room for a busy machine; a hard failover here leaves about 1 s).
  assert.ok(longestGap < 500, `longest gap between answers ${longestGap} ms: no outage (a hard failover leaves about 1 s)`);
});

test('real nodes 6. the scheduler leader pod deleted: the standby takes over and a Service created meanwhile gets its address', async () => {
  const lease = (): Promise<string> =>
    cluster
      .kubectl(['get', 'lease', 'ipcontroller-scheduler', '-n', SYSTEM_NS, '-o', 'jsonpath={.spec.holderIdentity}'])
      .then((r) => r.stdout);
  const leader = await lease();
  assert.ok(leader, 'a scheduler leader');
  await cluster.mustKubectl(['delete', 'pod', leader, '-n', SYSTEM_NS, '--wait=false']);
  const address = '192.0.2.61';
  await cluster.mustKubectl(
    ['apply', '-f', '-'],
    WEB.split('---')[1]
      ?.replace(/name: web/, 'name: web-late')
      .replace(WEB_IP, address),
  );
  await waitFor(
    'a new scheduler leader',
    async () => {
      const now = await lease();
      return now !== '' && now !== leader;
    },
    60_000,
    200,
  );
  await servingNode(address);
  await nginxThrough(address);
  log(`leader ${leader} deleted; ${await lease()} took over; web-late at ${address} served`);
  await rollout('deployment/ipcontroller-scheduler', SYSTEM_NS);
});

const WEB6_IP = '2001:db8::100';
test('real nodes 7. IPv6: an externalIPs address from 2001:db8::/64 on an IPv6 Service reaches nginx through kube-proxy', async () => {
  await cluster.mustKubectl(
    ['apply', '-f', '-'],
    `apiVersion: v1
kind: Service
metadata: { name: web6, namespace: default }
spec:
  selector: { app: web }
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  externalIPs: ["${WEB6_IP}"]
  ports: [{ name: http, port: 80, targetPort: 80 }]
`,
  );
  const node = await servingNode(WEB6_IP);
  assert.ok(['node-1', 'node-2'].includes(node));
  assert.equal(await holders(WEB6_IP), [node]);
  await nginxThrough(`[${WEB6_IP}]`);
  // The agent's unsolicited NA reached the client; its neighbour entry names the node.
  const mac = NODE_PLAN.find((p) => p.name === node)?.mac;
  await capture.waitFor(`NA for ${WEB6_IP}`, (f) => f.srcMac === mac && f.na?.target === WEB6_IP, 15_000);
  assert.is((await neighbour(cluster.lab, cluster.client.ns, WEB6_IP))?.mac, mac);
  log(`IPv6: web6 at ${WEB6_IP} served through ${node}`);
});

const LOCAL_IP = '192.0.2.62';
const localWeb = (node: string): string => `apiVersion: apps/v1
kind: Deployment
metadata: { name: local-web, namespace: default }
spec:
  replicas: 1
  selector: { matchLabels: { app: local-web } }
  template:
    metadata: { labels: { app: local-web } }
    spec:
      nodeSelector: { kubernetes.io/hostname: ${node} }
      containers:
        - { name: nginx, image: "nginx:1.27", ports: [{ containerPort: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: local-web, namespace: default }
spec:
  selector: { app: local-web }
  externalIPs: [${LOCAL_IP}]
  externalTrafficPolicy: Local
  ports: [{ name: http, port: 80, targetPort: 80 }]
`;

test('real nodes 3. externalTrafficPolicy: Local: the address goes to the node with the nginx pod, and follows the pod', async () => {
  for (const [node, not] of [
    ['node-1', undefined],
    ['node-2', 'node-1'],
  ] as const) {
    await cluster.mustKubectl(['apply', '-f', '-'], localWeb(node));
    await rollout('deployment/local-web', 'default');
    const serving = await servingNode(LOCAL_IP, not);
    assert.is(serving, node, `the address is on ${node}, where the pod runs`);
    await nginxThrough(LOCAL_IP);
    log(`externalTrafficPolicy Local: ${LOCAL_IP} on ${serving} with its pod`);
  }
});

test('real nodes 2. the Helm chart installed for real in place of the kubectl install: agents as the chart says, nginx served again', async () => {
  const helm =
    execFileSync('bash', [`${root}test/controlplane/build-helm.sh`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
      .trim()
      .split('\n')
      .pop() ?? '';
  // Out with the kubectl install (the CRDs, the pool and nginx stay, as a user switching would keep them).
  await cluster.mustKubectl(['delete', '-f', `${root}examples/claims/`, '--wait=true']);
  await cluster.mustKubectl(['delete', '-f', `${root}examples/agent-policy.yaml`, '--wait=true']);
  await cluster.mustKubectl(['delete', '-f', `${root}examples/auth.yaml`, '--wait=true', '--timeout=120s']);
  const t0 = Date.now();
  // The README's command also sets pool.cidr=192.0.2.0/24; here example-pool (192.0.2.100-150) is
  // already there, and a second pool over the whole segment would overlap it and hold the lab's
  // own node and client addresses, so the chart's pool is left out.
  const installed = await run(helm, [
    'install',
    'ipc',
    `${root}examples/helm/ipcontroller`,
    '-n',
    SYSTEM_NS,
    '--create-namespace',
    '--set',
    'agent.iface=eth0',
    '--wait',
    '--timeout',
    '3m',
    '--kubeconfig',
    cluster.controlPlane.kubeconfigPath,
  ]);
  assert.is(installed.code, 0, installed.stderr);
  log(`helm install --wait: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await rollout('daemonset/ipc-agent', SYSTEM_NS);
  await rollout('deployment/ipc-scheduler', SYSTEM_NS);
  const external = await cluster.mustKubectl(['get', 'svc', 'nginx', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}']);
  assert.ok(external, 'nginx keeps its external IP');
  const node = await servingNode(external);
  await nginxThrough(external);
  const pods = JSON.parse(
    await cluster.mustKubectl([
      'get',
      'pods',
      '-n',
      SYSTEM_NS,
      '-l',
      'app.kubernetes.io/instance=ipc,app.kubernetes.io/component=agent',
      '-o',
      'json',
    ]),
  ) as {
    items: { spec: { nodeName: string; containers: { image: string; securityContext: unknown }[] } }[];
  };
  const manifest = YAML.parseAllDocuments(readFileSync(`${root}examples/claims/controller.yaml`, 'utf8'))[0]?.toJS() as {
    spec: { template: { spec: { containers: { securityContext: unknown }[] } } };
  };
  assert.equal(pods.items.map((p) => p.spec.nodeName).sort(), ['node-1', 'node-2']);
  for (const pod of pods.items) {
    assert.is(pod.spec.containers[0]?.image, 'ipcontroller/ipcontroller:0.1.0');
    assert.equal(pod.spec.containers[0]?.securityContext, manifest.spec.template.spec.containers[0]?.securityContext);
  }
  log(`helm: nginx at ${external} served through ${node}`);
});

test.run();
