// The write plan of one reconcile stage: from the desired state (desired.ts, placement.ts) and
// the caches, which writes to make and what to tell (Events, metrics, log lines) once each
// write has landed. Pure: no I/O, the clock is an argument. executor.ts makes the writes.
//
// A step is a write (or none) and its notices; the notices are told only when the write
// succeeded (a step without a write tells them at once), so a failed write says nothing
// that is not true.
import { SCHEDULED_CONDITION, SERVICE_CONDITION, setCondition, type ConditionInput } from '../api/conditions.js';
import { claimName } from '../api/names.js';
import { CLAIM_SCHEDULED, type MoveReason, type ScheduledReason } from '../api/reasons.js';
import type { Condition, IpClaim, IpClaimPool, IpClaimPoolStatus, IpClaimSpec, IpClaimStatus } from '../api/types.js';
import { API_VERSION, MOVE_ANNOTATION } from '../api/types.js';
import { moveAnnotation } from '../api/moves.js';
import { addressCondition, transient, type ServiceClaim } from './condition.js';
import type { DesiredClaim, ServiceOutcome } from './desired.js';
import type { Decision } from './placement.js';
import type { ServiceView } from './service.js';
import { wantsLoadBalancer } from './service.js';

/** Something to tell once a step's write has landed. */
export type Notice =
  /** An Event on each of these Services (those not in the cache are skipped). */
  | { kind: 'event'; services: string[]; type: 'Normal' | 'Warning'; reason: string; message: string }
  /** An Event on a cluster-scoped IpClaimPool. */
  | { kind: 'pool-event'; pool: string; uid: string; type: 'Normal' | 'Warning'; reason: string; message: string }
  /** Addresses released from these Services: counted, and an IPReleased Event on each. */
  | { kind: 'released'; services: string[]; address: string }
  | { kind: 'failover'; reason: MoveReason; seconds: number | undefined }
  | { kind: 'log'; level: 'info' | 'warn'; fields: Record<string, unknown>; message: string };

export type Write =
  | { kind: 'claim-create'; claim: IpClaim }
  /** Carries the resourceVersion read: a concurrent change is a 409, never lost. */
  | { kind: 'claim-replace'; claim: IpClaim }
  /**
   * With the uid and resourceVersion decided on as preconditions. confirm: none of its
   * Services is in the cache, so ask the apiserver for them first (they may be newer than the cache).
   */
  | { kind: 'claim-delete'; claim: IpClaim; confirm: boolean }
  | { kind: 'claim-status'; name: string; resourceVersion: string; status: IpClaimStatus }
  | { kind: 'pool-finalizers'; name: string; resourceVersion: string; finalizers: string[]; releases: boolean }
  /** Read-modify-write with the resourceVersion: change() is applied to the pool as read, again after a 409; null = nothing to write. */
  | { kind: 'pool-status'; name: string; change: (pool: IpClaimPool) => IpClaimPoolStatus | null }
  /** Merge patch of the status of a pool that does not parse; the status is what the cache should hold after it. */
  | { kind: 'pool-status-raw'; name: string; patch: IpClaimPoolStatus; status: IpClaimPoolStatus }
  | { kind: 'service-ingress'; svc: ServiceView; ingress: Array<{ ip: string; ipMode?: string }> }
  | { kind: 'service-external-ips'; svc: ServiceView; externalIPs: string[] }
  | { kind: 'service-condition'; svc: ServiceView; condition: Condition };

export interface Step {
  /** The object the step is about (claim name, pool name, Service key). */
  key: string;
  write: Write | null;
  notices: Notice[];
}

export type WriteKind = Write['kind'];

/** The stage label of each kind of write, for reconcile_errors_total{stage} and log lines. */
export const STAGE: Record<WriteKind, string> = {
  'claim-create': 'claim-write',
  'claim-replace': 'claim-write',
  'claim-delete': 'claim-delete',
  'claim-status': 'claim-status',
  'pool-finalizers': 'pool-finalizer',
  'pool-status': 'pool-status',
  'pool-status-raw': 'pool-status',
  'service-ingress': 'service-status',
  'service-external-ips': 'service-status',
  'service-condition': 'service-condition',
};

