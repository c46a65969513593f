// Conflict guard (issue 12): the side of conflict detection that touches the wire and the
// clock. Before an address no agent of ours held goes up, it probes (conflict.ts decides,
// probes.ts builds the frames, receiver.ts listens); while addresses are held, it listens for
// foreign hosts claiming them and defends once (RFC 5227 2.4). The agent asks it, per
// reconcile, which new addresses may go up now, and reads the conflicts to report.
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { Logger } from '../lib/logger.js';
import { CLAIM_CONDITION } from '../api/conditions.js';
import { ADDRESS_CONFLICT } from '../api/reasons.js';
import { Defence, isConflict, needsProbe, ProbeRun, retryDue, type ProbeConfig } from './conflict.js';
import type { FrameSender } from './frames.js';
import type { AgentMetrics } from './metrics.js';
import { announcementFrames, type Frame } from './packets.js';
import { probeFrame, type Sighting } from './probes.js';
import type { SightingReceiver, SightingSource } from './receiver.js';
import type { IpClaimStatus } from '../api/types.js';
import { isPeerClaim, YieldBook } from './yielding.js';

/** How long an address yielded to another agent of ours stays down without news of its claim (yielding.ts). */
export const YIELD_HOLD_MS = 2000;

export interface GuardConfig extends ProbeConfig {
  /** How long a conflict found by a probe keeps the address down before it is probed again. */
  retryMs: number;
  /** While holding: withdraw the address when a foreign host keeps claiming it (default: keep serving and report). */
  withdrawOnConflict: boolean;
  /** How often received frames are read while nothing is being probed. */
  pollMs: number;
}

export interface Candidate {
  claim: string;
  ip: string;
  ifindex: number;
  mac: Uint8Array;
  status: IpClaimStatus | undefined;
  /** The pool of the claim, for the metric. */
  pool: string;
}

export interface HeldTarget {
  claim: string;
  ip: string;
  ifindex: number;
  mac: Uint8Array;
  pool: string;
  /** The claim's resourceVersion: a yield ends when a newer one still names this node. */
  resourceVersion?: string | undefined;
}

export interface Conflict {
  ip: string;
  mac: string;
  /** ms: when it was seen */
  at: number;
  /** true: found while holding (the address may still be up); false: found by a probe. */
  holding: boolean;
}

export interface GuardDeps {
  source: SightingSource;
  sender: FrameSender;
  clock: Clock;
  logger: Logger;
  metrics: AgentMetrics;
  /** Called when a probe ends or a conflict is found, so the agent reconciles. */
  changed(): void;
}

type Gate = { kind: 'up' } | { kind: 'wait' } | { kind: 'conflict'; message: string };

export class ConflictGuard {
  private readonly receivers = new Map<number, SightingReceiver>();
  private readonly probes = new Map<string, { ip: string; run: ProbeRun; candidate: Candidate }>();
  /** claim -> ip cleared by a probe (goes up without another probe until the claim changes). */
  private readonly cleared = new Map<string, string>();
  private readonly conflicts = new Map<string, Conflict>();
  private readonly defence = new Defence();
  private held = new Map<string, HeldTarget>();
  private ownMacs = new Set<string>();
  /** This node's MACs (of the interfaces holding addresses); the rest of ownMacs are the other agents'. */
  private nodeMacs = new Set<string>();
  private readonly yields = new YieldBook(YIELD_HOLD_MS);
  private readonly log: Logger;

  constructor(
    private readonly cfg: GuardConfig,
    private readonly deps: GuardDeps,
    private readonly signal: AbortSignal,
  ) {
    this.log = deps.logger.child({ part: 'conflict' });
    void this.pollLoop();
  }

  /** Our MACs: this node's interfaces and the other agents' IpNode.status.macs. */
  setOwnMacs(macs: Iterable<string>): void {
    this.ownMacs = new Set([...macs].map((m) => m.toLowerCase()));
  }

  /** Addresses up on this node now, watched for foreign claims. */
  setHeld(targets: HeldTarget[]): void {
    this.held = new Map(targets.map((t) => [t.ip, t]));
    for (const t of targets) this.nodeMacs.add(macText(t.mac));
    for (const t of targets) this.receiver(t.ifindex);
    for (const [claim, c] of this.conflicts) if (c.holding && !targets.some((t) => t.claim === claim)) this.conflicts.delete(claim);
  }

