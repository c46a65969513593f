// Address conflict decisions (issue 12), pure and driven by an injected clock's readings:
// when an address must be probed before it goes up, what a received frame means, how a probe
// ends, and how an address we hold is defended (RFC 5227 section 2.4).
import type { IpClaimStatus } from '../api/types.js';
import type { Sighting } from './probes.js';

import { ADDRESS_CONFLICT } from '../api/reasons.js';

// Re-exported while agent/agent.ts imports it from here (its home is api/reasons.ts).
export { ADDRESS_CONFLICT };

export interface ProbeConfig {
  /** Probes per address; 0 turns probing off. */
  count: number;
  /** The whole window: probes go out evenly spaced in it, answers count until it ends. */
  windowMs: number;
}

/**
 * Whether a claim needs a probe before its address goes up here. Only an address no agent of
 * ours held: a claim never reported Assigned. A failover move (status.phase Assigned by the old
 * node) and a restart of this agent (Assigned here) go up at once, so failover never waits.
 * A claim that failed here with AddressConflict is probed again once retryMs passed since.
 */
export function needsProbe(status: IpClaimStatus | undefined): boolean {
  return status?.phase !== 'Assigned';
}

/** When a conflict found at `seenAt` may be probed again. */
export function retryDue(seenAt: number, now: number, retryMs: number): boolean {
  return now - seenAt >= retryMs;
}

/** Offsets (ms from the start) of each probe: evenly spaced from 0, the last well before the window ends. */
export function probeOffsets(cfg: ProbeConfig): number[] {
  if (cfg.count <= 0) return [];
  const step = cfg.windowMs / cfg.count;
  return Array.from({ length: cfg.count }, (_, i) => Math.round(i * step));
}

const norm = (mac: string): string => mac.toLowerCase();

/**
 * Whether a sighting is a conflict for `address`. Never from one of our own MACs (this node's
 * interfaces and the other agents' IpNode.status.macs). While probing (RFC 5227 2.1.1,
 * RFC 4862 5.4.3) a host claiming the address or probing for it at the same time is a
 * conflict; while holding, only a host claiming it (another host's probe is answered by the
 * kernel's ARP / ND reply, which makes that host back off).
 */
export function isConflict(s: Sighting, address: string, ownMacs: ReadonlySet<string>, phase: 'probing' | 'holding'): boolean {
  if (s.address !== address || ownMacs.has(norm(s.mac))) return false;
  return phase === 'probing' ? true : s.kind === 'claims';
}

export type ProbeResult = { kind: 'clear' } | { kind: 'conflict'; mac: string };

/** One probe run for one address: which probes are due, and the verdict when the window ends. */
export class ProbeRun {
  private sent = 0;
  private conflictMac: string | undefined;
  private readonly offsets: number[];

  constructor(
    readonly address: string,
    private readonly startedAt: number,
    private readonly cfg: ProbeConfig,
  ) {
    this.offsets = probeOffsets(cfg);
  }

  /** How many probes to send at `now` (those whose time came). */
  due(now: number): number {
    if (this.conflictMac) return 0;
    let n = 0;
    while (this.sent < this.offsets.length && (this.offsets[this.sent] ?? 0) <= now - this.startedAt) {
      this.sent += 1;
      n += 1;
    }
    return n;
  }

  /** Feeds a received frame; a conflict ends the run at once. */
  observe(s: Sighting, ownMacs: ReadonlySet<string>): void {
    if (!this.conflictMac && isConflict(s, this.address, ownMacs, 'probing')) this.conflictMac = norm(s.mac);
  }

  /** The verdict at `now`, or null while the window is open and nothing answered. */
  result(now: number): ProbeResult | null {
    if (this.conflictMac) return { kind: 'conflict', mac: this.conflictMac };
    return now - this.startedAt >= this.cfg.windowMs && this.sent >= this.offsets.length ? { kind: 'clear' } : null;
  }

  /** When the next thing happens (a probe or the end of the window), as ms from `now`. */
  nextInMs(now: number): number {
    const next = this.sent < this.offsets.length ? (this.offsets[this.sent] ?? 0) : this.cfg.windowMs;
    return Math.max(0, this.startedAt + next - now);
  }
}

/** RFC 5227 DEFEND_INTERVAL. */
export const DEFEND_INTERVAL_MS = 10_000;

export type DefenceAction = 'ignore' | 'defend' | 'report';

/**
 * RFC 5227 2.4 (b): on a foreign claim for an address we hold, defend once with an
 * announcement; a second foreign claim within DEFEND_INTERVAL of that defence means the other
 * host keeps using it: report the conflict (the caller keeps serving unless told to withdraw).
 * A reported address is reported again only after another DEFEND_INTERVAL, so a chatty host
 * does not turn into a status write per frame.
 */
export class Defence {
  private readonly last = new Map<string, { defendedAt: number; reportedAt?: number }>();

  constructor(private readonly intervalMs = DEFEND_INTERVAL_MS) {}

  observe(address: string, now: number): DefenceAction {
    const seen = this.last.get(address);
    if (!seen || now - seen.defendedAt >= this.intervalMs) {
      this.last.set(address, { defendedAt: now });
      return 'defend';
    }
    if (seen.reportedAt !== undefined && now - seen.reportedAt < this.intervalMs) return 'ignore';
    seen.reportedAt = now;
    return 'report';
  }

  forget(address: string): void {
    this.last.delete(address);
  }
}
