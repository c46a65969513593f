// `kubectl ipcontroller history SERVICE`: every allocation, assignment and move of the Service's
// addresses, from two sources. Events say the most but the apiserver deletes them after
// --event-ttl (1 hour by default); the claims keep, for as long as the address is held, when it
// was allocated (creationTimestamp), since when it is up where it is (status), and the last
// move with its timing (status.lastMove, or the scheduler's record of a move not yet reported up).
// Pure: Events and claims in, a timeline out.
import { moveDurations, movedMessage, pendingMove, type MoveDurations } from '../api/moves.js';
import type { ClaimMove, IpClaim } from '../api/types.js';
import { CLAIM_CONDITION } from '../api/conditions.js';
import type { ServiceEvent } from './snapshot.js';

export interface HistoryEntry {
  /** RFC 3339. */
  at: string;
  /** event: a Kubernetes Event; claim: kept in the IpClaim (outlives Events). */
  source: 'event' | 'claim';
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  address?: string;
  count?: number;
  durations?: MoveDurations;
}

export interface History {
  service: string;
  entries: HistoryEntry[];
  /** Oldest Event found, RFC 3339; older Events have expired. */
  eventsSince?: string;
  note: string;
}

export const EVENTS_NOTE =
  'Events are kept by the apiserver for --event-ttl (1 hour by default); the IpClaim keeps when each address was allocated, since when it is up where it is, and its last move with timing, for as long as the Service holds it.';

const iso = (ms: number): string => new Date(ms).toISOString();
const addressOf = (c: IpClaim): string => c.spec.cidr.split('/')[0] ?? c.spec.cidr;

function fromClaim(c: IpClaim, events: ServiceEvent[]): HistoryEntry[] {
  const address = addressOf(c);
  // An IPMoved Event already tells a move (claimedAt within a second of clock skew).
  const toldByEvent = (from: string, to: string, claimedAt: string): boolean =>
    events.some(
      (e) =>
        e.reason === 'IPMoved' &&
        e.message.startsWith(`${address} moved from node ${from} to ${to}:`) &&
        e.at >= Date.parse(claimedAt) - 1000,
    );
  const last = c.status?.lastMove;
  const pending = pendingMove(c);
  const out = [createdEntry(c, address), currentEntry(c, address)];
  if (last && !toldByEvent(last.from, last.to, last.claimedAt)) out.push(moveEntry(address, last, 'IPMoved'));
  if (pending && !(last && last.claimedAt === pending.claimedAt) && !toldByEvent(pending.from, pending.to, pending.claimedAt))
    out.push(moveEntry(address, pending, 'IPMoving'));
  return out.filter((e): e is HistoryEntry => e !== null);
}

function createdEntry(c: IpClaim, address: string): HistoryEntry | null {
  const created = c.metadata.creationTimestamp ? new Date(c.metadata.creationTimestamp).getTime() : NaN;
  if (Number.isNaN(created)) return null;
  const how = c.spec.pool ? `allocated from IpClaimPool ${c.spec.pool}` : 'claimed for spec.externalIPs';
  return {
    at: iso(created),
    source: 'claim',
    type: 'Normal',
    reason: 'ClaimCreated',
    message: `${address} ${how} (IpClaim ${c.metadata.name ?? ''} created)`,
    address,
  };
}

/** The claim's current state, from its status and Announced condition. */
function currentEntry(c: IpClaim, address: string): HistoryEntry | null {
  const status = c.status;
  const up = status?.conditions?.find((x) => x.type === CLAIM_CONDITION);
  if (!status?.phase || !status.node || !up) return null;
  // The Announced condition keeps its time across a move (it stays True); the move says when it came up here.
  const since = status.lastMove?.to === status.node && status.lastMove.upAt ? status.lastMove.upAt : up.lastTransitionTime;
  const assigned = status.phase === 'Assigned';
  const word = assigned ? `up and announced on node ${status.node}` : `${status.phase} on node ${status.node}: ${up.message}`;
  return {
    at: since,
    source: 'claim',
    type: status.phase === 'Failed' ? 'Warning' : 'Normal',
    reason: assigned ? 'AddressUp' : 'AddressFailed',
    message: `${address} ${word} (current state)`,
    address,
  };
}

function moveEntry(address: string, move: Omit<ClaimMove, 'upAt'> & { upAt?: string }, reason: 'IPMoved' | 'IPMoving'): HistoryEntry {
  return {
    at: move.upAt ?? move.claimedAt,
    source: 'claim',
    type: 'Normal',
    reason,
    message: movedMessage(address, move),
    address,
    durations: moveDurations(move),
  };
}

/** The timeline of one Service ("namespace/name"), oldest first. */
export function historyOf(service: string, claims: IpClaim[], events: ServiceEvent[]): History {
  const mine = claims.filter((c) => (c.spec.services ?? []).includes(service));
  const entries: HistoryEntry[] = events.map((e) => ({
    at: iso(e.at),
    source: 'event' as const,
    type: e.type === 'Warning' ? ('Warning' as const) : ('Normal' as const),
    reason: e.reason,
    message: e.message,
    ...(e.count > 1 ? { count: e.count } : {}),
  }));
  for (const c of mine) entries.push(...fromClaim(c, events));
  entries.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  const oldest = events.reduce<number | undefined>((min, e) => (min === undefined || e.firstAt < min ? e.firstAt : min), undefined);
  return { service, entries, ...(oldest !== undefined ? { eventsSince: iso(oldest) } : {}), note: EVENTS_NOTE };
}
