// Probes every agent directly, every --probe-interval, and reports each result. Which results
// make a node failed is decided in health.ts.
//
// Transport: one UDP datagram each way (api/probewire.ts) on the IpNode's probePort, from one
// socket per address family for all targets; an agent that has not answered over UDP yet (an
// older agent, or one whose UDP port is blocked) is probed over keep-alive HTTP GET /healthz at
// the same time, and the first good answer counts, so mixed versions keep working.
// Fallback: an agent that has answered over UDP stays on UDP alone until --probe-failures - 1
// UDP probes in a row have failed (at least 1), and only then gets HTTP beside UDP. Why not at
// the first miss: on a busy host a late UDP answer is the common failure, and sending HTTP (about
// 8 times the CPU of a UDP probe) after every one of them doubled the work exactly when the host
// had none to spare (the probe-scale bench at 500 nodes: 909 HTTP probes a second beside 1,105
// UDP). Why not later: an agent that lost UDP (downgraded, port blocked) must be answered over
// HTTP before its failures reach --probe-failures, so it never counts as failed. A UDP answer
// that comes after its probe's timeout resets the count too: that agent answers UDP, late, and
// HTTP would be as late (at 1,000 nodes on a busy host, half the probes went to HTTP). Scheduling:
// one timer for all targets, which are spread over the interval in slots of about 10 ms, so a
// thousand nodes are a few dozen datagrams every 10 ms instead of a thousand timers and
// connections each waking on its own.
import { Agent, request } from 'node:http';
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { ProbeResult } from './health.js';
import { udpProber } from './probeudp.js';
import { judgeProbeAnswer, PROBE_HEADER, PROBE_PATH } from '../api/probe.js';

export interface ProbeTarget {
  node: string;
  address: string;
  port: number;
}

/**
 * One probe; the port the scheduler's probing runs on (real HTTP or UDP, or a test double).
 * `forget`, where there is one, is told of each target the Prober stops probing.
 */
export type ProbeFn = ((target: ProbeTarget, timeoutMs: number) => Promise<ProbeResult>) & { forget?(target: ProbeTarget): void };

/** The HTTP probe: GET /healthz with the scheduler's identity; 200 and {"ok":true,"node":name}. */
export function httpProbe(identity: string, clock: Clock): ProbeFn {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
  return (target, timeoutMs) =>
    new Promise<ProbeResult>((resolve) => {
      const started = clock.now();
      let settled = false;
      const finish = (result: ProbeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const req = request(
        { hostname: target.address, port: target.port, path: PROBE_PATH, method: 'GET', agent, headers: { [PROBE_HEADER]: identity } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (body.length < 4096) body += chunk;
          });
          res.on('end', () => finish(judge(target, res.statusCode ?? 0, body, clock.now() - started)));
          res.on('error', (err) => finish({ ok: false, error: err.message }));
        },
      );
      // As the UDP probe: the timeout acts after this turn's socket reads (setImmediate), so an
      // answer that came in while the scheduler did not get the CPU is read before it gives up.
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (!settled) req.destroy(new Error(`timeout after ${timeoutMs}ms`));
        });
      }, timeoutMs);
      req.on('error', (err) => finish({ ok: false, error: err.message }));
      req.end();
    });
}

/** The answer judged by the contract (api/probe.ts), with the round trip on success. */
function judge(target: ProbeTarget, status: number, body: string, rttMs: number): ProbeResult {
  const verdict = judgeProbeAnswer(target.node, status, body);
  return verdict.ok ? { ...verdict, rttMs } : verdict;
}

/**
 * Whether the next probe of a target goes over UDP alone: it has answered over UDP (`misses` is
 * not null: the UDP failures in a row since) and has missed fewer than `probeFailures - 1` (at
 * least 1) since. Pure.
 */
export function udpAlone(misses: number | null, probeFailures: number): boolean {
  return misses !== null && misses < Math.max(1, probeFailures - 1);
}