export const addressOf = (cidr: string): string => cidr.split('/')[0] ?? cidr;
/** Same strings in the same order (no JSON.stringify: asked for every claim and Service of every pass). */
export function sameList(a: string[] | undefined, b: string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export function sameSpec(a: IpClaimSpec, b: IpClaimSpec): boolean {
  return (
    a.cidr === b.cidr &&
    (a.nodeName ?? '') === (b.nodeName ?? '') &&
    (a.pool ?? '') === (b.pool ?? '') &&
    (a.link ?? '') === (b.link ?? '') &&
    sameList(a.services, b.services)
  );
}

// ---- claims ----

export interface ClaimPlanInput {
  desired: Map<string, DesiredClaim>;
  decisions: Map<string, Decision>;
  existing: Map<string, IpClaim>;
  /** Service keys in the cache. */
  cachedServices: { has(key: string): boolean };
  now: number;
  /** When each failed node was found failed (ms). */
  failedAt: Map<string, number>;
  /** Claims not to create this pass (the apiserver refused them; backing off). */
  holdBack?: { has(name: string): boolean };
}

function specOf(claim: DesiredClaim, decision: Decision, old: IpClaim | undefined): IpClaimSpec {
  const node = decision.kind === 'move' ? decision.to : decision.node;
  const spec: IpClaimSpec = { cidr: claim.cidr, services: claim.services };
  if (node) spec.nodeName = node;
  if (old?.spec.link) spec.link = old.spec.link;
  if (claim.pool) spec.pool = claim.pool;
  return spec;
}

/** Metadata for a claim write: a move carries its record (api/moves.ts) in the same write. */
function metadataFor(old: IpClaim, decision: Decision, now: number, failedAt: Map<string, number>): IpClaim['metadata'] {
  if (decision.kind !== 'move') return old.metadata;
  const detected = failedAt.get(decision.from) ?? now;
  const record = moveAnnotation({
    from: decision.from,
    to: decision.to,
    reason: decision.reason,
    detectedAt: new Date(Math.min(detected, now)).toISOString(),
    claimedAt: new Date(now).toISOString(),
  });
  return { ...old.metadata, annotations: { ...old.metadata.annotations, [MOVE_ANNOTATION]: record } };
}

/** What a placement decision tells once the claim is as decided. */
export function placementNotices(claim: DesiredClaim, decision: Decision, old: IpClaim | undefined, input: ClaimPlanInput): Notice[] {
  switch (decision.kind) {
    case 'assign':
    case 'keep':
      if (decision.kind === 'keep' && old?.spec.nodeName) return [];
      return [event(claim.services, 'Normal', 'IPAssigned', `${claim.address} assigned to node ${decision.node}`)];
    case 'move': {
      const failedAt = input.failedAt.get(decision.from);
      const seconds = failedAt !== undefined ? Math.max(0, input.now - failedAt) / 1000 : undefined;
      // The IPMoved Event waits for the new node's agent to report the address up (reconciler tellMoves).
      return [
        { kind: 'failover', reason: decision.reason, seconds },
        info({ claim: claim.name, from: decision.from, to: decision.to, reason: decision.reason, seconds }, 'claim moved'),
      ];
    }
    case 'pending':
      return [event(claim.services, 'Warning', decision.reason, `${claim.address}: ${decision.message}`)];
  }
}

const event = (services: string[], type: 'Normal' | 'Warning', reason: string, message: string): Notice => ({
  kind: 'event',
  services,
  type,
  reason,
  message,
});
const info = (fields: Record<string, unknown>, message: string): Notice => ({ kind: 'log', level: 'info', fields, message });

function released(old: IpClaim, now: string[]): Notice[] {
  const gone = (old.spec.services ?? []).filter((k) => !now.includes(k));
  return gone.length ? [{ kind: 'released', services: gone, address: addressOf(old.spec.cidr) }] : [];
}

function claimStep(claim: DesiredClaim, decision: Decision, input: ClaimPlanInput): Step | null {
  const old = input.existing.get(claim.name);
  const spec = specOf(claim, decision, old);
  const placed = placementNotices(claim, decision, old, input);
  const said = { claim: claim.name, ip: claim.address, node: spec.nodeName, services: claim.services };
  if (!old) {
    if (input.holdBack?.has(claim.name)) return null;
    const body: IpClaim = { apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name: claim.name }, spec };
    return { key: claim.name, write: { kind: 'claim-create', claim: body }, notices: [info(said, 'claim created'), ...placed] };
  }
  if (sameSpec(old.spec, spec)) return { key: claim.name, write: null, notices: placed };
  const body: IpClaim = { ...old, metadata: metadataFor(old, decision, input.now, input.failedAt), spec };
  return {
    key: claim.name,
    write: { kind: 'claim-replace', claim: body },
    notices: [info(said, 'claim updated'), ...released(old, claim.services), ...placed],
  };
}

