// `kubectl ipcontroller why SERVICE`: the scheduler's decision about one Service, in words.
// Pure, and made of the scheduler's own decisions run on what the API shows: serviceIntent
// (what the Service asks for), computeDesired (which address from which pool, or why none),
// nodeHealth (which nodes may hold addresses), place (which node holds each claim) and
// addressCondition (the Service condition). The same inputs give the scheduler's answer, so the
// explanation cannot drift from the decision; test/integration/plugin.test.ts checks they agree.
import type { IpClaim } from '../api/types.js';
import { DEFAULTS } from '../scheduler/config.js';
import { addressCondition, type AddressCondition } from '../scheduler/condition.js';
import { computeDesired, poolSetOf, type DesiredClaim } from '../scheduler/desired.js';
import { poolOrder } from '../scheduler/allocator.js';
import type { IpFamily } from '../api/ip.js';
import type { PendingReason } from '../api/reasons.js';
import {
  allowedNodes,
  claimsToPlace,
  endpointNodesOf,
  place,
  type ClaimToPlace,
  type Decision,
  type Strategy,
} from '../scheduler/placement.js';
import type { NodeHealth } from '../scheduler/health.js';
import { ANNOTATION, serviceIntent, wantsLoadBalancer, type Problem, type ServiceView } from '../scheduler/service.js';
import { nodeVerdicts } from './model.js';
import type { Snapshot } from './snapshot.js';

export interface ExplainOptions {
  lbClass: string;
  strategy: Strategy;
  mask: { ipv4: number; ipv6: number };
}

export const EXPLAIN_DEFAULTS: ExplainOptions = { lbClass: DEFAULTS.lbClass, strategy: DEFAULTS.nodeFilter, mask: DEFAULTS.mask };

export interface NodeVerdict {
  node: string;
  candidate: boolean;
  /** For a node that may not hold this address: why not (a NodeFailure, or no-endpoint). */
  reason?: string;
  message: string;
  chosen: boolean;
}

export interface AddressExplanation {
  address: string;
  claim: string;
  pool?: string;
  /** Where the address comes from, and why that pool. */
  origin: string;
  /** The placement decision (placement.ts) on what the API shows now. */
  decision: Decision;
  /** The decision in words. */
  placement: string;
  /** spec.nodeName and status as the API shows them. */
  node?: string;
  phase?: string;
  reportedNode?: string;
  nodes: NodeVerdict[];
}

export interface Explanation {
  service: string;
  found: boolean;
  /** Whether this scheduler handles it (class, type). */
  handled: boolean;
  summary: string;
  /** What the Service asks for, one line each. */
  asks: string[];
  addresses: AddressExplanation[];
  /** Why it does not have (all of) what it asked for: allocation problems and placement. */
  pending: Array<Omit<Problem, 'reason'> & { reason: Problem['reason'] | PendingReason }>;
  /** The Service condition the scheduler decides from this. */
  condition: AddressCondition | null;
  /** The condition as written on the Service. */
  recorded?: { status: string; reason: string; message: string };
}

const FAMILY_NAME: Record<IpFamily, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };

function describeAsk(svc: ServiceView, intent: ReturnType<typeof serviceIntent>): string[] {
  const asks: string[] = [];
  if (intent.externalIPs.length) asks.push(`spec.externalIPs: ${intent.externalIPs.join(', ')} (each goes to one healthy node)`);
  const lb = intent.loadBalancer;
  if (lb) {
    const why = svc.type === 'LoadBalancer' ? 'type LoadBalancer' : `annotation ${ANNOTATION.auto}: auto`;
    const families = lb.families.map((f) => `${FAMILY_NAME[f]}${lb.required.includes(f) ? '' : ' (if a pool has one)'}`).join(' + ');
    asks.push(`${why}: one pool address per family: ${families}${svc.ipFamilyPolicy ? ` (${svc.ipFamilyPolicy})` : ''}`);
    for (const [f, a] of Object.entries(lb.requested)) {
      const source =
        svc.annotations[ANNOTATION.loadBalancerIPs] !== undefined ? `annotation ${ANNOTATION.loadBalancerIPs}` : 'spec.loadBalancerIP';
      asks.push(`${FAMILY_NAME[f as IpFamily]} address ${a} requested by ${source}`);
    }
    if (lb.pool) asks.push(`only from IpClaimPool ${lb.pool} (annotation ${ANNOTATION.pool})`);
    if (lb.shareKey)
      asks.push(`may share an address with Services annotated ${ANNOTATION.allowSharedIp}: ${lb.shareKey} whose ports do not clash`);
  } else if (wantsLoadBalancer(svc)) {
    asks.push('a pool address, but the request cannot be read (see pending)');
  }
  if (svc.externalTrafficPolicyLocal)
    asks.push('externalTrafficPolicy: Local: only a node with a serving endpoint of the Service may hold its addresses');
  return asks;
}

