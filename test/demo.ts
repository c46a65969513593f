// `make demo` (as root): a local kube-apiserver + etcd, the two-node lab, two schedulers and
// two agents; then the example pool and the nginx-like LoadBalancer Service, a request from
// the client namespace, a hard failure of the serving node with the downtime the client saw,
// and the lab left running until Ctrl-C with instructions for poking at it.
import { fileURLToPath } from 'node:url';
import { startControlPlane, waitFor } from './controlplane/harness.js';
import { startTwoNodeLab, type TwoNodeLab } from './e2e/twonode.js';
import { pluginPath } from './support/plugin-path.js';

const examples = fileURLToPath(new URL('../examples/', import.meta.url));
const say = (text: string): void => void process.stdout.write(`${text}\n`);
const step = (text: string): void => say(`\n\x1b[1m== ${text}\x1b[0m`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    say('The demo builds network namespaces and needs root: sudo make demo');
    process.exitCode = 1;
    return;
  }
  step('Starting a local kube-apiserver and etcd (binaries built once into ~/.cache/ipcontroller)');
  const cp = await startControlPlane({ serviceAccountAdmission: true });
  say(`control plane up in ${cp.startSeconds.toFixed(1)} s at ${cp.server}`);
  // Filled in once started, so Ctrl-C at any point tears down what exists.
  const started: { lab?: TwoNodeLab } = {};
  const shutdown = async (): Promise<void> => {
    step('Tearing down the lab and the control plane');
    await started.lab?.destroy();
    await cp.stop();
    plugin.remove();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
  const kubectl = async (args: string[]): Promise<void> => {
    say(`$ kubectl ${args.join(' ')}`);
    const out = await cp.kubectl(args);
    process.stdout.write(out.stdout + out.stderr);
  };
  // kubectl ipcontroller, found on the PATH as a user who ran `npm link` has it.
  const plugin = pluginPath();
  const ipcontroller = async (args: string[]): Promise<void> => {
    say(`$ kubectl ipcontroller ${args.join(' ')}`);
    const out = await plugin.kubectl(cp.assets.kubectl, cp.kubeconfigPath, ['ipcontroller', ...args]);
    process.stdout.write(out.stdout + out.stderr);
  };

  step('Building the lab: node-1 and node-2 (labelled ipcontroller=, agents), node-3 (not labelled), 2 schedulers, a client');
  const lab = await startTwoNodeLab({ kubeconfigPath: cp.kubeconfigPath, handleSignals: false });
  started.lab = lab;
  say(`leader: ${await lab.leader()}`);
  await kubectl(['get', 'nodes', '-L', 'ipcontroller']);
  await kubectl(['get', 'ipnodes']);

  step('Creating the example pool and the nginx LoadBalancer Service');
  await kubectl(['apply', '-f', `${examples}ip-pool.yml`, '-f', `${examples}nginx.yaml`]);
  let ip = '';
  await waitFor(
    'an address for nginx',
    async () => {
      const svc = await lab.core.readNamespacedService({ name: 'nginx', namespace: 'default' });
      ip = svc.status?.loadBalancer?.ingress?.[0]?.ip ?? '';
      return ip !== '';
    },
    30_000,
    100,
  );
  const node = await lab.servingNode(ip);
  await kubectl(['get', 'svc,ipclaims']);
  await kubectl(['wait', '--for=condition=ipcontroller.ext/AddressReady', 'svc/nginx', '--timeout=30s']);
  await ipcontroller(['status']);

  step(`Requesting http://${ip}/ from the client namespace`);
  await waitFor('an answer', async () => (await lab.clientGet(ip, 1)).ok, 10_000, 100);
  say(`answered by: ${(await lab.clientGet(ip)).body}`);

  step(`Hard failure of ${node}: its agent frozen (SIGSTOP) and its link cut, a request every 20 ms`);
  const loop = lab.requestLoop(ip, 20, 120_000);
  const { to: moved, downtime } = await lab.move(loop, ip, (n) => lab.fail(n));
  await loop.stop();
  say(`${ip} moved ${node} -> ${moved}; the client saw ${downtime?.downtimeMs ?? '?'} ms without an answer`);
  await kubectl(['get', 'ipclaims']);
  await kubectl(['get', 'events', '--field-selector', 'involvedObject.name=nginx', '--sort-by=.lastTimestamp']);
  await waitFor(
    "the IPMoved Event with the move's duration",
    async () => {
      const events = await lab.core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=nginx' });
      return events.items.some((e) => e.reason === 'IPMoved');
    },
    70_000,
    200,
  );
  await ipcontroller(['status']);
  await ipcontroller(['history', 'nginx']);

  step('A Service that cannot get an address: it asks for 198.51.100.250, which no pool holds');
  const stuck = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'stuck', namespace: 'default', annotations: { 'ipcontroller.ext/loadBalancerIPs': '198.51.100.250' } },
    spec: { type: 'LoadBalancer', selector: { app: 'nginx' }, ports: [{ port: 80 }] },
  });
  say(
    '$ kubectl apply -f - <<< \'{"kind":"Service","metadata":{"name":"stuck","annotations":{"ipcontroller.ext/loadBalancerIPs":"198.51.100.250"}},...}\'',
  );
  process.stdout.write((await cp.kubectl(['apply', '-f', '-'], stuck)).stdout);
  await kubectl(['wait', '--for=condition=ipcontroller.ext/AddressReady=False', 'svc/stuck', '--timeout=30s']);
  await ipcontroller(['why', 'stuck']);
  await lab.recover(lab.node(node));
  say(`${node} is back; the address stays on ${moved}.`);

  step('The lab is running. Poke at it, then press Ctrl-C to tear it all down.');
  say(`  alias kubectl='${cp.assets.kubectl} --kubeconfig ${cp.kubeconfigPath}'`);
  say('  kubectl get svc,ipclaims,ipnodes,ipclaimpools');
  say(`  PATH=${plugin.dir}:$PATH KUBECONFIG=${cp.kubeconfigPath} kubectl ipcontroller status   # or: npm run build && npm link`);
  say('  kubectl ipcontroller why nginx; kubectl ipcontroller history nginx');
  say('  kubectl describe svc nginx');
  say(`  ip netns exec ${lab.client.ns.name} curl http://${ip}/`);
  say(`  ip netns exec ${lab.client.ns.name} ip neigh`);
  for (const n of lab.nodes) say(`  ip netns exec ${n.ns.name} ip addr show eth0     # ${n.name}`);
  say(`  logs: ${lab.lab.dir}`);
  await new Promise(() => {});
}

await main();