  /** The conflict to report for a claim, if any. */
  conflict(claim: string): Conflict | undefined {
    return this.conflicts.get(claim);
  }

  /**
   * Whether a wanted address must stay down now: yielded to another agent of ours that claimed
   * it (until a newer version of the claim, at resourceVersion, still names this node), or a
   * conflict while holding with --conflict-withdraw.
   */
  withdraw(claim: string, resourceVersion: string | undefined): boolean {
    return this.yields.holds(claim, resourceVersion, this.deps.clock.now()) || this.conflictWithdraw(claim);
  }

  /** A conflict while holding, and --conflict-withdraw: reported as AddressConflict. */
  conflictWithdraw(claim: string): boolean {
    return this.cfg.withdrawOnConflict && this.conflicts.get(claim)?.holding === true;
  }

  /**
   * May this address go up now? A claim some agent of ours held goes up at once (a move); a
   * new one is probed first (the reconcile runs again when the probe ends); one that conflicted
   * stays down until --conflict-retry has passed.
   */
  gate(c: Candidate): Gate {
    if (this.cfg.count <= 0) return { kind: 'up' };
    const now = this.deps.clock.now();
    const remembered = this.rememberedConflict(c, now);
    if (remembered) return remembered;
    if (this.cleared.get(c.claim) === c.ip) return { kind: 'up' };
    // Found before this agent (re)started: wait out the retry from when it was seen.
    if (persistedConflict(c.status, now, this.cfg.retryMs)) return persistedConflictGate(c.status);
    if (!needsProbe(c.status)) return { kind: 'up' };
    const running = this.probes.get(c.claim);
    if (!running || running.ip !== c.ip) this.startProbe(c, now);
    return { kind: 'wait' };
  }

  /** A conflict this agent found for the address, while its retry is not due (a due one is forgotten). */
  private rememberedConflict(c: Candidate, now: number): Gate | null {
    const known = this.conflicts.get(c.claim);
    if (!known || known.holding || known.ip !== c.ip) return null;
    if (!retryDue(known.at, now, this.cfg.retryMs)) return { kind: 'conflict', message: conflictMessage(known) };
    this.conflicts.delete(c.claim);
    return null;
  }

  /** Forget what is known about claims no longer assigned here. */
  retain(claims: Set<string>): void {
    for (const k of this.cleared.keys()) if (!claims.has(k)) this.cleared.delete(k);
    for (const k of this.probes.keys()) if (!claims.has(k)) this.probes.delete(k);
    for (const k of this.conflicts.keys()) if (!claims.has(k)) this.conflicts.delete(k);
    this.yields.retain(claims);
  }

  close(): void {
    for (const r of this.receivers.values()) r.close();
    this.receivers.clear();
  }

  private receiver(ifindex: number): SightingReceiver | undefined {
    let r = this.receivers.get(ifindex);
    if (!r) {
      try {
        r = this.deps.source.open(ifindex);
        this.receivers.set(ifindex, r);
      } catch (err) {
        this.log.warn({ ifindex, err: String(err) }, 'cannot listen for address conflicts on this interface');
      }
    }
    return r;
  }

  private startProbe(c: Candidate, now: number): void {
    this.receiver(c.ifindex);
    const run = new ProbeRun(c.ip, now, this.cfg);
    this.probes.set(c.claim, { ip: c.ip, run, candidate: c });
    this.log.debug({ claim: c.claim, ip: c.ip }, 'probing before bringing the address up');
    void this.drive(c.claim);
  }

  private send(ifindex: number, frame: Frame | ReturnType<typeof probeFrame>): void {
    const result = this.deps.sender.send(ifindex, frame as Frame);
    if (!result.ok) this.log.warn({ ifindex, err: result.message }, 'probe frame not sent');
  }

  /** Runs one probe to its verdict, reading received frames at each step. */
  private async drive(claim: string): Promise<void> {
    const p = this.probes.get(claim);
    if (!p) return;
    const { run, candidate } = p;
    while (!this.signal.aborted && this.probes.get(claim) === p) {
      const now = this.deps.clock.now();
      for (let i = run.due(now); i > 0; i--) this.send(candidate.ifindex, probeFrame(candidate.mac, candidate.ip));
      this.readAll();
      const result = run.result(this.deps.clock.now());
      if (result) {
        this.probes.delete(claim);
        if (result.kind === 'clear') this.cleared.set(claim, candidate.ip);
        else this.found(candidate, result.mac, false);
        this.deps.changed();
        return;
      }
      try {
        await this.deps.clock.sleep(Math.max(1, Math.min(run.nextInMs(this.deps.clock.now()), 10)), this.signal);
      } catch {
        return;
      }
    }
  }