/** Where a pool address came from and why that pool: the order rules of desired.ts in words. */
function origin(snap: Snapshot, svc: ServiceView, claim: DesiredClaim, intent: ReturnType<typeof serviceIntent>): string {
  if (!claim.pool) return 'listed in spec.externalIPs';
  const lb = intent.loadBalancer;
  const family = claim.family;
  const others = claim.services.filter((k) => k !== svc.key);
  const fromPool = `from IpClaimPool ${claim.pool}`;
  let how: string;
  if (lb?.requested[family] === claim.address) how = 'the requested address';
  else if (
    snap.claims.some((c) => c.spec.cidr.split('/')[0] === claim.address && (c.spec.services ?? []).includes(svc.key)) ||
    svc.ingress.includes(claim.address)
  )
    how = 'kept: the Service already held it';
  else if (lb?.shareKey && others.length) how = `shared with ${others.join(', ')} (${ANNOTATION.allowSharedIp}: ${lb.shareKey})`;
  else how = 'the lowest free address';
  if (lb?.pool) return `${how}, ${fromPool}, the pool named in ${ANNOTATION.pool}`;
  const pools = poolSetOf(snap.pools);
  const earlier = pools.valid
    .filter((p) => p.family === family)
    .sort(poolOrder)
    .filter((p) => p.name < (claim.pool ?? ''))
    .map((p) => (lb?.requested[family] ? `${p.name} does not hold it` : `${p.name} is full`));
  const skipped = earlier.length ? `; before it, ${earlier.join(', ')}` : '';
  return `${how}, ${fromPool}: pools are tried in name order and it is the first ${FAMILY_NAME[family]} pool that ${lb?.requested[family] ? 'holds it' : 'had room'}${skipped}`;
}

function placementWords(d: Decision, strategy: Strategy): string {
  switch (d.kind) {
    case 'keep':
      return `stays on ${d.node}: it is a candidate, and a claim does not move while its node is healthy`;
    case 'assign':
      return `goes to ${d.node}: ${strategy === 'fair' ? 'the candidate with the fewest claims (ties broken by a hash of node and address)' : 'the first candidate by name (--nodefilter=first-alive)'}`;
    case 'move':
      return `moves from ${d.from} to ${d.to}: ${d.from} may not hold it (${d.reason})`;
    case 'pending':
      return `pending (${d.reason}): ${d.message}`;
  }
}

export function explainService(snap: Snapshot, key: string, opts: ExplainOptions = EXPLAIN_DEFAULTS): Explanation {
  const svc = snap.services.find((s) => s.key === key);
  const base = { service: key, asks: [], addresses: [], pending: [], condition: null };
  if (!svc) return { ...base, found: false, handled: false, summary: `there is no Service ${key}` };
  const recorded = svc.addressCondition
    ? { recorded: { status: svc.addressCondition.status, reason: svc.addressCondition.reason, message: svc.addressCondition.message } }
    : {};
  const intent = serviceIntent(svc, opts.lbClass);
  if (!intent.handled) {
    return {
      ...base,
      ...recorded,
      found: true,
      handled: false,
      summary: `ignored: spec.loadBalancerClass ${svc.loadBalancerClass ?? ''} belongs to another controller (ours is ${opts.lbClass})`,
    };
  }
  const asks = describeAsk(svc, intent);
  if (!wantsLoadBalancer(svc) && svc.externalIPs.length === 0) {
    return {
      ...base,
      ...recorded,
      found: true,
      handled: true,
      summary: `asks for no address: not type LoadBalancer, no spec.externalIPs, no annotation ${ANNOTATION.auto}: auto`,
    };
  }

  const desired = computeDesired(snap.services, poolSetOf(snap.pools), snap.claims, { lbClass: opts.lbClass, mask: opts.mask });
  const outcome = desired.services.get(key);
  const view = placementView(snap, [...desired.claims.values()], opts.strategy);
  const { existing, decisions } = view;
  const mine = [...desired.claims.values()].filter((c) => c.services.includes(key)).sort((a, b) => (a.address < b.address ? -1 : 1));
  const addresses = mine.map((c) => explainAddress(view, c, { snap, svc, intent, strategy: opts.strategy }));
  const problems = outcome?.problems ?? [];
  const placementProblems = addresses.flatMap((a) =>
    a.decision.kind === 'pending' ? [{ reason: a.decision.reason, message: `${a.address}: ${a.decision.message}` }] : [],
  );
  const condition = addressCondition(
    problems,
    mine.map((c) => {
      const d = decisions.get(c.name);
      const e = existing.get(c.name);
      return { name: c.name, address: c.address, ...(d ? { decision: d } : {}), ...(e ? { existing: e } : {}) };
    }),
  );
  const pending = [...problems, ...placementProblems];
  const summary = summaryOf(pending, condition, addresses);
  return { service: key, found: true, handled: true, summary, asks, addresses, pending, condition, ...recorded };
}

