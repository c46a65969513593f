// Probe-scale benchmark (issue 14.2): what probing costs the scheduler as nodes grow. For each
// size (10, 100, 500, 1,000 agent nodes): Nodes and IpNodes in a real apiserver, the agents
// simulated by one separate process on loopback (_simagents.ts, a small Go program: agent i on
// 127.77.<i/250>.<1+i%250>, HTTP /healthz and the UDP probe on one port number), some Services
// placed on them, and two scheduler replicas as their own processes (cli.ts, leader election on).
// Over a window per size (shipped scheduler defaults unless BENCH_PROBESCALE_SCHEDULER_ARGS says) it reports the leader's and the standby's CPU (utime + stime from
// /proc/<pid>/stat, in % of one core), the probe round trip p99 (the leader's per-node RTT gauge
// sampled every 2 s), failed probes, and false failovers: every agent answers throughout, so every
// move of a claim (spec.nodeName changed, watched) and every failovers_total increment is false.
// The heartbeats are written every 15 s with --monitor=60s so that the apiserver traffic of
// 1,000 heartbeats every 2 s does not drown the probing cost being measured on a 2-core machine.
// Env: BENCH_PROBESCALE_SECONDS (window per size, default 30; the issue asks 300),
// BENCH_PROBESCALE_SIZES (default 10,100,500,1000), BENCH_PROBESCALE_SCHEDULER_ARGS (more flags),
// BENCH_PROBESCALE_LOGDIR (where the replicas' logs go; default the control plane's folder),
// BENCH_PROBESCALE_NODE_ARGS (Node flags for the replicas, e.g. `--cpu-prof --cpu-prof-dir=DIR`
// for a CPU profile of each replica per size: Node refuses --cpu-prof in NODE_OPTIONS).
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { API_VERSION, GROUP, PLURAL, VERSION } from '../../api/types.js';
import { freePort, startControlPlane, waitFor, type ControlPlane } from '../controlplane/harness.js';
import {
  createLoadBalancerServices,
  heartbeat,
  inBatches,
  percentile,
  registerAgentNode,
  schedulerArgv,
  stopChild,
  withCli,
} from './_harness.js';
import { probeStretch, standbyStretch } from '../../scheduler/prober.js';
import { SIM_NODE_PREFIX, simAddress, startSimAgents, type SimAgents, type SimCounts } from './_simagents.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NS = 'default';
const SERVICES = 20;
const HEARTBEAT_MS = 15_000;
const log = (msg: string): void => void process.stderr.write(`  probescale bench: ${msg}\n`);

