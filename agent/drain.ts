// Draining (SIGTERM): the agent reports Draining so the scheduler moves its claims without
// waiting for failure timers, keeps serving what is still here, hands each moved claim over
// make-before-break, and waits (bounded by --drain-timeout) until nothing is left.
import type { IpClaim } from '../api/types.js';
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { ClaimEntry } from './kube.js';

/** How often a drain looks whether the claims have moved. */
export const DRAIN_POLL_MS = 100;

/** Claims assigned to this node (a claim that cannot be parsed counts by its spec.nodeName). */
export function claimsAssignedHere(entries: ClaimEntry[], nodeName: string): number {
  return entries.filter((e) => (e.ok ? e.claim.spec.nodeName : e.nodeName) === nodeName).length;
}

/**
 * Make-before-break on a planned handover: while draining, an address whose claim the
 * scheduler moved stays here until the new node's agent has confirmed it (status.node is the
 * new node), so no request arrives between this node letting go and the new one announcing.
 * It is no longer announced from here, and its status is no longer ours to write.
 */
export function handingOver(drain: { draining: boolean; drained: boolean }, held: boolean, claim: IpClaim): boolean {
  if (!drain.draining || drain.drained || !held || !claim.spec.nodeName) return false;
  const confirmed = claim.status?.phase === 'Assigned' && claim.status.node === claim.spec.nodeName;
  return !confirmed;
}

/**
 * Waits until `left()` is 0, the deadline passes or the signal aborts, looking every
 * DRAIN_POLL_MS; resolves with what is left then.
 */
export async function waitForClaimsToMove(clock: Clock, signal: AbortSignal, deadline: number, left: () => number): Promise<number> {
  const done = new AbortController();
  const stop = (): void => done.abort();
  signal.addEventListener('abort', stop, { once: true });
  await every(clock, DRAIN_POLL_MS, done.signal, () => {
    if (left() === 0 || clock.now() >= deadline) stop();
  });
  signal.removeEventListener('abort', stop);
  return left();
}
