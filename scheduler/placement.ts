// Which node holds each claim. Pure: the decision depends only on the claims, the candidate
// nodes and the endpoints, never on the order they were listed in.
import type { MoveReason, NodeFailureReason, PendingReason } from '../api/reasons.js';

export type { MoveReason };

export type Strategy = 'fair' | 'first-alive';

export interface ClaimToPlace {
  name: string;
  address: string;
  /** The node the claim is on now (spec.nodeName), if any. */
  current?: string;
  /** Services of the claim with externalTrafficPolicy: Local. */
  localServices: string[];
}

export interface PlacementInput {
  claims: ClaimToPlace[];
  /** Nodes that may hold addresses. */
  candidates: string[];
  /** Why each non-candidate node is out (for IPMoved reasons). */
  failures: Map<string, NodeFailureReason>;
  /** Non-candidate nodes that keep the claims they have (health.ts `holds`): nothing new goes there. */
  holding?: string[];
  /** Service key -> nodes with a serving endpoint (for ETP Local). */
  endpointNodes: Map<string, Set<string>>;
  strategy: Strategy;
  rebalance: boolean;
}

export type Decision =
  | { kind: 'keep'; node: string }
  | { kind: 'assign'; node: string }
  | { kind: 'move'; from: string; to: string; reason: MoveReason }
  /** No node can take it; `node` is where it stays, if anywhere. */
  | { kind: 'pending'; reason: PendingReason; message: string; node?: string };

/** Service key -> nodes with a serving endpoint, for the Services with externalTrafficPolicy: Local. */
export function endpointNodesOf(
  slices: Array<{ service: string; servingNodes: string[] }>,
  isLocal: (service: string) => boolean,
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const slice of slices) {
    if (!isLocal(slice.service)) continue;
    const set = out.get(slice.service) ?? new Set<string>();
    for (const n of slice.servingNodes) set.add(n);
    out.set(slice.service, set);
  }
  return out;
}

/** The claims to place: each desired claim with the node it is on now and its ETP Local Services. */
export function claimsToPlace(
  claims: Array<{ name: string; address: string; services: string[] }>,
  currentNode: (claim: string) => string | undefined,
  isLocal: (service: string) => boolean,
): ClaimToPlace[] {
  return claims.map((c) => {
    const current = currentNode(c.name);
    return { name: c.name, address: c.address, ...(current ? { current } : {}), localServices: c.services.filter(isLocal) };
  });
}

/** 32-bit FNV-1a: a stable tie-breaker that spreads claims evenly. */
export function stableHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Nodes allowed to hold a claim: candidates, narrowed to serving endpoints for ETP Local. */
export function allowedNodes(claim: ClaimToPlace, candidates: string[], endpointNodes: Map<string, Set<string>>): string[] {
  let allowed = candidates;
  for (const svc of claim.localServices) {
    const serving = endpointNodes.get(svc) ?? new Set<string>();
    allowed = allowed.filter((n) => serving.has(n));
  }
  return allowed;
}

/** The node to put a claim on, given current counts. */
export function pickNode(allowed: string[], address: string, counts: Map<string, number>, strategy: Strategy): string | undefined {
  if (strategy === 'first-alive') return [...allowed].sort()[0];
  let best: string | undefined;
  let bestKey: [number, number, string] | undefined;
  for (const node of allowed) {
    const key: [number, number, string] = [counts.get(node) ?? 0, stableHash(`${node}|${address}`), node];
    if (
      !bestKey ||
      key[0] < bestKey[0] ||
      (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))
    ) {
      best = node;
      bestKey = key;
    }
  }
  return best;
}

/**
 * Places every claim. Healthy assignments stay (no churn) unless `rebalance` is set, in which
 * case a claim stays only while its node is within its fair share (fair) or is the first
 * node (first-alive). Claims that need a node are placed in name order, so the result does
 * not depend on input order.
 */
export function place(input: PlacementInput): Map<string, Decision> {
  const claims = [...input.claims].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const candidates = [...new Set(input.candidates)].sort();
  const round: Round = {
    input,
    candidates,
    counts: new Map<string, number>(candidates.map((n) => [n, 0])),
    share: candidates.length ? Math.ceil(claims.length / candidates.length) : 0,
    holding: new Set(input.holding ?? []),
  };
  const decisions = new Map<string, Decision>();
  const toPlace: Queued[] = [];
  for (const claim of claims) {
    const kept = keepOrQueue(round, claim);
    if ('keep' in kept) decisions.set(claim.name, kept.keep);
    else toPlace.push(kept);
  }
  for (const queued of toPlace) decisions.set(queued.claim.name, assign(round, queued));
  return decisions;
}

/** One placement: the input and the counts that change as claims are placed. */
interface Round {
  input: PlacementInput;
  /** Sorted, without duplicates. */
  candidates: string[];
  /** Node -> claims placed on it so far. */
  counts: Map<string, number>;
  /** Claims per node when spread evenly (fair strategy). */
  share: number;
  holding: Set<string>;
}

/** A claim that needs a node: where it may go and, when it leaves one, why. */
interface Queued {
  claim: ClaimToPlace;
  allowed: string[];
  why?: MoveReason;
}

/** Keeps the claim on its node when it may stay there, or queues it for a node. */
function keepOrQueue(round: Round, claim: ClaimToPlace): { keep: Decision } | Queued {
  const allowed = allowedNodes(claim, round.candidates, round.input.endpointNodes);
  const current = claim.current;
  if (!current) return { claim, allowed };
  if (round.holding.has(current)) return { keep: { kind: 'keep', node: current } };
  if (allowed.includes(current) && !(round.input.rebalance && !withinShare(current, allowed, round))) {
    round.counts.set(current, (round.counts.get(current) ?? 0) + 1);
    return { keep: { kind: 'keep', node: current } };
  }
  return { claim, allowed, why: leaveReason(round, current, allowed) };
}

function leaveReason(round: Round, current: string, allowed: string[]): MoveReason {
  if (!round.candidates.includes(current)) return round.input.failures.get(current) ?? 'not-agent';
  return allowed.includes(current) ? 'rebalance' : 'no-endpoint';
}

function assign(round: Round, queued: Queued): Decision {
  const { claim, allowed, why } = queued;
  const node = pickNode(allowed, claim.address, round.counts, round.input.strategy);
  if (node === undefined) return pending(claim, round.candidates);
  round.counts.set(node, (round.counts.get(node) ?? 0) + 1);
  if (!claim.current) return { kind: 'assign', node };
  if (claim.current === node) return { kind: 'keep', node };
  return { kind: 'move', from: claim.current, to: node, reason: why ?? 'rebalance' };
}

function withinShare(node: string, allowed: string[], round: Round): boolean {
  if (round.input.strategy === 'first-alive') return [...allowed].sort()[0] === node;
  return (round.counts.get(node) ?? 0) < round.share;
}

function pending(claim: ClaimToPlace, candidates: string[]): Decision {
  const where = claim.current ? { node: claim.current } : {};
  if (candidates.length === 0)
    return { kind: 'pending', reason: 'NoCandidateNode', message: 'no healthy agent node is available', ...where };
  const services = claim.localServices.join(', ');
  const stays = claim.current ? `; it stays on ${claim.current}` : '';
  return {
    kind: 'pending',
    reason: 'NoServingEndpoint',
    message: `externalTrafficPolicy: Local and no healthy agent node has a serving endpoint of ${services}${stays}`,
    ...where,
  };
}