/** Creates, updates and deletes of claims; a claim is an atomic lock on its address. */
export function planClaims(input: ClaimPlanInput): Step[] {
  const steps: Step[] = [];
  for (const claim of input.desired.values()) {
    const decision = input.decisions.get(claim.name);
    const step = decision ? claimStep(claim, decision, input) : null;
    if (step) steps.push(step);
  }
  for (const [name, old] of input.existing) {
    if (input.desired.has(name)) continue;
    const keys = old.spec.services ?? [];
    const confirm = keys.length > 0 && !keys.some((k) => input.cachedServices.has(k));
    steps.push({
      key: name,
      write: { kind: 'claim-delete', claim: old, confirm },
      notices: [info({ claim: name, ip: old.spec.cidr }, 'claim deleted'), ...released(old, [])],
    });
  }
  return steps;
}

/** The scheduler's Scheduled condition on a claim, with a reason from its closed list. */
const scheduledCondition = (status: 'True' | 'False', reason: ScheduledReason, message: string): ConditionInput => ({
  type: SCHEDULED_CONDITION,
  status,
  reason,
  message,
});

/** The status of a claim no node can take: Scheduled=False with why; null when it says so already. */
function unplacedStatus(
  claim: DesiredClaim,
  decision: Decision & { kind: 'pending' },
  current: IpClaim,
  now: number,
): IpClaimStatus | null {
  const old = current.status?.conditions?.find((c) => c.type === SCHEDULED_CONDITION);
  if (old?.status === 'False' && old.reason === decision.reason && old.message === decision.message) return null;
  const scheduled = scheduledCondition('False', decision.reason, decision.message);
  return {
    ...current.status,
    serviceList: claim.services.join(', '),
    phase: current.status?.phase === 'Assigned' && decision.node ? 'Assigned' : 'Pending',
    conditions: setCondition(current.status?.conditions, scheduled, new Date(now).toISOString()),
  };
}

/** The claim status the scheduler writes: only to say why it cannot place a claim (or that it now can); null = no write. */
export function pendingStatus(claim: DesiredClaim, decision: Decision, current: IpClaim, now: number): IpClaimStatus | null {
  if (decision.kind === 'pending') return unplacedStatus(claim, decision, current, now);
  const old = current.status?.conditions?.find((c) => c.type === SCHEDULED_CONDITION);
  if (old?.status !== 'False') return null;
  const placed = `placed on ${current.spec.nodeName ?? ''}`;
  return {
    ...current.status,
    conditions: setCondition(current.status?.conditions, scheduledCondition('True', CLAIM_SCHEDULED, placed), new Date(now).toISOString()),
  };
}

