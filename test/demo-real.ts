// `make demo` (as root): the real-node lab (three kubelets with containerd and kube-proxy, the
// image built from the Dockerfile), the README's install sequence, nginx reached through its
// external IP from the client namespace, a hard failure of the serving node with the downtime
// the client saw, and the cluster left running until Ctrl-C with instructions for poking at it.
// `make demo-process` is the faster process lab (test/demo.ts).
import { fileURLToPath } from 'node:url';
import { waitFor } from './controlplane/harness.js';
import { startRealCluster, type RealCluster } from './lab/realcluster.js';
import { downtimeAround } from './support/downtime.js';
import { pluginPath } from './support/plugin-path.js';
import { README_INSTALL } from './support/readme-install.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const say = (text: string): void => void process.stdout.write(`${text}\n`);
const step = (text: string): void => say(`\n\x1b[1m== ${text}\x1b[0m`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    say('The demo builds network namespaces, containerd and kubelets and needs root: sudo make demo');
    process.exitCode = 1;
    return;
  }
  step('Starting the real-node lab: kube-apiserver, etcd, controller manager, scheduler, three nodes (containerd, kubelet, kube-proxy)');
  // Filled in once started, so Ctrl-C at any point tears down what exists.
  const started: { cluster?: RealCluster } = {};
  const shutdown = async (): Promise<void> => {
    step('Tearing down the lab and the control plane');
    await started.cluster?.destroy();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
  const c = await startRealCluster({ handleSignals: false });
  started.cluster = c;
  say(`up in ${c.timings.total?.toFixed(1)} s`);
  const kubectl = async (args: string[]): Promise<void> => {
    say(`$ kubectl ${args.join(' ')}`);
    const out = await c.kubectl(args.map((a) => (a.startsWith('examples/') ? `${root}${a}` : a)));
    process.stdout.write(out.stdout + out.stderr);
  };
  // kubectl ipcontroller, found on the PATH as a user who ran `npm link` has it.
  const plugin = pluginPath();
  const ipcontroller = async (args: string[]): Promise<void> => {
    say(`$ kubectl ipcontroller ${args.join(' ')}`);
    const out = await plugin.kubectl(c.controlPlane.assets.kubectl, c.controlPlane.kubeconfigPath, ['ipcontroller', ...args]);
    process.stdout.write(out.stdout + out.stderr);
  };
  await kubectl(['get', 'nodes', '-o', 'wide']);

  step("The README's install sequence");
  for (const args of README_INSTALL) await kubectl(args);
  for (const [kind, ns] of [
    ['daemonset/ipcontroller-agent', 'ipcontroller-system'],
    ['deployment/ipcontroller-scheduler', 'ipcontroller-system'],
    ['deployment/nginx', 'default'],
  ] as const) {
    await kubectl(['rollout', 'status', kind, '-n', ns, '--timeout=180s']);
  }
  let ip = '';
  await waitFor(
    'an address for nginx',
    async () => {
      ip = (await c.kubectl(['get', 'svc', 'nginx', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).stdout;
      return ip !== '';
    },
    60_000,
    200,
  );
  const node = await c.servingNode(ip);
  await kubectl(['get', 'pods', '-A', '-o', 'wide']);
  await kubectl(['get', 'svc,ipclaims']);
  await ipcontroller(['status']);

  step(`Requesting http://${ip}/ from the client namespace (external IP -> ${node} -> kube-proxy DNAT -> nginx pod)`);
  await waitFor('nginx', async () => (await c.clientGet(`http://${ip}/`, 1)).body.includes('Welcome to nginx!'), 30_000, 200);
  say((await c.clientGet(`http://${ip}/`)).body.split('\n').find((l) => l.includes('<title>')) ?? '');

  step('nginx to node-3 (no agent there), so that cutting the node holding the address does not cut the backend too');
  await kubectl([
    'patch',
    'deployment',
    'nginx',
    '-p',
    JSON.stringify({ spec: { template: { spec: { nodeSelector: { 'kubernetes.io/hostname': 'node-3' } } } } }),
  ]);
  await kubectl(['rollout', 'status', 'deployment/nginx', '--timeout=180s']);

  step(`Hard failure of ${node}: its agent container paused and its link cut, a request every 20 ms`);
  const loop = c.requestLoop(ip, 20, 120_000);
  await loop.steady(10);
  const at = Date.now();
  await c.fail(node);
  let moved: string;
  try {
    moved = await c.servingNode(ip, node);
    await loop.steady(5);
  } finally {
    await loop.stop();
    await c.recover(node);
  }
  const downtime = downtimeAround(loop.results(), at);
  say(
    `${ip} moved ${node} -> ${moved}; the client saw ${downtime?.downtimeMs ?? '?'} ms without an answer; ${node} is back and the address stays on ${moved}`,
  );
  await kubectl(['get', 'ipclaims']);
  await kubectl(['get', 'events', '--field-selector', 'involvedObject.name=nginx', '--sort-by=.lastTimestamp']);
  await ipcontroller(['status']);
  await ipcontroller(['history', 'nginx']);

  step('A Service that cannot get an address: it asks for one outside every pool');
  await c.mustKubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'stuck', namespace: 'default', annotations: { 'ipcontroller.ext/loadBalancerIPs': '203.0.113.250' } },
      spec: { type: 'LoadBalancer', selector: { app: 'nginx' }, ports: [{ port: 80 }] },
    }),
  );
  await kubectl(['wait', '--for=condition=ipcontroller.ext/AddressReady=False', 'svc/stuck', '--timeout=30s']);
  await ipcontroller(['why', 'stuck']);

  step('The cluster is running. Poke at it, then press Ctrl-C to tear it all down.');
  say(`  alias kubectl='${c.controlPlane.assets.kubectl} --kubeconfig ${c.controlPlane.kubeconfigPath}'`);
  say('  kubectl get pods -A -o wide; kubectl get svc,ipclaims,ipnodes,ipclaimpools');
  say('  kubectl describe svc nginx');
  say(`  PATH=${plugin.dir}:$PATH kubectl ipcontroller status   # or: npm run build && npm link; also: why stuck, history nginx`);
  say(`  ip netns exec ${c.client.ns.name} curl http://${ip}/`);
  say(`  ip netns exec ${c.client.ns.name} ip neigh`);
  for (const n of c.nodes) say(`  ip netns exec ${n.ns.name} ip addr show eth0     # ${n.name}; pod logs: ${n.dir}/pod-logs`);
  say(`  logs: ${c.lab.dir}`);
  await new Promise(() => {});
}

await main();
