// The scheduler's probe path alone, in this process, without an apiserver: the NodeMonitor as
// scheduler.ts builds it (Prober, the UDP-first probe, health bookkeeping, metrics, the probe
// reporter as leader with a no-op write) over in-memory caches of N agent nodes answered by the
// simulated agents (_simagents.ts), with heartbeat events fed in as the IpNode watch would
// (every node once per 15 s, as probescale.ts writes them). Reports this process's CPU per probe,
// for profiling (node --cpu-prof) and before/after figures on a host too busy for probescale.ts.
// Usage: node --import tsx test/bench/_probepath.ts [nodes=500] [seconds=20]; PROBEPATH_PROFILE=<file.cpuprofile>
// writes a CPU profile of the measured window alone (not the start-up).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { API_VERSION, type IpNode } from '../../api/types.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { SchedulerMetrics } from '../../scheduler/metrics.js';
import { NodeMonitor } from '../../scheduler/nodemonitor.js';
import { defaultProbe, type ProbeFn } from '../../scheduler/prober.js';
import { ProbeReporter } from '../../scheduler/probereport.js';
import { emptyCaches } from '../../scheduler/reconciler.js';
import { freePort } from '../controlplane/harness.js';
import { SIM_NODE_PREFIX, simAddress, startSimAgents } from './_simagents.js';

const HEARTBEAT_MS = 15_000;
const nodes = Number(process.argv[2] ?? 500);
const seconds = Number(process.argv[3] ?? 20);
const config = { monitorMs: 60_000, probeFailures: 3, probeIntervalMs: 200, probeTimeoutMs: 100 };

function ipNode(i: number, port: number): IpNode {
  const now = new Date().toISOString();
  return {
    apiVersion: API_VERSION,
    kind: 'IpNode',
    metadata: { name: `${SIM_NODE_PREFIX}${i}`, resourceVersion: String(Date.now() * 1000 + i) },
    spec: { probeAddress: simAddress(i), probePort: port },
    status: { renewTime: now, conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: 'bench', lastTransitionTime: now }] },
  };
}

const port = await freePort();
const agents = await startSimAgents(nodes, port);
const caches = emptyCaches();
for (let i = 0; i < nodes; i++) {
  const name = `${SIM_NODE_PREFIX}${i}`;
  caches.nodes.upsert(name, { name, labels: { ipcontroller: '' }, addresses: [{ address: simAddress(i), type: 'InternalIP' }] }, '1');
  caches.ipNodes.upsert(name, ipNode(i, port), '1');
}
caches.nodes.synced = true;
caches.ipNodes.synced = true;
const log = createLogger('probepath', 'warn');
const stop = new AbortController();
const counted = { ok: 0, failed: 0 };
const probe = defaultProbe('probepath', systemClock, config.probeFailures);
const countingProbe: ProbeFn = (target, timeoutMs) =>
  probe(target, timeoutMs).then((r) => {
    if (r.ok) counted.ok++;
    else counted.failed++;
    return r;
  });
const reporter = new ProbeReporter({ write: () => Promise.resolve(), isLeader: () => true, log, identity: 'probepath', cfg: config });
const monitor = new NodeMonitor(
  { caches, config, probe: countingProbe, clock: systemClock, log, metrics: new SchedulerMetrics(), reporter, onChange: () => undefined },
  stop.signal,
);
monitor.ipNodesChanged();
void monitor.run(stop.signal);
// Heartbeats as IpNode watch events: upsert, then what scheduler.ts feedCaches calls on a change.
let next = 0;
let rv = 2;
const beat = setInterval(() => {
  const perTick = Math.max(1, Math.ceil(nodes / (HEARTBEAT_MS / 100)));
  for (let k = 0; k < perTick; k++) {
    const i = next++ % nodes;
    caches.ipNodes.upsert(`${SIM_NODE_PREFIX}${i}`, ipNode(i, port), String(rv++));
    monitor.ipNodesChanged();
  }
}, 100);
await new Promise((r) => setTimeout(r, 3_000)); // settle: UDP learnt
counted.ok = 0;
counted.failed = 0;
const profileTo = process.env.PROBEPATH_PROFILE;
const session = profileTo ? new Session() : null;
session?.connect();
await session?.post('Profiler.enable');
await session?.post('Profiler.start');
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
const cpu = process.cpuUsage(cpu0);
const wall = (performance.now() - t0) / 1000;
const profiled = await session?.post('Profiler.stop');
if (profileTo && profiled) writeFileSync(profileTo, JSON.stringify(profiled.profile));
const probes = counted.ok + counted.failed;
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
stop.abort();
clearInterval(beat);
await agents.stop();
process.stdout.write(
  `${JSON.stringify({
    nodes,
    seconds: +wall.toFixed(1),
    probesPerSecond: Math.round(probes / wall),
    failedPerSecond: Math.round(counted.failed / wall),
    cpuPercent: +((cpuSeconds / wall) * 100).toFixed(1),
    cpuMicrosPerProbe: +((cpuSeconds / Math.max(1, probes)) * 1e6).toFixed(1),
    loadAverage1m: +(loadavg()[0] ?? NaN).toFixed(1),
  })}\n`,
);
process.exit(0);