function summaryOf(pending: Explanation['pending'], condition: AddressCondition, addresses: AddressExplanation[]): string {
  if (pending.length) return `pending: ${pending.map((p) => p.reason).join(', ')}`;
  if (condition.status === 'True') return `has ${addresses.map((a) => `${a.address} on ${a.reportedNode ?? a.node ?? '?'}`).join(', ')}`;
  return `${condition.reason}: ${condition.message}`;
}

/** The scheduler's placement, recomputed from the snapshot as one pass would. */
interface PlacementView {
  existing: Map<string, IpClaim>;
  verdicts: Map<string, NodeHealth>;
  candidates: string[];
  endpointNodes: Map<string, Set<string>>;
  toPlace: ClaimToPlace[];
  decisions: Map<string, Decision>;
  /** Nodes an agent runs on (or should: labelled ipcontroller). */
  agentNodes: string[];
}

function placementView(snap: Snapshot, claims: DesiredClaim[], strategy: Strategy): PlacementView {
  const byKey = new Map(snap.services.map((s) => [s.key, s]));
  const isLocal = (k: string): boolean => byKey.get(k)?.externalTrafficPolicyLocal === true;
  const existing = new Map(snap.claims.map((c) => [c.metadata.name ?? '', c]));
  const verdicts = nodeVerdicts(snap, snap.readAt);
  const candidates = [...verdicts].filter(([, h]) => h.candidate).map(([n]) => n);
  const failures = new Map([...verdicts].flatMap(([n, h]) => (h.candidate ? [] : [[n, h.reason] as const])));
  const endpointNodes = endpointNodesOf(snap.slices, isLocal);
  const toPlace = claimsToPlace(claims, (name) => existing.get(name)?.spec.nodeName, isLocal);
  const decisions = place({ claims: toPlace, candidates, failures, endpointNodes, strategy, rebalance: false });
  const agentNodes = [...verdicts.keys()].filter(
    (n) => snap.ipNodes.some((i) => i.metadata.name === n) || snap.nodes.some((x) => x.name === n && 'ipcontroller' in x.labels),
  );
  return { existing, verdicts, candidates, endpointNodes, toPlace, decisions, agentNodes };
}

interface AddressContext {
  snap: Snapshot;
  svc: ServiceView;
  intent: ReturnType<typeof serviceIntent>;
  strategy: Strategy;
}

function explainAddress(view: PlacementView, c: DesiredClaim, ctx: AddressContext): AddressExplanation {
  const decision = view.decisions.get(c.name) ?? ({ kind: 'pending', reason: 'NoCandidateNode', message: 'not placed' } as Decision);
  const claim: IpClaim | undefined = view.existing.get(c.name);
  return {
    address: c.address,
    claim: c.name,
    ...(c.pool ? { pool: c.pool } : {}),
    origin: origin(ctx.snap, ctx.svc, c, ctx.intent),
    decision,
    placement: placementWords(decision, ctx.strategy),
    ...(claim?.spec.nodeName ? { node: claim.spec.nodeName } : {}),
    ...(claim?.status?.phase ? { phase: claim.status.phase } : {}),
    ...(claim?.status?.node ? { reportedNode: claim.status.node } : {}),
    nodes: nodeVerdictsFor(view, c, decision, ctx),
  };
}

/** Every agent node's verdict for one address: out (and why), not allowed by its endpoints, or a candidate. */
function nodeVerdictsFor(view: PlacementView, c: DesiredClaim, decision: Decision, ctx: AddressContext): NodeVerdict[] {
  const chosen = decision.kind === 'move' ? decision.to : decision.kind === 'pending' ? undefined : decision.node;
  const placeable = view.toPlace.find((t) => t.name === c.name);
  const allowed = placeable ? allowedNodes(placeable, view.candidates, view.endpointNodes) : view.candidates;
  return view.agentNodes.map((n) => {
    const h = view.verdicts.get(n);
    if (h && !h.candidate) return { node: n, candidate: false, reason: h.reason, message: h.message, chosen: false };
    if (!allowed.includes(n))
      return {
        node: n,
        candidate: true,
        reason: 'no-endpoint',
        message: `no serving endpoint of ${placeable?.localServices.join(', ') ?? ctx.svc.key} on ${n} (externalTrafficPolicy: Local)`,
        chosen: false,
      };
    return {
      node: n,
      candidate: true,
      message: `candidate, ${ctx.snap.claims.filter((x) => x.spec.nodeName === n).length} claim(s)`,
      chosen: n === chosen,
    };
  });
}