/** Claim status writes, decided on the claims as they are after this pass's claim writes. */
export function planClaimStatuses(
  input: Pick<ClaimPlanInput, 'desired' | 'decisions' | 'now'>,
  current: (name: string) => IpClaim | undefined,
  failed: Set<string>,
): Step[] {
  const steps: Step[] = [];
  for (const claim of input.desired.values()) {
    const decision = input.decisions.get(claim.name);
    const cur = current(claim.name);
    if (!decision || !cur || failed.has(claim.name)) continue;
    const status = pendingStatus(claim, decision, cur, input.now);
    if (status)
      steps.push({
        key: claim.name,
        write: { kind: 'claim-status', name: claim.name, resourceVersion: cur.metadata.resourceVersion ?? '', status },
        notices: [],
      });
  }
  return steps;
}

// ---- Services ----

/** status.loadBalancer.ingress (or spec.externalIPs) of Services whose claims exist. */
export function planIngress(
  outcomes: Map<string, Pick<ServiceOutcome, 'ingress' | 'externalIPs'>>,
  svcByKey: Map<string, ServiceView>,
  claimExists: (name: string) => boolean,
): Step[] {
  // Publish an address only once its claim exists.
  const claimed = (ips: string[]): boolean => ips.every((ip) => claimExists(claimName(ip)));
  const steps: Step[] = [];
  for (const [key, outcome] of outcomes) {
    const svc = svcByKey.get(key);
    if (!svc) continue;
    if (outcome.ingress !== null && !sameList(svc.ingress, outcome.ingress) && claimed(outcome.ingress)) {
      const mode = svc.type === 'LoadBalancer' ? { ipMode: 'VIP' } : {};
      const ingress = outcome.ingress.map((ip) => ({ ip, ...mode }));
      steps.push({ key, write: { kind: 'service-ingress', svc, ingress }, notices: [] });
    } else if (outcome.externalIPs !== null && claimed(outcome.externalIPs.filter((ip) => !svc.externalIPs.includes(ip)))) {
      steps.push({ key, write: { kind: 'service-external-ips', svc, externalIPs: outcome.externalIPs }, notices: [] });
    }
  }
  return steps;
}

const NOT_REQUESTED = { status: 'False', reason: 'NotRequested', message: 'the Service asks ipcontroller for no address' } as const;

export interface ConditionPlanInput {
  claims: Map<string, DesiredClaim>;
  outcomes: Map<string, Pick<ServiceOutcome, 'problems'>>;
  decisions: Map<string, Decision>;
  svcByKey: Map<string, ServiceView>;
  current: (name: string) => IpClaim | undefined;
  now: number;
}

function claimsByService(input: ConditionPlanInput): Map<string, ServiceClaim[]> {
  const byService = new Map<string, ServiceClaim[]>();
  for (const c of input.claims.values()) {
    const decision = input.decisions.get(c.name);
    const existing = input.current(c.name);
    const entry: ServiceClaim = { name: c.name, address: c.address, ...(decision ? { decision } : {}), ...(existing ? { existing } : {}) };
    for (const key of c.services) {
      const list = byService.get(key);
      if (list) list.push(entry);
      else byService.set(key, [entry]);
    }
  }
  return byService;
}

/** Our condition on each Service that asks for addresses, written when it changes (a first passing state is not written). */
export function planServiceConditions(input: ConditionPlanInput): Step[] {
  const byService = claimsByService(input);
  const steps: Step[] = [];
  for (const svc of input.svcByKey.values()) {
    const outcome = input.outcomes.get(svc.key);
    const asks = outcome !== undefined && (wantsLoadBalancer(svc) || svc.externalIPs.length > 0);
    if (!asks && !svc.addressCondition) continue;
    // A Service that stopped asking (or moved to another class) keeps no stale Ready.
    const want = outcome && asks ? addressCondition(outcome.problems, byService.get(svc.key) ?? []) : NOT_REQUESTED;
    const old = svc.addressCondition;
    if (old ? old.status === want.status && old.reason === want.reason && old.message === want.message : transient(want)) continue;
    const at = old && old.status === want.status ? old.lastTransitionTime : new Date(input.now).toISOString();
    steps.push({
      key: svc.key,
      write: { kind: 'service-condition', svc, condition: { type: SERVICE_CONDITION, ...want, lastTransitionTime: at } },
      notices: [],
    });
  }
  return steps;
}