/** What udpFirstProbe knows of one target: the UDP failures in a row since its last UDP answer (null: none yet). */
interface UdpRecord {
  misses: number | null;
}

/** udpFirstProbe's probe, with what it must be told besides. */
export type UdpFirstProbe = ProbeFn & {
  /** A UDP answer came after its probe's timeout (udpProber onLateAnswer). */
  lateAnswer(target: ProbeTarget): void;
  forget(target: ProbeTarget): void;
};

/**
 * UDP where the agent answers it, HTTP beside it where it has not (yet) or has stopped: a target
 * is probed over both until its first UDP answer, then over UDP alone until udpAlone says no
 * (see the header: a late answer on a busy host must not add an HTTP probe, an agent that lost
 * UDP must get one before it counts as failed), then over both again until UDP answers again.
 * A UDP answer that comes late counts as a UDP answer here (not for health): the agent answers
 * UDP, and HTTP beside it would be late too and cost 8 times as much. A removed target is
 * forgotten (Prober.sync calls forget).
 */
export function udpFirstProbe(udp: ProbeFn, http: ProbeFn, opts: { probeFailures: number }): UdpFirstProbe {
  const known = new Map<string, UdpRecord>();
  const keyOf = (target: ProbeTarget): string => `${target.address}|${target.port}`;
  const probe = (target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> => {
    const key = keyOf(target);
    let rec = known.get(key);
    if (!rec) known.set(key, (rec = { misses: null }));
    const r = rec;
    const viaUdp = udp(target, timeoutMs).then((result) => {
      r.misses = udpMisses(r.misses, result.ok);
      return result;
    });
    if (udpAlone(r.misses, opts.probeFailures)) return viaUdp;
    return firstOk(viaUdp, http(target, timeoutMs));
  };
  return Object.assign(probe, {
    lateAnswer: (target: ProbeTarget) => {
      const rec = known.get(keyOf(target));
      if (rec) rec.misses = 0;
    },
    forget: (target: ProbeTarget) => void known.delete(keyOf(target)),
  });
}

/** The UDP misses in a row after one more UDP result: an answer resets them, a miss counts once UDP has answered. Pure. */
export function udpMisses(misses: number | null, answered: boolean): number | null {
  if (answered) return 0;
  return misses === null ? null : misses + 1;
}

/** The first ok result of two, or the second's failure when both fail (HTTP's error says more). */
export function firstOk(a: Promise<ProbeResult>, b: Promise<ProbeResult>): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let failures = 0;
    const settle = (r: ProbeResult, last: ProbeResult | null): void => {
      if (r.ok) return resolve(r);
      failures += 1;
      if (failures === 2) resolve(last ?? r);
    };
    let bResult: ProbeResult | null = null;
    void a.then((r) => settle(r, bResult));
    void b.then((r) => {
      bResult = r;
      settle(r, r);
    });
  });
}

/** The scheduler's probe: UDP with an HTTP fallback per target (see udpFirstProbe); probeFailures as --probe-failures. */
export function defaultProbe(identity: string, clock: Clock, probeFailures: number): ProbeFn {
  const late = { to: (_target: ProbeTarget): void => undefined };
  const udp = udpProber(identity, { onLateAnswer: (target) => late.to(target) });
  const first = udpFirstProbe(udp, httpProbe(identity, clock), { probeFailures });
  late.to = (target) => first.lateAnswer(target);
  return first;
}

export interface ProberOptions {
  probe: ProbeFn;
  intervalMs: number;
  timeoutMs: number;
  /** --probe-max-rate: probes per second this replica sends at most (0 or absent: no cap); see probeStretch. */
  maxRate?: number;
  /** --standby-probe-interval: how often a standby probes each target (absent: as the leader); see standbyStretch. */
  standbyIntervalMs?: number;
  clock: Clock;
  onResult(node: string, result: ProbeResult): void;
}

/**
 * The longest interval the rate cap stretches to. Agents count being probed as contact for
 * fencing (--fence-after, 3 s by default): 1 s keeps three probes in that window.
 */
