// Failover benchmark in the two-node lab (root): client-visible downtime over repeated hard
// failures (agent frozen with SIGSTOP and its link cut) and graceful handovers (SIGTERM), the
// time from Service create to the first successful client request, and false failovers (a
// claim moved off a node that was not failed). Runs alone with `sudo make bench-failover`.
//
// Settings (environment):
//   BENCH_SCHEDULER_ARGS="--probe-interval 50ms ..."  extra scheduler flags (default: none = shipped defaults)
//   BENCH_AGENT_ARGS="--deadman 300ms ..."            extra agent flags
//   BENCH_CPU_LOAD=2                                   busy-loop processes beside the lab for the whole run
//   BENCH_HARD_FAILURES=20 BENCH_GRACEFUL=5 BENCH_CREATES=20
//   BENCH_IDLE_SECONDS=30                              a no-fault watch with claims on both nodes: every move is false
//   BENCH_TRACE=path.json                              writes the median hard failure as the client saw it (for plot.ts)
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Watch } from '@kubernetes/client-node';
import { claimName } from '../../api/names.js';
import { MOVE_ANNOTATION, type IpClaim } from '../../api/types.js';
import { startControlPlane, waitFor, type ControlPlane } from '../controlplane/harness.js';
import { startTwoNodeLab, type RequestLoop, type TwoNodeLab } from '../e2e/twonode.js';
import { startCapture, type Capture } from '../lab/index.js';
import { startCpuLoad, type CpuLoad } from '../lab/cpuload.js';
import { downtimeAround, type RequestResult } from '../support/downtime.js';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
/** Flags from an environment variable, split on white space. */
export const argsFrom = (name: string): string[] => (process.env[name] ?? '').split(/\s+/).filter((w) => w !== '');

export const VIP = '192.0.2.60';
/** Extra Services for the idle watch, so that both nodes hold claims a false failover could move. */
const IDLE_VIPS = ['192.0.2.61', '192.0.2.62', '192.0.2.63'];
const HISTOGRAM_EDGES = [100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 1000, 1500];