/** CPU seconds (user + system) a process used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are 12 and 13 after the command name; clock ticks of 1/100 s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Sum of a metric's samples whose line starts with `name` (all label sets). */
function metricSum(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

function metricSamples(text: string, name: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .map((l) => Number(l.split(' ').pop()));
}

class Replica {
  child: ChildProcess | null = null;
  constructor(
    readonly identity: string,
    private readonly cp: ControlPlane,
    readonly port: number,
  ) {}

  start(extraArgs: string[]): void {
    const out = openSync(join(process.env.BENCH_PROBESCALE_LOGDIR ?? this.cp.dir, `probescale-${this.identity}.log`), 'a');
    const argv = schedulerArgv(
      process.env.BENCH_PROBESCALE_NODE_ARGS,
      { kubeconfigPath: this.cp.kubeconfigPath, port: this.port, namespace: NS, identity: this.identity },
      [
        '--monitor=60s',
        // Leader election is not what is measured: relaxed so that a busy host's slow apiserver
        // (lease requests time out at half the renew deadline) does not keep the bench leaderless.
        '--leader-elect-lease-duration=30s',
        '--leader-elect-renew-deadline=20s',
        '--leader-elect-retry-period=2s',
        '--log-level=warn',
        ...extraArgs,
      ],
    );
    this.child = spawn(process.execPath, withCli(argv, process.env.IPC_BENCH_SCHEDULER_CLI), { cwd: ROOT, stdio: ['ignore', out, out] });
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
  }

  async leading(): Promise<boolean> {
    return metricSum(await this.metrics().catch(() => ''), 'ipcontroller_scheduler_leader') === 1;
  }

  cpu(): number {
    return cpuSeconds(this.child?.pid ?? 0);
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    this.child = null;
  }
}

/** Counts changes of spec.nodeName of claims that already had one: moves. */
class MoveCounter {
  private readonly nodeOf = new Map<string, string>();
  moves = 0;
  private stop: AbortController | null = null;
  constructor(private readonly kc: KubeConfig) {}

  start(): void {
    const stop = new AbortController();
    this.stop = stop;
    const again = (): void => {
      if (stop.signal.aborted) return;
      void new Watch(this.kc)
        .watch(
          `/apis/${GROUP}/${VERSION}/${PLURAL.IpClaim}`,
          {},
          (type, obj: { metadata?: { name?: string }; spec?: { nodeName?: string } }) => {
            const name = obj.metadata?.name ?? '';
            const node = obj.spec?.nodeName;
            const before = this.nodeOf.get(name);
            if (type === 'DELETED') return void this.nodeOf.delete(name);
            if (before && node && before !== node) this.moves++;
            if (node) this.nodeOf.set(name, node);
          },
          () => setTimeout(again, 300),
        )
        .then((c) => stop.signal.addEventListener('abort', () => c.abort(), { once: true }))
        .catch(() => setTimeout(again, 300));
    };
    again();
  }
  placed(): number {
    return this.nodeOf.size;
  }
  end(): void {
    this.stop?.abort();
  }
}

async function addNodes(api: { core: CoreV1Api; clients: IpClients }, range: { from: number; to: number }, port: number): Promise<void> {
  const { core, clients } = api;
  const indexes = Array.from({ length: range.to - range.from }, (_, k) => range.from + k);
  await inBatches(indexes, 16, async (i) => {
    const name = `${SIM_NODE_PREFIX}${i}`;
    await registerAgentNode(core, clients, name, { address: simAddress(i), port });
    await heartbeat(clients, name);
  });
}

/** Keeps every heartbeat fresh, spread over HEARTBEAT_MS. */
function heartbeats(clients: IpClients, count: () => number, signal: AbortSignal): void {
  let i = 0;
  const tick = (): void => {
    if (signal.aborted) return;
    const n = count();
    const perTick = Math.max(1, Math.ceil(n / (HEARTBEAT_MS / 100)));
    for (let k = 0; k < perTick && n > 0; k++) void heartbeat(clients, `${SIM_NODE_PREFIX}${i++ % n}`);
    setTimeout(tick, 100);
  };
  tick();
}

interface ReplicaResult {
  /** utime + stime over the window, in % of one core. */
  cpuPercent: number;
  /** Probes the simulated agents answered for this replica, per second (nominal: nodes x 5). */
  probesPerSecond: { http: number; udp: number };
  /** CPU per answered probe (all of the replica's CPU, so an upper bound of the probe's share). */
  cpuMicrosPerProbe: number;
  /** cpuMicrosPerProbe x the nominal probe rate (nominalProbesPerSecond): the CPU it would use if the host let it probe at full rate. */
  cpuPercentAtNominalRate: number;
}

interface SizeResult {
  nodes: number;
  windowSeconds: number;
  loadAverage1m: number;
  leader: ReplicaResult;
  standby: ReplicaResult;
  /** Probes a second the leader should send at its interval and rate cap (nodes x 10 at the defaults up to 1,000 nodes). */
  nominalProbesPerSecond: number;
  /** The same for the standby (nodes x 1 at the defaults: --standby-probe-interval 1s). */
  standbyNominalProbesPerSecond: number;
  probeRttP50Ms: number;
  probeRttP99Ms: number;
  probeRttMaxMs: number;
  probeFailures: number;
  falseFailovers: number;
  claimMoves: number;
  leaderChanged: boolean;
}

function replicaResult(cpuSeconds: number, seconds: number, answered: { http: number; udp: number }, nominalRate: number): ReplicaResult {
  const probes = answered.http + answered.udp;
  const perProbe = probes > 0 ? cpuSeconds / probes : NaN;
  return {
    cpuPercent: +((cpuSeconds / seconds) * 100).toFixed(1),
    probesPerSecond: { http: Math.round(answered.http / seconds), udp: Math.round(answered.udp / seconds) },
    cpuMicrosPerProbe: +(perProbe * 1e6).toFixed(1),
    cpuPercentAtNominalRate: +(perProbe * nominalRate * 100).toFixed(1),
  };
}

/** A flag's value from the bench's extra scheduler flags ("--flag=N" or "--flag N"), or undefined. */
function flagText(args: string[], flag: string): string | undefined {
  const i = args.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  return i < 0 ? undefined : args[i]?.includes('=') ? args[i]?.split('=')[1] : args[i + 1];
}

/** A duration flag's value in ms from the bench's extra scheduler flags ("--flag=100ms" or "--flag 100ms"), or the default. */
export function flagMs(args: string[], flag: string, fallback: number): number {
  const text = flagText(args, flag);
  const m = text ? /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text) : null;
  if (!m) return fallback;
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/**
 * Probes a second per replica at the scheduler's interval and rate cap (its defaults: 100 ms,
 * 10,000/s), stretched as prober.ts does; a standby's also by --standby-probe-interval (1 s).
 */
export function nominalProbeRate(nodes: number, args: string[], standby = false): number {
  const intervalMs = flagMs(args, '--probe-interval', 100);
  const capText = flagText(args, '--probe-max-rate');
  const cap = capText === undefined ? 10_000 : Number(capText);
  const stretch = Math.max(
    probeStretch(nodes, intervalMs, cap),
    standby ? standbyStretch(intervalMs, flagMs(args, '--standby-probe-interval', 1_000)) : 1,
  );
  return (nodes * 1000) / intervalMs / stretch;
}

function answeredBetween(c0: SimCounts, c1: SimCounts, identity: string): { http: number; udp: number } {
  const a = c0[identity] ?? { http: 0, udp: 0 };
  const b = c1[identity] ?? { http: 0, udp: 0 };
  return { http: b.http - a.http, udp: b.udp - a.udp };
}

async function measure(nodes: number, replicas: Replica[], moves: MoveCounter, agents: SimAgents): Promise<SizeResult> {
  const windowMs = Number(process.env.BENCH_PROBESCALE_SECONDS ?? 30) * 1000;
  const extra = process.env.BENCH_PROBESCALE_SCHEDULER_ARGS?.split(' ').filter(Boolean) ?? [];
  for (const r of replicas) r.start(extra);
  await waitFor('a leader', async () => (await Promise.all(replicas.map((r) => r.leading()))).some(Boolean), 180_000, 200);
  await waitFor(`${SERVICES} claims placed`, async () => moves.placed() >= SERVICES, 180_000, 200);
  // Settle: every replica's caches listed and its probe loops running before the window opens.
  await new Promise((r) => setTimeout(r, 3_000));
  const leader = (await replicas[0]?.leading()) ? replicas[0] : replicas[1];
  const standby = replicas.find((r) => r !== leader);
  if (!leader || !standby) throw new Error('no leader');
  const before = { leader: leader.cpu(), standby: standby.cpu(), t: performance.now(), moves: moves.moves };
  const startText = await leader.metrics();
  const counts0 = await agents.counts();
  const rtts: number[] = [];
  const until = performance.now() + windowMs;
  while (performance.now() < until) {
    await new Promise((r) => setTimeout(r, 2_000));
    rtts.push(...metricSamples(await leader.metrics(), 'ipcontroller_scheduler_probe_rtt_seconds').map((s) => s * 1000));
  }
  const seconds = (performance.now() - before.t) / 1000;
  const nominal = nominalProbeRate(nodes, extra);
  const standbyNominal = nominalProbeRate(nodes, extra, true);
  const cpu = { leader: leader.cpu() - before.leader, standby: standby.cpu() - before.standby };
  const endText = await leader.metrics();
  const counts1 = await agents.counts();
  const delta = (name: string): number => metricSum(endText, name) - metricSum(startText, name);
  rtts.sort((a, b) => a - b);
  const stillLeader = await leader.leading();
  for (const r of replicas) await r.stop();
  if (!stillLeader) log(`leadership changed during the window at ${nodes} nodes`);
  return {
    nodes,
    windowSeconds: +seconds.toFixed(1),
    loadAverage1m: +(loadavg()[0] ?? NaN).toFixed(1),
    leader: replicaResult(cpu.leader, seconds, answeredBetween(counts0, counts1, leader.identity), nominal),
    standby: replicaResult(cpu.standby, seconds, answeredBetween(counts0, counts1, standby.identity), standbyNominal),
    nominalProbesPerSecond: Math.round(nominal),
    standbyNominalProbesPerSecond: Math.round(standbyNominal),
    probeRttP50Ms: +percentile(rtts, 50).toFixed(3),
    probeRttP99Ms: +percentile(rtts, 99).toFixed(3),
    probeRttMaxMs: +(rtts.at(-1) ?? NaN).toFixed(3),
    probeFailures: delta('ipcontroller_scheduler_probe_failures_total'),
    falseFailovers: delta('ipcontroller_scheduler_failovers_total'),
    claimMoves: moves.moves - before.moves,
    leaderChanged: !stillLeader,
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const sizes = (process.env.BENCH_PROBESCALE_SIZES ?? '10,100,500,1000').split(',').map(Number);
  const max = Math.max(...sizes);
  log('starting a control plane');
  const cp = await startControlPlane();
  const stop = new AbortController();
  const port = await freePort();
  const agents = await startSimAgents(max, port);
  const replicas = [new Replica('probescale-a', cp, await freePort()), new Replica('probescale-b', cp, await freePort())];
  const moves = new MoveCounter(cp.kubeConfig());
  try {
    const kc = cp.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const clients = ipClients(kc);
    await clients.pools.create({
      apiVersion: API_VERSION,
      kind: 'IpClaimPool',
      metadata: { name: 'probescale' },
      spec: { cidr: '198.51.100.0/24' },
    });
    const names = Array.from({ length: SERVICES }, (_, i) => `ps-svc-${i}`);
    await createLoadBalancerServices(core, { namespace: NS, names, concurrency: 8 });
    moves.start();
    let have = 0;
    heartbeats(clients, () => have, stop.signal);
    const results: Array<SizeResult | { nodes: number; error: string }> = [];
    for (const nodes of sizes.sort((a, b) => a - b)) {
      log(`${nodes} nodes: creating ${nodes - have} more`);
      await addNodes({ core, clients }, { from: have, to: nodes }, port);
      have = nodes;
      // One size that cannot be measured (a host too busy to elect a leader) does not lose the others.
      const r = await measure(nodes, replicas, moves, agents).catch(async (err: unknown) => {
        for (const replica of replicas) await replica.stop();
        return { nodes, error: String(err) };
      });
      log(JSON.stringify(r));
      results.push(r);
    }
    return {
      sizes: results,
      note: `simulated agents in one Go process (test/bench/simagents) on 127.77.x.y; two scheduler replicas as processes (${process.env.IPC_BENCH_SCHEDULER_CLI ?? 'cli.ts under tsx'}; the standby probes every --standby-probe-interval, 1 s by default, since stop 21); CPU = utime+stime over the window in % of one core; probesPerSecond = probes the simulated agents answered for that replica (by its identity); cpuPercentAtNominalRate = CPU per answered probe x nominalProbesPerSecond (nodes x 1000 / --probe-interval, capped by --probe-max-rate as the scheduler does; before 14.2 stop 19 this was nodes x 5, the old 200 ms interval: what it costs at full rate on a host busy enough to starve it); RTT = leader per-node gauge sampled every 2 s; heartbeats every 15 s with --monitor=60s; leader election relaxed (lease 30 s, renew deadline 20 s, retry 2 s)`,
      schedulerArgs: process.env.BENCH_PROBESCALE_SCHEDULER_ARGS ?? '',
    };
  } finally {
    stop.abort();
    moves.end();
    for (const r of replicas) await r.stop();
    await agents.stop();
    await cp.stop();
  }
}