export const MAX_STRETCHED_INTERVAL_MS = 1_000;

/**
 * How many intervals apart each target is probed under the rate cap: 1 while `targets` probes
 * per interval stay within `maxRate` a second, else the fewest whole intervals that do, at most
 * up to MAX_STRETCHED_INTERVAL_MS. The cost of probing then stops growing with the nodes; what
 * grows instead is the time to find a dead node ((failures - 1) x the stretched interval +
 * timeout). The agents' dead-man switch does not depend on it (the agent refreshes it itself,
 * agent.ts deadmanLoop): a later failover only widens its margin. Pure.
 */
export function probeStretch(targets: number, intervalMs: number, maxRate: number | undefined): number {
  if (!maxRate || maxRate <= 0 || targets <= 0) return 1;
  const wanted = Math.ceil((targets * 1000) / (maxRate * intervalMs));
  return Math.max(1, Math.min(wanted, Math.floor(MAX_STRETCHED_INTERVAL_MS / intervalMs)));
}

/**
 * How many intervals apart a standby probes each target: --standby-probe-interval in whole
 * intervals, at least 1, at most MAX_STRETCHED_INTERVAL_MS. A standby decides nothing with its
 * probes; they keep its view warm for a takeover (which waits a lease duration, 4 s by default,
 * after the leader's last renew, so a view 1 s old is fresh enough) and count as contact for the
 * agents' fencing. Probing at the leader's rate doubled the probes every agent answers and the
 * CPU the replicas spend (issue 14.2). Pure.
 */
export function standbyStretch(intervalMs: number, standbyIntervalMs: number | undefined): number {
  if (!standbyIntervalMs || standbyIntervalMs <= intervalMs) return 1;
  return Math.max(1, Math.floor(Math.min(standbyIntervalMs, MAX_STRETCHED_INTERVAL_MS) / intervalMs));
}

/** About this long between two ticks of the probe timer; the interval is cut into that many slots. */
export const PROBE_SLOT_MS = 10;

/** The slots an interval is cut into, and the slot a node falls in (stable: a hash of its name). */
export function probeSlots(intervalMs: number): number {
  return Math.max(1, Math.round(intervalMs / PROBE_SLOT_MS));
}

export function slotOf(node: string, slots: number): number {
  return nameHash(node) % slots;
}

/** Which of `stretch` rounds a node is probed in under the rate cap (stable, spread apart from its slot). */
export function phaseOf(node: string, slots: number, stretch: number): number {
  return Math.floor(nameHash(node) / slots) % stretch;
}

function nameHash(node: string): number {
  let h = 2166136261;
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 16777619);
  return h >>> 0;
}

interface Probed {
  target: ProbeTarget;
  slot: number;
  /** The round, of every `stretch`, it is probed in (phaseOf). */
  phase: number;
  inFlight: boolean;
  /** Bumped when the target is replaced or removed: a result of an older one is not reported. */
  generation: number;
}

/**
 * Probes every target once per interval from one timer: each tick probes one slot's targets
 * (one probe in flight per target; a target still waiting for its last answer is skipped).
 * A new target waits for its slot (at most one interval), so a thousand targets that appear at
 * once (a scheduler starting) do not send a thousand probes, and get as many answers, in one burst.
 */
/**
 * The slots due at `now` when the next one was due at `nextAt`: a timer that fires late (a busy
 * host) catches up on the slots it missed, so every target is still probed once per interval;
 * more than a whole interval late, each slot is probed once and the count starts again from now.
 */
export function slotsDue(nextAt: number, now: number, slotMs: number, slots: number): { count: number; nextAt: number } {
  if (now < nextAt) return { count: 0, nextAt };
  const due = Math.floor((now - nextAt) / slotMs) + 1;
  if (due > slots) return { count: slots, nextAt: now + slotMs };
  return { count: due, nextAt: nextAt + due * slotMs };
}