export interface Stats {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  return { n: sorted.length, min: sorted[0] ?? NaN, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

/** Counts per bucket: "<=100" holds values up to 100 ms, ">1500" the rest. */
export function histogram(values: number[], edges = HISTOGRAM_EDGES): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of edges) out[`<=${e}`] = 0;
  out[`>${edges[edges.length - 1] ?? 0}`] = 0;
  for (const v of values) {
    const e = edges.find((edge) => v <= edge);
    const key = e === undefined ? `>${edges[edges.length - 1] ?? 0}` : `<=${e}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** A claim's spec.nodeName changing from one node to another, as a watch saw it. */
export interface ClaimMoveSeen {
  t: number;
  ip: string;
  from: string;
  to: string;
}

/** A fault the benchmark applied: moves off `node` inside [start, end] are expected. */
export interface FaultWindow {
  node: string;
  start: number;
  end: number;
}

/** Moves that no fault explains: off a node that was not failed, or outside every fault. */
export function falseMoves(moves: ClaimMoveSeen[], faults: FaultWindow[]): ClaimMoveSeen[] {
  return moves.filter((m) => !faults.some((f) => f.node === m.from && m.t >= f.start && m.t <= f.end));
}

/** Watches every IpClaim and records each change of spec.nodeName. */
export async function watchMoves(lab: TwoNodeLab): Promise<{ moves: ClaimMoveSeen[]; stop(): void }> {
  const moves: ClaimMoveSeen[] = [];
  const nodeOf = new Map<string, string>();
  const ctl = await new Watch(lab.kc).watch(
    lab.ip.claims.watchPath,
    {},
    (type: string, obj: IpClaim) => {
      const name = obj.metadata?.name ?? '';
      if (type === 'DELETED') return void nodeOf.delete(name);
      const now = obj.spec?.nodeName ?? '';
      const before = nodeOf.get(name);
      if (now) nodeOf.set(name, now);
      if (before && now && before !== now)
        moves.push({ t: Date.now(), ip: (obj.spec.cidr ?? name).replace(/\/\d+$/, ''), from: before, to: now });
    },
    () => undefined,
  );
  return { moves, stop: () => ctl.abort() };
}

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

/** One hard failure as the client and the cluster saw it; times in ms since the epoch. */
export interface HardFailure {
  from: string;
  to: string;
  fault: number;
  downtimeMs: number;
  lastBefore: number;
  firstAfter: number;
  /** From the claim's move annotation (scheduler clock) and status.lastMove (agent clock). */
  detected?: number;
  claimed?: number;
  up?: number;
  /** First gratuitous ARP for the address from its new node, on the client's link. */
  firstGarp?: number;
  results: RequestResult[];
}

function moveTimes(claim: IpClaim | undefined): Pick<HardFailure, 'detected' | 'claimed' | 'up'> {
  const out: Pick<HardFailure, 'detected' | 'claimed' | 'up'> = {};
  const raw = claim?.metadata?.annotations?.[MOVE_ANNOTATION];
  try {
    const move = raw ? (JSON.parse(raw) as { detectedAt?: string; claimedAt?: string }) : {};
    if (move.detectedAt) out.detected = Date.parse(move.detectedAt);
    if (move.claimedAt) out.claimed = Date.parse(move.claimedAt);
  } catch {
    /* no timing: the breakdown leaves this failure out */
  }
  const upAt = claim?.status?.lastMove?.upAt;
  if (upAt) out.up = Date.parse(upAt);
  return out;
}

export interface BenchLab {
  cp: ControlPlane;
  lab: TwoNodeLab;
  capture: Capture;
  load: CpuLoad;
  faults: FaultWindow[];
  /** Moves the client saw complete but whose new node's agent did not confirm the claim in its status within 5 s. */
  unconfirmed: string[];
  watch: { moves: ClaimMoveSeen[]; stop(): void };
  close(): Promise<void>;
}

/** The lab with the flags of the environment, the VIP served, a client loop, a capture and the move watch. */
export async function startBenchLab(loadMs: number): Promise<BenchLab> {
  const cp = await startControlPlane({ serviceAccountAdmission: true });
  let lab: TwoNodeLab | undefined;
  try {
    lab = await startTwoNodeLab({
      kubeconfigPath: cp.kubeconfigPath,
      schedulerArgs: argsFrom('BENCH_SCHEDULER_ARGS'),
      agentArgs: argsFrom('BENCH_AGENT_ARGS'),
    });
    const l = lab;
    const load = startCpuLoad(l.lab, num('BENCH_CPU_LOAD', 0), loadMs);
    await l.core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name: 'bench-vip' }, spec: { externalIPs: [VIP], ports: [{ port: 80, targetPort: 80 }] } },
    });
    await l.servingNode(VIP);
    const capture = await startCapture(l.client.ns, l.client.port.ifname, 'arp');
    const watch = await watchMoves(l);
    const close = async (): Promise<void> => {
      watch.stop();
      await capture.stop();
      await load.stop();
      await l.destroy();
      await cp.stop();
    };
    return { cp, lab: l, capture, load, faults: [], unconfirmed: [], watch, close };
  } catch (err) {
    await lab?.destroy();
    await cp.stop();
    throw err;
  }
}

/** The node the claim for VIP names now (spec.nodeName), if any. */
async function assignedTo(lab: TwoNodeLab): Promise<string> {
  return (await lab.ip.claims.get(claimName(VIP)))?.spec.nodeName ?? '';
}

/**
 * Applies the fault and waits until the client is answered steadily by another node (the
 * client's view, the figure measured); unlike lab.move it does not also need the new node's
 * agent to have confirmed the claim in its status (see `unconfirmed`).
 */
async function failAndWait(b: BenchLab, loop: RequestLoop, window: FaultWindow): Promise<{ to: string; confirmed: boolean }> {
  const { lab } = b;
  const node = lab.node(window.node);
  await lab.fail(node);
  let to = '';
  await waitFor(
    `claim for ${VIP} moved off ${window.node}`,
    async () => {
      to = await assignedTo(lab);
      return to !== '' && to !== window.node;
    },
    20_000,
    20,
  );
  await waitFor(
    `5 answers in a row from ${to}`,
    async () => {
      const tail = loop.results().slice(-5);
      return tail.length === 5 && tail.every((r) => r.ok && r.body === to);
    },
    20_000,
    20,
  );
  const confirmed = await lab
    .servingNode(VIP, { not: window.node, timeoutMs: 5_000 })
    .then(() => true)
    .catch(() => false);
  return { to, confirmed };
}

/** One hard failure of the node serving VIP, recovered afterwards. */
export async function hardFailure(b: BenchLab, loop: RequestLoop): Promise<HardFailure> {
  const { lab } = b;
  await bothCandidates(lab);
  const from = await lab.servingNode(VIP);
  await loop.steady(10);
  const at = Date.now();
  const window: FaultWindow = { node: from, start: at, end: Infinity };
  b.faults.push(window);
  const { to, confirmed } = await failAndWait(b, loop, window);
  if (!confirmed) b.unconfirmed.push(`${VIP} on ${to} after ${from} failed at ${new Date(at).toISOString()}`);
  await loop.settled();
  const results = loop.results();
  const downtime = downtimeAround(results, at);
  if (!downtime) throw new Error(`no answer before or after the fault on ${from}`);
  const claim = await lab.ip.claims.get(claimName(VIP));
  const garp = b.capture.frames.find((f) => f.time > at && f.arp?.senderIp === VIP);
  await lab.recover(lab.node(from));
  await waitFor(`${from} drops ${VIP}`, async () => (await lab.holders(VIP)).length === 1, 15_000, 50);
  window.end = Date.now();
  return {
    from,
    to,
    fault: at,
    downtimeMs: downtime.downtimeMs,
    lastBefore: downtime.lastBefore,
    firstAfter: downtime.firstAfter,
    ...moveTimes(claim ?? undefined),
    ...(garp ? { firstGarp: garp.time } : {}),
    results: results.filter((r) => r.t >= at - 300 && r.t <= downtime.firstAfter + 300),
  };
}

/**
 * Runs count hard failures. One that does not complete (the client not answered steadily by
 * another node within 20 s) is reported in errors, its node recovered, and the series goes on;
 * after three the series ends.
 */
async function hardFailures(b: BenchLab, count: number, errors: string[]): Promise<HardFailure[]> {
  const out: HardFailure[] = [];
  const loop = b.lab.requestLoop(VIP, 20, 15 * 60_000);
  try {
    for (let i = 0; i < count && errors.length < 3; i++) {
      await hardFailureLogged(b, loop, out, count).catch(async (err: unknown) => {
        errors.push(`hard failure ${i + 1}: ${String(err)}`);
        process.stderr.write(`  ${errors[errors.length - 1]}\n`);
        await recoverAll(b);
      });
    }
  } finally {
    await loop.stop();
  }
  return out;
}

/** After a failure that did not complete: every node's link up and agent running, the fault window closed. */
async function recoverAll(b: BenchLab): Promise<void> {
  for (const node of b.lab.nodes.filter((n) => n.labelled)) await b.lab.recover(node);
  const open = b.faults.find((f) => f.end === Infinity);
  await new Promise((r) => setTimeout(r, 5_000));
  if (open) open.end = Date.now();
}

async function hardFailureLogged(b: BenchLab, loop: RequestLoop, out: HardFailure[], count: number): Promise<void> {
  const f = await hardFailure(b, loop);
  out.push(f);
  const p = breakdownOf(f);
  const steps = `detect ${p.detect ?? '?'}, write ${p.write ?? '?'}, up ${p.up ?? '?'}, garp ${p.garp ?? '?'}`;
  process.stderr.write(`  hard failure ${out.length}/${count}: ${f.from} -> ${f.to}: ${f.downtimeMs} ms (${steps})\n`);
}

/** What each step of one failover cost (ms): fault -> detected -> claim written -> address up -> first GARP. */
export function breakdownOf(f: HardFailure): { detect?: number; write?: number; up?: number; garp?: number } {
  return {
    ...(f.detected !== undefined ? { detect: f.detected - f.fault } : {}),
    ...(f.detected !== undefined && f.claimed !== undefined ? { write: f.claimed - f.detected } : {}),
    ...(f.claimed !== undefined && f.up !== undefined ? { up: f.up - f.claimed } : {}),
    ...(f.up !== undefined && f.firstGarp !== undefined ? { garp: Math.round(f.firstGarp - f.up) } : {}),
  };
}

function breakdownStats(failures: HardFailure[]): Record<string, Stats> {
  const parts = failures.map(breakdownOf);
  const pick = (k: 'detect' | 'write' | 'up' | 'garp'): number[] => parts.flatMap((p) => (p[k] === undefined ? [] : [p[k]]));
  return {
    fault_to_detected: stats(pick('detect')),
    detected_to_claim_written: stats(pick('write')),
    claim_written_to_address_up: stats(pick('up')),
    address_up_to_first_garp: stats(pick('garp')),
  };
}

async function gracefulHandovers(b: BenchLab, count: number): Promise<number[]> {
  const { lab } = b;
  const downtimes: number[] = [];
  const loop = lab.requestLoop(VIP, 20, 15 * 60_000);
  try {
    for (let i = 0; i < count; i++) downtimes.push(await gracefulHandover(b, loop, i, count));
  } finally {
    await loop.stop();
  }
  return downtimes;
}

async function gracefulHandover(b: BenchLab, loop: RequestLoop, i: number, count: number): Promise<number> {
  const { lab } = b;
  await bothCandidates(lab);
  const window: FaultWindow = { node: '', start: Date.now(), end: Infinity };
  b.faults.push(window);
  const { from, downtime } = await lab.move(loop, VIP, (node) => {
    Object.assign(window, { node: node.name, start: Date.now() });
    node.agent?.proc.signal('SIGTERM');
  });
  const node = lab.node(from);
  await node.agent?.proc.exited;
  if (!downtime) throw new Error(`handover ${i}: no answer before or after SIGTERM`);
  process.stderr.write(`  graceful handover ${i + 1}/${count}: ${downtime.downtimeMs} ms\n`);
  await lab.startAgent(node);
  window.end = Date.now();
  return downtime.downtimeMs;
}

async function createToFirstAnswer(lab: TwoNodeLab, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
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

/** Failed probes the leader counted so far, over every node (its probe_failures_total). */
async function leaderProbeFailures(lab: TwoNodeLab): Promise<number> {
  const replica = await lab.leaderReplica();
  if (!replica) return NaN;
  const r = await lab.lab.exec(replica.ns, ['curl', '-s', '-m', '2', 'http://127.0.0.1:9611/metrics']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('ipcontroller_scheduler_probe_failures_total{'));
  return lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

export interface IdleWatch {
  seconds: number;
  /** Claim moves seen: each one is a false failover. */
  moves: number;
  /** Probes of healthy nodes the leader counted as failed meanwhile: the margin left before a false failover. */
  failed_probes: number;
  /** Requests of a client asking VIP every 20 ms that failed meanwhile (a blip no move explains, e.g. a self-fenced agent). */
  client_failures: number;
  client_requests: number;
}

/** A no-fault period with claims on both nodes: every move in it is a false failover. */
async function idleWatch(b: BenchLab, seconds: number): Promise<IdleWatch> {
  if (seconds <= 0) return { seconds: 0, moves: 0, failed_probes: 0, client_failures: 0, client_requests: 0 };
  const { lab } = b;
  for (const [i, ip] of IDLE_VIPS.entries()) {
    await lab.core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name: `bench-idle-${i}` }, spec: { externalIPs: [ip], ports: [{ port: 80, targetPort: 80 }] } },
    });
    await lab.servingNode(ip);
  }
  await bothCandidates(lab);
  const start = Date.now();
  const before = b.watch.moves.length;
  const failedBefore = await leaderProbeFailures(lab);
  process.stderr.write(`  idle watch: ${seconds} s with no fault\n`);
  const loop = lab.requestLoop(VIP, 20, seconds * 1000 + 60_000);
  await loop.steady(5);
  const loopStart = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const requests = (await loop.stop()).filter((r) => r.t >= loopStart);
  const failed = (await leaderProbeFailures(lab)) - failedBefore;
  const moves = b.watch.moves.slice(before).filter((m) => m.t >= start).length;
  const clientFailures = requests.filter((r) => !r.ok).length;
  process.stderr.write(
    `  idle watch: ${moves} moves, ${failed} failed probes of healthy nodes, ${clientFailures} of ${requests.length} client requests failed\n`,
  );
  return { seconds, moves, failed_probes: failed, client_failures: clientFailures, client_requests: requests.length };
}

export function settingsText(): string {
  const sched = argsFrom('BENCH_SCHEDULER_ARGS').join(' ');
  const agent = argsFrom('BENCH_AGENT_ARGS').join(' ');
  const load = num('BENCH_CPU_LOAD', 0);
  return [
    sched || agent ? `scheduler [${sched || 'defaults'}], agent [${agent || 'defaults'}]` : 'shipped defaults',
    load > 0 ? `${load} CPU-bound busy loops beside the lab` : 'no added load',
    'client request every 20 ms, 250 ms timeout',
    `machine load average ${loadavg()[0]?.toFixed(1) ?? '?'} (2 cores, shared)`,
  ].join('; ');
}

export async function run(): Promise<Record<string, unknown>> {
  const hardCount = num('BENCH_HARD_FAILURES', 20);
  const idleSeconds = num('BENCH_IDLE_SECONDS', 30);
  const started = Date.now();
  const b = await startBenchLab(60 * 60_000);
  try {
    const errors: string[] = [];
    const hard = await hardFailures(b, hardCount, errors);
    const traceFile = process.env.BENCH_TRACE;
    // The failover with the median downtime: the picture of a typical one.
    const typical = [...hard].sort((x, y) => x.downtimeMs - y.downtimeMs)[Math.floor(hard.length / 2)];
    if (traceFile && typical) writeFileSync(traceFile, JSON.stringify({ settings: settingsText(), failure: typical }, null, 2));
    const graceful = await gracefulHandovers(b, num('BENCH_GRACEFUL', 5));
    const create = await createToFirstAnswer(b.lab, num('BENCH_CREATES', 20));
    const idle = await idleWatch(b, idleSeconds);
    const downtimes = hard.map((f) => f.downtimeMs);
    const wrong = falseMoves(b.watch.moves, b.faults);
    return {
      settings: settingsText(),
      hard_failover_downtime_ms: stats(downtimes),
      graceful_handover_downtime_ms: stats(graceful),
      service_create_to_first_answer_ms: stats(create),
      scheduler_args: argsFrom('BENCH_SCHEDULER_ARGS'),
      agent_args: argsFrom('BENCH_AGENT_ARGS'),
      cpu_load_processes: b.load.count,
      hard_failover_downtime_histogram_ms: histogram(downtimes),
      hard_failover_downtimes_ms: downtimes,
      hard_failover_breakdown_ms: breakdownStats(hard),
      false_failovers: wrong.length,
      false_failover_moves: wrong,
      claim_moves_seen: b.watch.moves.length,
      claim_status_unconfirmed: b.unconfirmed,
      idle_watch: idle,
      run_seconds: Math.round((Date.now() - started) / 1000),
      load_average: loadavg().map((l) => Number(l.toFixed(1))),
      ...(errors.length ? { errors } : {}),
    };
  } finally {
    await b.close();
  }
}
