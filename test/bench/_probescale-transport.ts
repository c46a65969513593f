// The probe path alone, without an apiserver (for a host too busy to run probescale.ts): the
// scheduler's Prober with the HTTP probe (as before 14.2), with the UDP-first probe (as now), and
// the UDP-first probe feeding a NodeMonitor as the leader runs it (probe state, health rechecks,
// metrics, the probe report; the health tick's full steps over every node), one after the other
// against N simulated agents (_simagents.ts, a separate Go process), reporting this process's CPU
// per answered probe and at the nominal rate (N probes per interval).
// Usage: node --import tsx test/bench/_probescale-transport.ts [nodes=1000] [seconds=10] [intervalMs=100] [timeoutMs=80] [transports=http,udp-first,monitor]
import { loadavg } from 'node:os';
import { pino } from 'pino';
import { API_VERSION } from '../../api/types.js';
import { systemClock } from '../../lib/clock.js';
import { SchedulerMetrics } from '../../scheduler/metrics.js';
import { NodeMonitor } from '../../scheduler/nodemonitor.js';
import { defaultProbe, httpProbe, Prober, type ProbeFn } from '../../scheduler/prober.js';
import { ProbeReporter } from '../../scheduler/probereport.js';
import { emptyCaches } from '../../scheduler/reconciler.js';
import { freePort } from '../controlplane/harness.js';
import { SIM_NODE_PREFIX, simAddress, startSimAgents } from './_simagents.js';

interface Run {
  nodes: number;
  port: number;
  seconds: number;
  intervalMs: number;
  timeoutMs: number;
}

/** Starts the probing one way; returns a stop function. Results are counted into `tally`. */
type Start = (run: Run, tally: { ok: number; failed: number }, signal: AbortSignal) => void;

const targets = (run: Run): Array<{ node: string; address: string; port: number }> =>
  Array.from({ length: run.nodes }, (_, i) => ({ node: `${SIM_NODE_PREFIX}${i}`, address: simAddress(i), port: run.port }));

function proberOnly(probe: ProbeFn): Start {
  return (run, tally, signal) => {
    const prober = new Prober(
      {
        probe,
        intervalMs: run.intervalMs,
        timeoutMs: run.timeoutMs,
        clock: systemClock,
        onResult: (_node, r) => (r.ok ? tally.ok++ : tally.failed++),
      },
      signal,
    );
    prober.sync(targets(run));
  };
}

/** The leader's probing as scheduler.ts composes it, with caches filled by hand instead of a watch. */
const withMonitor: Start = (run, tally, signal) => {
  const caches = emptyCaches();
  const now = new Date().toISOString();
  for (const t of targets(run)) {
    caches.nodes.upsert(
      t.node,
      { name: t.node, labels: { ipcontroller: '' }, addresses: [{ type: 'InternalIP', address: t.address }] },
      '1',
    );
    caches.ipNodes.upsert(
      t.node,
      {
        apiVersion: API_VERSION,
        kind: 'IpNode',
        metadata: { name: t.node },
        spec: { probeAddress: t.address, probePort: t.port },
        status: { renewTime: now, conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: '', lastTransitionTime: now }] },
      },
      '1',
    );
  }
  caches.nodes.synced = true;
  caches.ipNodes.synced = true;
  const config = { monitorMs: 3_600_000, probeFailures: 3, probeIntervalMs: run.intervalMs, probeTimeoutMs: run.timeoutMs };
  const log = pino({ level: 'warn' });
  const metrics = new SchedulerMetrics();
  const reporter = new ProbeReporter({
    write: () => Promise.resolve(),
    isLeader: () => true,
    log,
    identity: 'transport-bench',
    cfg: config,
  });
  const counting = {
    probed: (node: string, rtt: number | null) => {
      if (rtt === null) tally.failed++;
      else tally.ok++;
      metrics.probed(node, rtt);
    },
    forgetNode: (node: string) => metrics.forgetNode(node),
    nodeStates: (states: Record<string, number>) => metrics.nodeStates(states),
  };
  const probe = defaultProbe('transport-bench', systemClock, 3);
  const monitor = new NodeMonitor(
    { caches, config, probe, clock: systemClock, log, metrics: counting, reporter, onChange: () => undefined },
    signal,
  );
  monitor.ipNodesChanged();
  void monitor.run(signal).catch(() => undefined);
};

async function measure(name: string, start: Start, run: Run): Promise<Record<string, number | string>> {
  const stop = new AbortController();
  const tally = { ok: 0, failed: 0 };
  start(run, tally, stop.signal);
  await new Promise((r) => setTimeout(r, 2_000)); // settle: connections open, UDP learnt
  tally.ok = 0;
  tally.failed = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, run.seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  const { ok, failed } = tally;
  stop.abort();
  await new Promise((r) => setTimeout(r, 500)); // probes in flight end before the next transport starts
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const perProbe = cpuSeconds / Math.max(1, ok + failed);
  return {
    transport: name,
    nodes: run.nodes,
    intervalMs: run.intervalMs,
    answeredPerSecond: Math.round(ok / wall),
    failedPerSecond: Math.round(failed / wall),
    cpuPercent: +((cpuSeconds / wall) * 100).toFixed(1),
    cpuMicrosPerProbe: +(perProbe * 1e6).toFixed(1),
    cpuPercentAtNominalRate: +(perProbe * run.nodes * (1000 / run.intervalMs) * 100).toFixed(1),
    loadAverage1m: +(loadavg()[0] ?? NaN).toFixed(1),
  };
}

const [nodes = 1000, seconds = 10, intervalMs = 100, timeoutMs = 80] = process.argv.slice(2, 6).map(Number);
const wanted = (process.argv[6] ?? 'http,udp-first,monitor').split(',');
const port = await freePort();
const agents = await startSimAgents(nodes, port);
const ways: Record<string, Start> = {
  http: proberOnly(httpProbe('transport-bench', systemClock)),
  'udp-first': proberOnly(defaultProbe('transport-bench', systemClock, 3)),
  monitor: withMonitor,
};
const results = [];
for (const name of wanted) {
  const start = ways[name];
  if (start) results.push(await measure(name, start, { nodes, port, seconds, intervalMs, timeoutMs }));
}
await agents.stop();
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
