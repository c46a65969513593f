// The probe path alone, without an apiserver (for a host too busy to run probescale.ts): the
// scheduler's Prober with the HTTP probe (as before) and with the UDP-first probe (as now),
// one after the other against N simulated agents (_simagents.ts, a separate Go process),
// reporting this process's CPU per answered probe and at the nominal rate (N x 5 probes/s).
// Usage: node --import tsx test/bench/_probescale-transport.ts [nodes=1000] [seconds=10]
import { loadavg } from 'node:os';
import { systemClock } from '../../lib/clock.js';
import { defaultProbe, httpProbe, Prober, type ProbeFn } from '../../scheduler/prober.js';
import { freePort } from '../controlplane/harness.js';
import { SIM_NODE_PREFIX, simAddress, startSimAgents } from './_simagents.js';

async function measure(
  name: string,
  probe: ProbeFn,
  run: { nodes: number; port: number; seconds: number },
): Promise<Record<string, number | string>> {
  const { nodes, port, seconds } = run;
  const stop = new AbortController();
  let ok = 0;
  let failed = 0;
  const prober = new Prober(
    { probe, intervalMs: 200, timeoutMs: 100, clock: systemClock, onResult: (_node, r) => (r.ok ? ok++ : failed++) },
    stop.signal,
  );
  prober.sync(Array.from({ length: nodes }, (_, i) => ({ node: `${SIM_NODE_PREFIX}${i}`, address: simAddress(i), port })));
  await new Promise((r) => setTimeout(r, 2_000)); // settle: connections open, UDP learnt
  ok = 0;
  failed = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  stop.abort();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    transport: name,
    nodes,
    answeredPerSecond: Math.round(ok / wall),
    failedPerSecond: Math.round(failed / wall),
    cpuPercent: +((cpuSeconds / wall) * 100).toFixed(1),
    cpuMicrosPerProbe: +((cpuSeconds / Math.max(1, ok + failed)) * 1e6).toFixed(1),
    cpuPercentAtNominalRate: +((cpuSeconds / Math.max(1, ok + failed)) * nodes * 5 * 100).toFixed(1),
    loadAverage1m: +(loadavg()[0] ?? NaN).toFixed(1),
  };
}

const nodes = Number(process.argv[2] ?? 1000);
const seconds = Number(process.argv[3] ?? 10);
const port = await freePort();
const agents = await startSimAgents(nodes, port);
const results = [
  await measure('http', httpProbe('transport-bench', systemClock), { nodes, port, seconds }),
  await measure('udp-first', defaultProbe('transport-bench', systemClock, 3), { nodes, port, seconds }),
];
await agents.stop();
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
