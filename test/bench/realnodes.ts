// Hard failover on real nodes (root): the real-node lab (test/lab/realcluster.ts) with the
// manifests of examples/ applied, a backend nginx pod on the unlabelled node-3 behind a Service
// with an external IP, and repeated hard failures of the serving node (its agent container
// paused, its link cut), measured from the client as the process lab's `failover` benchmark
// does, so `make bench` prints both figures side by side. BENCH_REAL_FAILURES (default 5).
import { fileURLToPath } from 'node:url';
import { ipClients } from '../../api/client.js';
import { waitFor } from '../controlplane/harness.js';
import { AGENT_NAMESPACE, startRealCluster, type RealCluster } from '../lab/realcluster.js';
import { downtimeAround } from '../support/downtime.js';
import { stats } from './failover.js';

const FAILURES = Number(process.env.BENCH_REAL_FAILURES ?? 5);
const VIP = '192.0.2.60';
const root = fileURLToPath(new URL('../../', import.meta.url));
const BACKEND = `apiVersion: apps/v1
kind: Deployment
metadata: { name: bench-web, namespace: default }
spec:
  replicas: 1
  selector: { matchLabels: { app: bench-web } }
  template:
    metadata: { labels: { app: bench-web } }
    spec:
      nodeSelector: { kubernetes.io/hostname: node-3 }
      containers: [{ name: nginx, image: "nginx:1.27" }]
---
apiVersion: v1
kind: Service
metadata: { name: bench-web, namespace: default }
spec:
  selector: { app: bench-web }
  externalIPs: [${VIP}]
  ports: [{ port: 80, targetPort: 80 }]
`;

async function install(cluster: RealCluster): Promise<void> {
  for (const args of [
    ['apply', '-f', `${root}examples/crds.yaml`],
    ['apply', '-f', `${root}examples/auth.yaml`],
    ['label', 'node', 'node-1', 'node-2', 'ipcontroller='],
    ['apply', '-f', `${root}examples/claims/`],
  ])
    await cluster.mustKubectl(args);
  await cluster.mustKubectl(['apply', '-f', '-'], BACKEND);
  for (const [kind, ns] of [
    ['daemonset/ipcontroller-agent', AGENT_NAMESPACE],
    ['deployment/ipcontroller-scheduler', AGENT_NAMESPACE],
    ['deployment/bench-web', 'default'],
  ]) {
    await cluster.mustKubectl(['rollout', 'status', kind as string, '-n', ns as string, '--timeout=180s']);
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const cluster = await startRealCluster({ handleSignals: true });
  try {
    await install(cluster);
    const ip = ipClients(cluster.controlPlane.kubeConfig());
    const bothAgentsReady = (): Promise<void> =>
      waitFor(
        'both IpNodes Ready',
        async () => {
          const nodes = await ip.nodes.list();
          return nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === 2;
        },
        60_000,
        200,
      );
    const downtimes: number[] = [];
    // Failures that also took the scheduler leader's pod off the network wait for its Lease.
    const withLeader: number[] = [];
    const loop = cluster.requestLoop(VIP, 20, 30 * 60_000);
    try {
      for (let i = 0; i < FAILURES; i++) {
        await bothAgentsReady();
        const from = await cluster.servingNode(VIP);
        const leader = (
          await cluster.kubectl(['get', 'lease', 'ipcontroller-scheduler', '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.spec.holderIdentity}'])
        ).stdout;
        const leaderNode = (await cluster.kubectl(['get', 'pod', leader, '-n', AGENT_NAMESPACE, '-o', 'jsonpath={.spec.nodeName}'])).stdout;
        await loop.steady(10);
        const at = Date.now();
        await cluster.fail(from);
        let to = '';
        try {
          to = await cluster.servingNode(VIP, from);
          await loop.steady(5);
          await loop.settled();
        } finally {
          await cluster.recover(from);
        }
        const downtime = downtimeAround(loop.results(), at);
        if (!downtime) throw new Error(`failure ${i}: no answer before or after the fault`);
        downtimes.push(downtime.downtimeMs);
        if (leaderNode === from) withLeader.push(downtime.downtimeMs);
        process.stderr.write(
          `  real nodes: hard failure ${i + 1}/${FAILURES}: ${from} -> ${to}: ${downtime.downtimeMs} ms${leaderNode === from ? ' (the scheduler leader was on the cut node)' : ''}\n`,
        );
        await waitFor(`${from} drops ${VIP}`, async () => (await cluster.holders(VIP)).length === 1, 60_000, 100);
      }
    } finally {
      await loop.stop();
    }
    return {
      settings:
        'examples/claims as shipped (probe 100ms x 3 failures, timeout 80ms); schedulers are pods (possibly on the cut node); backend nginx pod on node-3; client request every 20 ms, 250 ms timeout',
      hard_failover_downtime_ms: stats(downtimes),
      hard_failover_with_scheduler_leader_on_cut_node_ms: stats(withLeader),
      lab_start_s: cluster.timings.total,
      memory_rss_mib: cluster.memory(),
    };
  } finally {
    await cluster.destroy();
  }
}