export class Prober {
  private readonly targets = new Map<string, Probed>();
  private readonly bySlot: Array<Set<Probed>>;
  private readonly slots: number;
  private readonly slotMs: number;
  private readonly stopped: AbortSignal;
  private nextSlot = 0;
  private nextAt: number;
  private generation = 0;
  /** Rounds over all slots so far, and every how many rounds a target is probed (probeStretch). */
  private round = 0;
  private stretch = 1;
  /** Probing as a standby (standbyStretch) rather than as the leader. */
  private standby = false;

  constructor(
    private readonly opts: ProberOptions,
    signal: AbortSignal,
  ) {
    this.slots = probeSlots(opts.intervalMs);
    this.slotMs = opts.intervalMs / this.slots;
    this.bySlot = Array.from({ length: this.slots }, () => new Set<Probed>());
    this.nextAt = opts.clock.now();
    // One listener on the scheduler's signal; the timer sleeps on this one.
    const own = new AbortController();
    this.stopped = own.signal;
    signal.addEventListener(
      'abort',
      () => {
        own.abort();
        this.sync([]);
      },
      { once: true },
    );
    void every(opts.clock, this.slotMs, own.signal, () => this.probeDueSlots());
  }

  sync(targets: ProbeTarget[]): void {
    const wanted = new Map(targets.map((t) => [t.node, t]));
    for (const [node, p] of this.targets) {
      const t = wanted.get(node);
      if (!t || t.address !== p.target.address || t.port !== p.target.port || this.stopped.aborted) {
        this.targets.delete(node);
        this.bySlot[p.slot]?.delete(p);
        this.opts.probe.forget?.(p.target);
      }
    }
    if (this.stopped.aborted) return;
    this.restretch(wanted.size);
    for (const target of wanted.values()) {
      if (this.targets.has(target.node)) continue;
      const p: Probed = {
        target,
        slot: slotOf(target.node, this.slots),
        phase: phaseOf(target.node, this.slots, this.stretch),
        inFlight: false,
        generation: ++this.generation,
      };
      this.targets.set(target.node, p);
      this.bySlot[p.slot]?.add(p);
    }
  }

  /**
   * A standby probes each target every --standby-probe-interval, the leader every interval (each
   * stretched by the rate cap). Becoming the leader probes every target in the next round.
   */
  setStandby(standby: boolean): void {
    this.standby = standby;
    this.restretch(this.targets.size);
  }

  isStandby(): boolean {
    return this.standby;
  }

  private restretch(targets: number): void {
    const { intervalMs, maxRate, standbyIntervalMs } = this.opts;
    const stretch = Math.max(probeStretch(targets, intervalMs, maxRate), this.standby ? standbyStretch(intervalMs, standbyIntervalMs) : 1);
    if (stretch === this.stretch) return;
    this.stretch = stretch;
    for (const p of this.targets.values()) p.phase = phaseOf(p.target.node, this.slots, stretch);
  }

  private probeDueSlots(): void {
    const due = slotsDue(this.nextAt, this.opts.clock.now(), this.slotMs, this.slots);
    this.nextAt = due.nextAt;
    for (let i = 0; i < due.count; i++) {
      const slot = this.nextSlot;
      this.nextSlot = (slot + 1) % this.slots;
      const phase = this.round % this.stretch;
      if (this.nextSlot === 0) this.round++;
      for (const p of this.bySlot[slot] ?? []) if (!p.inFlight && p.phase === phase) this.probe(p);
    }
  }

  /** How long apart each target is probed now: the interval, stretched by the rate cap (probeStretch) or as a standby. */
  effectiveIntervalMs(): number {
    return this.opts.intervalMs * this.stretch;
  }

  private probe(p: Probed): void {
    p.inFlight = true;
    const settled = (result: ProbeResult): void => {
      p.inFlight = false;
      if (this.stopped.aborted || this.targets.get(p.target.node)?.generation !== p.generation) return;
      this.opts.onResult(p.target.node, result);
    };
    this.opts.probe(p.target, this.opts.timeoutMs).then(settled, (err: unknown) => settled({ ok: false, error: String(err) }));
  }
}
