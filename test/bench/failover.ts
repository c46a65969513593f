// Failover benchmark in the two-node lab (root): client-visible downtime over repeated hard
// failures (agent frozen with SIGSTOP and its link cut) and graceful handovers (SIGTERM), and
// the time from Service create to the first successful client request. All at default
// settings. Runs alone with `sudo make bench-failover`.
import { startControlPlane, waitFor } from '../controlplane/harness.js';
import { startTwoNodeLab, type TwoNodeLab } from '../e2e/twonode.js';

const HARD_FAILURES = Number(process.env.BENCH_HARD_FAILURES ?? 20);
const GRACEFUL = Number(process.env.BENCH_GRACEFUL ?? 5);
const CREATES = Number(process.env.BENCH_CREATES ?? 20);
const VIP = '192.0.2.60';

export function stats(values: number[]): { n: number; min: number; p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  return { n: sorted.length, min: sorted[0] ?? NaN, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

const holder = (lab: TwoNodeLab, ip: string, not?: string): Promise<string> => lab.servingNode(ip, not ? { not } : {});

/** Waits until the leader's scheduler counts both agent nodes as candidates again. */
async function bothCandidates(lab: TwoNodeLab): Promise<void> {
  await waitFor(
    'both agent nodes candidates',
    async () => {
      const replica = await lab.leaderReplica();
      if (!replica) return false;
      const r = await lab.lab.exec(replica.ns, ['curl', '-s', '-m', '1', 'http://127.0.0.1:9611/metrics']);
      return /ipcontroller_scheduler_nodes\{state="candidate"\} 2\b/.test(r.stdout);
    },
    20_000,
    100,
  );
}

async function hardFailures(lab: TwoNodeLab): Promise<number[]> {
  const downtimes: number[] = [];
  const loop = lab.requestLoop(VIP, 20, 15 * 60_000);
  try {
    for (let i = 0; i < HARD_FAILURES; i++) {
      await bothCandidates(lab);
      const { from, downtime } = await lab.move(loop, VIP, (node) => lab.fail(node));
      if (!downtime) throw new Error(`failure ${i}: no answer before or after the fault`);
      downtimes.push(downtime.downtimeMs);
      process.stderr.write(`  hard failure ${i + 1}/${HARD_FAILURES}: ${from} -> ${downtime.servedAfter}: ${downtime.downtimeMs} ms\n`);
      await lab.recover(lab.node(from));
      await waitFor(`${from} drops ${VIP}`, async () => (await lab.holders(VIP)).length === 1, 15_000, 50);
    }
  } finally {
    await loop.stop();
  }
  return downtimes;
}

async function gracefulHandovers(lab: TwoNodeLab): Promise<number[]> {
  const downtimes: number[] = [];
  const loop = lab.requestLoop(VIP, 20, 15 * 60_000);
  try {
    for (let i = 0; i < GRACEFUL; i++) {
      await bothCandidates(lab);
      const { from, downtime } = await lab.move(loop, VIP, (node) => node.agent?.proc.signal('SIGTERM'));
      const node = lab.node(from);
      await node.agent?.proc.exited;
      if (!downtime) throw new Error(`handover ${i}: no answer before or after SIGTERM`);
      downtimes.push(downtime.downtimeMs);
      process.stderr.write(`  graceful handover ${i + 1}/${GRACEFUL}: ${downtime.downtimeMs} ms\n`);
      await lab.startAgent(node);
    }
  } finally {
    await loop.stop();
  }
  return downtimes;
}

async function createToFirstAnswer(lab: TwoNodeLab): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < CREATES; i++) {
    const ip = `192.0.2.${70 + i}`;
    const name = `bench-create-${i}`;
    const start = Date.now();
    await lab.core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name }, spec: { externalIPs: [ip], ports: [{ port: 80, targetPort: 80 }] } },
    });
    await waitFor(`${ip} answers`, async () => (await lab.clientGet(ip, 1)).ok, 20_000, 10);
    times.push(Date.now() - start);
    await lab.core.deleteNamespacedService({ name, namespace: 'default' });
  }
  return times;
}

export async function run(): Promise<Record<string, unknown>> {
  const cp = await startControlPlane({ serviceAccountAdmission: true });
  let lab: TwoNodeLab | undefined;
  try {
    lab = await startTwoNodeLab({ kubeconfigPath: cp.kubeconfigPath });
    await lab.core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name: 'bench-vip' }, spec: { externalIPs: [VIP], ports: [{ port: 80, targetPort: 80 }] } },
    });
    await holder(lab, VIP);
    const hard = await hardFailures(lab);
    const graceful = await gracefulHandovers(lab);
    const create = await createToFirstAnswer(lab);
    return {
      settings:
        'defaults: probe 200ms x 3 failures, heartbeat 2s, monitor 4s, GARP at once then every 1.1s; client request every 20 ms, 250 ms timeout',
      hard_failover_downtime_ms: stats(hard),
      graceful_handover_downtime_ms: stats(graceful),
      service_create_to_first_answer_ms: stats(create),
    };
  } finally {
    await lab?.destroy();
    await cp.stop();
  }
}
