// The record of a claim's move between nodes and how long it took, in three steps:
// failure detected (scheduler) -> claim written to the new node (scheduler) -> address up on
// the new node (its agent). Pure: the scheduler writes the first two as an annotation in the
// same write that moves the claim (a move stays one write), the new node's agent copies them
// with its own upAt into status.lastMove, and the scheduler then says it in an IPMoved Event.
import { MOVE_ANNOTATION, type ClaimMove, type IpClaim } from './types.js';
import { isRecord } from '../lib/json.js';

/** The annotation text for a move written now. */
export function moveAnnotation(move: Omit<ClaimMove, 'upAt'>): string {
  return JSON.stringify({ from: move.from, to: move.to, reason: move.reason, detectedAt: move.detectedAt, claimedAt: move.claimedAt });
}

const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** The move recorded on a claim's annotation, or null when there is none or it does not parse. */
export function pendingMove(claim: Pick<IpClaim, 'metadata'>): Omit<ClaimMove, 'upAt'> | null {
  const text = claim.metadata.annotations?.[MOVE_ANNOTATION];
  if (!text) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(raw)) return null;
  const o = raw;
  if (typeof o.from !== 'string' || typeof o.to !== 'string' || typeof o.reason !== 'string' || !isIso(o.detectedAt) || !isIso(o.claimedAt))
    return null;
  return { from: o.from, to: o.to, reason: o.reason, detectedAt: o.detectedAt, claimedAt: o.claimedAt };
}

/** The move as the agent on `node` reports it once the address is up there, or null when no move to it is pending. */
export function completedMove(claim: Pick<IpClaim, 'metadata' | 'status'>, node: string, upAtIso: string): ClaimMove | null {
  const move = pendingMove(claim);
  if (!move || move.to !== node) return null;
  const last = claim.status?.lastMove;
  if (last && last.claimedAt === move.claimedAt && last.to === move.to && last.upAt) return last; // already reported
  return { ...move, upAt: upAtIso };
}

export interface MoveDurations {
  /** Failure detected -> claim written, seconds. */
  toClaim: number;
  /** Claim written -> address up on the new node, seconds (null until the agent reports). */
  toUp: number | null;
  /** Failure detected -> address up, seconds. */
  total: number | null;
}

/** The move's steps in seconds. Clocks of scheduler and agent differ; a negative step is shown as 0. */
export function moveDurations(move: ClaimMove): MoveDurations {
  const detected = Date.parse(move.detectedAt);
  const claimed = Date.parse(move.claimedAt);
  const up = move.upAt ? Date.parse(move.upAt) : NaN;
  const sec = (ms: number): number => Math.max(0, ms) / 1000;
  return {
    toClaim: sec(claimed - detected),
    toUp: Number.isNaN(up) ? null : sec(up - claimed),
    total: Number.isNaN(up) ? null : sec(up - detected),
  };
}

/** "0.412s" with millisecond precision. */
export function seconds(value: number): string {
  return `${value.toFixed(3)}s`;
}

/** The IPMoved Event message: kept to the form "ADDRESS moved from node A to B: REASON" that users grep for, then the timing. */
export function movedMessage(address: string, move: ClaimMove): string {
  const d = moveDurations(move);
  const head = `${address} moved from node ${move.from} to ${move.to}: ${move.reason}`;
  if (d.total === null || d.toUp === null)
    return `${head}; failure detected -> claim written ${seconds(d.toClaim)}; not reported up on ${move.to} yet`;
  return `${head}; took ${seconds(d.total)} (failure detected -> claim written ${seconds(d.toClaim)} -> address up on ${move.to} ${seconds(d.toUp)})`;
}