  private found(target: Pick<Candidate, 'claim' | 'ip' | 'pool'>, mac: string, holding: boolean): void {
    const { claim, ip, pool } = target;
    const conflict: Conflict = { ip, mac, at: this.deps.clock.now(), holding };
    this.conflicts.set(claim, conflict);
    this.deps.metrics.addressConflict(pool || 'none', holding ? 'holding' : 'probe');
    this.log.warn(
      { claim, ip, mac, holding },
      holding
        ? 'a host that is not ours keeps claiming an address we hold'
        : 'a host that is not ours answered the probe; the address is not brought up',
    );
  }

  /** Reads every receiver; probes take what concerns them, held addresses are defended. */
  private readAll(): void {
    for (const r of this.receivers.values()) {
      for (const s of r.drain()) {
        for (const p of this.probes.values()) p.run.observe(s, this.ownMacs);
        this.defend(s);
      }
    }
  }

  /** Another agent of ours claims an address held here: the claim moved (yielding.ts); true when s was that. */
  private yieldTo(s: Sighting, held: HeldTarget): boolean {
    const peers = new Set([...this.ownMacs].filter((m) => !this.nodeMacs.has(m)));
    if (!isPeerClaim(s, held.ip, this.nodeMacs, peers)) return false;
    const entry = { ip: held.ip, mac: s.mac.toLowerCase(), at: this.deps.clock.now(), resourceVersion: held.resourceVersion };
    if (this.yields.note(held.claim, entry)) {
      this.log.warn(
        { claim: held.claim, ip: held.ip, mac: entry.mac },
        'another agent of ours claims an address held here (the claim moved); withdrawing it now, before the claims watch says so',
      );
      this.deps.changed();
    }
    return true;
  }

  /** A held address another host claims: defend it once, report it if the host keeps on. */
  private defend(s: Sighting): void {
    const held = this.held.get(s.address);
    if (held && this.yieldTo(s, held)) return;
    if (!held || !isConflict(s, held.ip, this.ownMacs, 'holding')) return;
    const action = this.defence.observe(held.ip, this.deps.clock.now());
    if (action === 'defend') {
      this.log.info({ ip: held.ip, mac: s.mac }, 'defending an address we hold against a host that is not ours (RFC 5227 2.4)');
      for (const f of announcementFrames(held.mac, held.ip)) this.send(held.ifindex, f);
    } else if (action === 'report') {
      this.found(held, s.mac.toLowerCase(), true);
      this.deps.changed();
    }
  }

  /** Reads received frames every pollMs while no probe runs (a running probe reads them itself); closes the receivers on stop. */
  private async pollLoop(): Promise<void> {
    await every(this.deps.clock, this.cfg.pollMs, this.signal, () => {
      if (this.probes.size === 0) this.readAll();
    });
    this.close();
  }
}

function persistedConflictGate(status: IpClaimStatus | undefined): Gate {
  const c = conflictCondition(status);
  const seen = Date.parse(c?.lastTransitionTime ?? '');
  return { kind: 'conflict', message: c?.message.replace(/^node \S+: /, '') ?? `conflict seen at ${new Date(seen).toISOString()}` };
}

function conflictCondition(status: IpClaimStatus | undefined): { message: string; lastTransitionTime: string } | undefined {
  return status?.conditions?.find((c) => c.type === CLAIM_CONDITION && c.status === 'False' && c.reason === ADDRESS_CONFLICT);
}

/** A conflict the claim's status records (this agent restarted since) that is not due for a retry yet. */
function persistedConflict(status: IpClaimStatus | undefined, now: number, retryMs: number): boolean {
  const c = conflictCondition(status);
  const seen = Date.parse(c?.lastTransitionTime ?? '');
  return c !== undefined && !Number.isNaN(seen) && !retryDue(seen, now, retryMs);
}

export function conflictMessage(c: Conflict): string {
  return c.holding
    ? `${c.ip} is claimed by ${c.mac}, a host that is not ours, after a defence (RFC 5227 2.4)`
    : `${c.ip} is answered by ${c.mac}, a host that is not ours (probe before first use, RFC 5227)`;
}

const macText = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
