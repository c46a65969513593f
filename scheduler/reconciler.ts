// One reconcile pass: compute the desired claims from the caches (pure: desired.ts,
// placement.ts), plan the writes that bring the API there (pure: plan.ts, poolplan.ts) and
// make them (executor.ts), stage by stage, in an order that never loses or doubles an address:
//   1. create / update / delete IpClaims. A claim's name is its address, so creating it is an
//      atomic lock on that address: a 409 means someone else holds it, and we re-read. An
//      update carries the resourceVersion read, so a concurrent change is a 409, never lost.
//      Then the claim status of claims that cannot be placed (or now can);
//   2. each pool's finalizer, then its allocations, used and free in IpClaimPool.status:
//      read-modify-write with the resourceVersion, 409s re-read and retried;
//   3. status.loadBalancer.ingress of Services whose claims exist, then their condition;
//   4. Events (after the pass's writes: they are best effort) and metrics.
// Each stage is planned on the caches as the previous stage left them (writes go through to
// the caches). Claims are the record of who holds what; the pool status is rebuilt from them
// each pass, so a crash between steps leaves nothing that the next pass (or the next leader)
// does not fix. A pass that deletes no claim pipelines 1-3 (writePipelined): each Service's
// ingress is written as soon as its own claims exist and the pool status is written, while
// the other claims are still being created; per Service the order stays claim, pool, ingress.
import type { IpClaim, IpNode } from '../api/types.js';
import { API_VERSION } from '../api/types.js';
import { movedMessage, pendingMove } from '../api/moves.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { IpFamily } from '../api/ip.js';
import { capped } from './allocator.js';
import { ADDRESS_CONFLICT, ANNOUNCED, activeConflicts, mergeExclusions, namesOurMac, nodeExclusions } from './exclusions.js';
import { computeDesired, poolSetOf, type Desired, type DesiredClaim, type PoolSet, type ServiceOutcome } from './desired.js';
import type { EventSink } from './events.js';
import { Executor, isInvalid, type RunHandle, type RunKind, type RunResult } from './executor.js';
import type { NodeFailure } from './health.js';
import type { CoreEvent, KubeWrites, NodeView, PoolEntry, SliceView } from './kube.js';
import type { SchedulerMetrics } from './metrics.js';
import { claimsToPlace, endpointNodesOf, place, type Decision, type Strategy } from './placement.js';
import {
  addressOf,
  planClaims,
  planClaimStatuses,
  planIngress,
  planServiceConditions,
  type ClaimPlanInput,
  type Notice,
  type Step,
} from './plan.js';
import { planFinalizers, planInvalidPools, planPoolStatuses } from './poolplan.js';
import { overlaps, poolUsers } from './pools.js';
import type { Problem, ServiceView } from './service.js';
import { Store } from './watch.js';

export { sameJson } from './poolplan.js';

export interface Caches {
  services: Store<ServiceView>;
  nodes: Store<NodeView>;
  slices: Store<SliceView>;
  ipNodes: Store<IpNode>;
  claims: Store<IpClaim>;
  pools: Store<PoolEntry>;
}

export function emptyCaches(): Caches {
  return {
    services: new Store<ServiceView>(),
    nodes: new Store<NodeView>(),
    slices: new Store<SliceView>(),
    ipNodes: new Store<IpNode>(),
    claims: new Store<IpClaim>(),
    pools: new Store<PoolEntry>(),
  };
}

export interface NodeHealthView {
  candidates: string[];
  failures: Map<string, NodeFailure>;
  /** Failed nodes that keep their claims (stale heartbeat, probes answered): see health.ts. */
  holding?: string[];
  /** When each failed node was found failed (ms). */
  failedAt: Map<string, number>;
}

export interface ReconcileConfig {
  lbClass: string;
  mask: Record<IpFamily, number>;
  strategy: Strategy;
  rebalance: boolean;
  /** Parallel writes to the apiserver. */
  concurrency: number;
  /** How long an address a foreign host answered for stays excluded before it is probed again (default 10 min). */
  conflictRetryMs?: number;
}

export const DEFAULT_CONFLICT_RETRY_MS = 10 * 60_000;

export interface ReconcileDeps {
  caches: Caches;
  writes: KubeWrites;
  events: EventSink;
  metrics: SchedulerMetrics;
  log: Logger;
  clock: Clock;
  cfg: ReconcileConfig;
  health(): NodeHealthView;
}

/** How a pass went: ok, retry (some writes failed) or lostLeadership (it stopped writing). */
export interface PassResult {
  kind: RunKind;
  writes: number;
  errors: number;
}

type EventText = Pick<Notice & { kind: 'event' }, 'type' | 'reason' | 'message'>;

/** Claims the apiserver refused (422): not created again before their backoff ends (10 s doubling to 5 min). */
class RefusedClaims {
  private readonly held = new Map<string, { until: number; delayMs: number }>();
  refused(name: string, now: number): number {
    const delayMs = Math.min((this.held.get(name)?.delayMs ?? 5_000) * 2, 300_000);
    this.held.set(name, { until: now + delayMs, delayMs });
    return delayMs;
  }
  holding(now: number): Set<string> {
    return new Set([...this.held].filter(([, h]) => h.until > now).map(([name]) => name));
  }
  /** Forgets claims created since, and claims no longer wanted. */
  prune(done: Set<string>, wanted: Map<string, unknown>): void {
    for (const name of [...this.held.keys()]) if (done.has(name) || !wanted.has(name)) this.held.delete(name);
  }
}

/** The apiserver's own words from an error (the Status message of an ApiException body). */
function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  try {
    const message = (JSON.parse(String(body)) as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  } catch {
    /* not JSON */
  }
  return String(err);
}

/** A pass's writes and errors, over its stages. */
class Tally {
  writes = 0;
  errors = 0;
  kind: RunKind = 'ok';
  add(r: RunResult): RunResult {
    this.writes += r.writes;
    this.errors += r.errors;
    if (r.kind === 'lostLeadership' || (r.kind === 'retry' && this.kind === 'ok')) this.kind = r.kind;
    return r;
  }
  result(): PassResult {
    return { kind: this.kind, writes: this.writes, errors: this.errors };
  }
}

interface PassState {
  desired: Desired;
  pools: PoolSet;
  decisions: Map<string, Decision>;
  existing: IpClaim[];
  svcByKey: Map<string, ServiceView>;
  now: number;
  exec: Executor;
  tally: Tally;
  /** Services whose ingress was already tried this pass (pipelined after their claims). */
  ingressTried: Set<string>;
}

export class Reconciler {
  /** Service key -> problem keys reported last pass, so failures are counted once. */
  private lastProblems = new Map<string, Set<string>>();
  private knownPools = new Set<string>();
  /** Moves already told in an IPMoved Event ("claim|claimedAt"). */
  private toldMoves = new Set<string>();
  private readonly refused = new RefusedClaims();
  /** Events of the pass in progress (flushEvents). */
  private readonly held: CoreEvent[] = [];

  constructor(private readonly d: ReconcileDeps) {}

  /**
   * One pass. signal aborts when leadership is lost; validUntil is the end of the leadership
   * on this replica's own clock (the Lease's renew deadline), checked before every write, so
   * a replica resumed after a freeze or a partition writes nothing before it has renewed.
   * Never throws for a failed write: the result says what happened.
   */
  async pass(signal: AbortSignal, validUntil: () => number = () => Infinity): Promise<PassResult> {
    const { caches, cfg } = this.d;
    const services = caches.services.values();
    const existing = caches.claims.values();
    const pools = this.poolSet(existing);
    const desired = computeDesired(services, pools, existing, cfg);
    // The largest synchronous part of a pass (about 0.2 s at 5,000 Services): let the Lease renewal run before placement and planning.
    await yieldToTimers();
    const svcByKey = new Map(services.map((s) => [s.key, s]));
    const existingByName = new Map(existing.map((c) => [c.metadata.name ?? '', c]));
    const decisions = this.placeAll([...desired.claims.values()], existingByName, svcByKey);
    const tally = new Tally();
    const exec = new Executor(
      { ...this.d, concurrency: cfg.concurrency, tell: (step: Step) => this.tell(step.notices, svcByKey) },
      signal,
      validUntil,
    );
    const now = this.d.clock.now();
    const s: PassState = { desired, pools, decisions, existing, svcByKey, now, exec, tally, ingressTried: new Set() };
    try {
      const done = (await this.writeClaimsAndPools(s, existingByName)) && (await this.writeServices(s)) && !exec.lostLeadership;
      if (done) this.tellAfterPass(s);
    } finally {
      this.flushEvents();
    }
    return tally.result();
  }

  /** Runs one stage's steps; false when leadership was lost (the pass stops). */
  private async run(s: PassState, steps: Step[]): Promise<RunResult | null> {
    await yieldToTimers();
    const r = s.tally.add(await s.exec.run(steps));
    return r.kind === 'lostLeadership' ? null : r;
  }

  /** Claims, claim statuses and pools (stages 1 and 2); pipelined with the ingress when no claim is deleted. */
  private async writeClaimsAndPools(s: PassState, existing: Map<string, IpClaim>): Promise<boolean> {
    const input: ClaimPlanInput = {
      desired: s.desired.claims,
      decisions: s.decisions,
      existing,
      cachedServices: s.svcByKey,
      now: s.now,
      failedAt: this.d.health().failedAt,
      holdBack: this.refused.holding(s.now),
    };
    const steps = planClaims(input);
    // A delete changes who uses a pool (its finalizer may go): the pools wait for every claim write then.
    if (steps.some((st) => st.write?.kind === 'claim-delete')) {
      const claims = await this.run(s, steps);
      return claims !== null && (await this.afterClaims(s, input, claims)) && (await this.writePools(s));
    }
    return this.writePipelined(s, input, steps);
  }

  /** The claim statuses, decided on the claims as the claim writes left them. */
  private async afterClaims(s: PassState, input: ClaimPlanInput, claims: RunResult): Promise<boolean> {
    this.noteRefused(claims, s);
    const failed = new Set(claims.failures.map((f) => f.step.key));
    return (
      (await this.run(
        s,
        planClaimStatuses(input, (name) => this.d.caches.claims.get(name), failed),
      )) !== null
    );
  }

  /**
   * No claim is deleted this pass, so who uses each pool is known before any claim write
   * lands (the desired claims). The pool stage starts once the first claim write has settled;
   * each Service's ingress is queued as soon as its claims exist, and written once the pool
   * stage is done, in the same run as the claim creates still to come (before them). So a
   * cold start writes at the apiserver's pace from the first create to the last ingress
   * instead of all creates, then all ingress patches.
   */
  private async writePipelined(s: PassState, input: ClaimPlanInput, steps: Step[]): Promise<boolean> {
    await yieldToTimers();
    const lane = new IngressLane(s.desired, s.svcByKey, (name) => this.d.caches.claims.get(name) !== undefined, s.ingressTried);
    const gate = new PoolGate(!steps.some((st) => st.write));
    const run = s.exec.start(steps, {
      follow: (step) => gate.pass(lane.after(step.key)),
      settled: (step) => (step.write ? gate.claimSettled() : undefined),
    });
    const pools = this.poolLane(s, gate, run);
    const claims = s.tally.add(await run.result);
    const poolsOk = await pools;
    return claims.kind !== 'lostLeadership' && poolsOk && (await this.afterClaims(s, input, claims));
  }

  /** The pool stage of a pipelined pass: after the first claim write, then lets the ingress that waited for it into the run. */
  private async poolLane(s: PassState, gate: PoolGate, run: RunHandle): Promise<boolean> {
    const release = run.hold();
    try {
      await Promise.race([gate.firstClaim, run.result]);
      const ok = await this.writePools(s);
      if (ok) run.add(gate.open());
      return ok;
    } finally {
      release();
    }
  }

  /** A create the apiserver refuses (422) for a reason the allocator did not foresee: an Event on its Services, and a backoff. */
  private noteRefused(r: RunResult, s: PassState): void {
    for (const { step, err } of r.failures) {
      if (step.write?.kind !== 'claim-create' || !isInvalid(err)) continue;
      const claim = step.write.claim;
      const delayMs = this.refused.refused(step.key, s.now);
      const message = `the apiserver refused IpClaim ${step.key} for ${addressOf(claim.spec.cidr)}: ${apiMessage(err)}; trying again in ${delayMs / 1000}s`;
      this.eventAll(claim.spec.services ?? [], s.svcByKey, { type: 'Warning', reason: 'AllocationFailed', message });
    }
    this.refused.prune(r.done, s.desired.claims);
  }

  private async writePools(s: PassState): Promise<boolean> {
    const { caches } = this.d;
    // Who uses each pool: the claims wanted now, and those that still exist (a failed delete).
    const cached = caches.claims.values().map((c) => ({
      name: c.metadata.name ?? '',
      address: addressOf(c.spec.cidr),
      services: c.spec.services ?? [],
      ...(c.spec.pool ? { pool: c.spec.pool } : {}),
    }));
    const users = poolUsers([...s.desired.claims.values(), ...cached]);
    // Finalizers first: the status writes below then start from the pool as it is now.
    const finalizerSteps = planFinalizers(caches.pools.values(), users);
    const fin = await this.run(s, finalizerSteps);
    if (!fin) return false;
    const gone = new Set(
      finalizerSteps.filter((st) => st.write?.kind === 'pool-finalizers' && st.write.releases && fin.done.has(st.key)).map((st) => st.key),
    );
    this.poolMetrics(s, gone);
    const input = { pools: s.pools, allocations: s.desired.poolAllocations, users, overlapping: overlaps(s.pools.valid), now: s.now };
    const invalid = planInvalidPools(s.pools.invalid, (name) => caches.pools.get(name), s.desired.claims.values(), s.now);
    return (await this.run(s, [...planPoolStatuses(input, gone), ...invalid])) !== null;
  }

  private poolMetrics(s: PassState, gone: Set<string>): void {
    for (const pool of s.pools.valid)
      if (!gone.has(pool.name)) this.d.metrics.pool(pool.name, capped(pool.size), s.desired.poolAllocations.get(pool.name)?.size ?? 0);
    for (const name of this.knownPools) if (!s.pools.valid.some((p) => p.name === name)) this.d.metrics.forgetPool(name);
    this.knownPools = new Set(s.pools.valid.map((p) => p.name));
  }

  private async writeServices(s: PassState): Promise<boolean> {
    const claims = this.d.caches.claims;
    const ingress = await this.run(
      s,
      planIngress(s.desired.services, s.svcByKey, (name) => claims.get(name) !== undefined).filter((st) => !s.ingressTried.has(st.key)),
    );
    if (!ingress) return false;
    const steps = planServiceConditions({
      claims: s.desired.claims,
      outcomes: s.desired.services,
      decisions: s.decisions,
      svcByKey: s.svcByKey,
      current: (name) => claims.get(name),
      now: s.now,
    });
    return (await this.run(s, steps)) !== null;
  }

  private tellAfterPass(s: PassState): void {
    this.tellMoves(s.svcByKey);
    this.report(s.desired, s.existing, s.svcByKey);
    this.reportConflicts(s.existing, s.svcByKey);
  }

  /**
   * Pools to allocate from (a pool being deleted keeps its holders, terminating, unless the
   * user asked to release them), with the addresses never handed out: Nodes' own addresses
   * and addresses another host answered for (exclusions.ts).
   */
  private poolSet(claims: IpClaim[]): PoolSet {
    const entries = this.d.caches.pools.values();
    const base = poolSetOf(entries);
    const stored = entries.flatMap((e) => (e.ok ? [e.pool] : []));
    const nodes = this.d.caches.nodes.values().map((n) => ({ name: n.name, addresses: n.addresses ?? [] }));
    const retry = this.d.cfg.conflictRetryMs ?? DEFAULT_CONFLICT_RETRY_MS;
    const excluded = mergeExclusions(
      nodeExclusions(nodes, base.valid),
      activeConflicts(claims, stored, { now: this.d.clock.now(), retryMs: retry, ourMacs: this.ourMacs() }),
    );
    return { ...base, excluded };
  }

  /** Every agent's MACs (IpNode.status.macs), lower case. */
  private ourMacs(): Set<string> {
    return new Set(this.d.caches.ipNodes.values().flatMap((n) => (n.status?.macs ?? []).map((m) => m.toLowerCase())));
  }

  /**
   * The agent cannot create Events (its RBAC has none), so the scheduler tells the Services of
   * a claim the agent marked Announced=False / AddressConflict. The event sink sends repeats
   * once per 10 minutes.
   */
  private reportConflicts(claims: IpClaim[], svcByKey: Map<string, ServiceView>): void {
    const ours = this.ourMacs();
    for (const claim of claims) {
      const c = claim.status?.conditions?.find((x) => x.type === ANNOUNCED && x.status === 'False' && x.reason === ADDRESS_CONFLICT);
      if (c && !namesOurMac(c.message, ours))
        this.eventAll(claim.spec.services ?? [], svcByKey, {
          type: 'Warning',
          reason: ADDRESS_CONFLICT,
          message: `${addressOf(claim.spec.cidr)}: ${c.message}`,
        });
    }
  }

  private placeAll(claims: DesiredClaim[], existing: Map<string, IpClaim>, svcByKey: Map<string, ServiceView>): Map<string, Decision> {
    const isLocal = (key: string): boolean => svcByKey.get(key)?.externalTrafficPolicyLocal === true;
    const endpointNodes = endpointNodesOf(this.d.caches.slices.values(), isLocal);
    const health = this.d.health();
    return place({
      claims: claimsToPlace(claims, (name) => existing.get(name)?.spec.nodeName, isLocal),
      candidates: health.candidates,
      failures: health.failures,
      ...(health.holding ? { holding: health.holding } : {}),
      endpointNodes,
      strategy: this.d.cfg.strategy,
      rebalance: this.d.cfg.rebalance,
    });
  }

  /** Tells what a step's landed write means: Events, metrics, log lines. */
  private tell(notices: Notice[], svcByKey: Map<string, ServiceView>): void {
    for (const n of notices) {
      switch (n.kind) {
        case 'event':
          this.eventAll(n.services, svcByKey, n);
          break;
        case 'pool-event':
          this.emit({
            namespace: 'default',
            serviceName: n.pool,
            serviceUid: n.uid,
            object: { apiVersion: API_VERSION, kind: 'IpClaimPool', name: n.pool, uid: n.uid },
            type: n.type,
            reason: n.reason,
            message: n.message,
          });
          break;
        case 'released':
          for (const _ of n.services) this.d.metrics.released();
          this.eventAll(n.services, svcByKey, { type: 'Normal', reason: 'IPReleased', message: `${n.address} released` });
          break;
        case 'failover':
          this.d.metrics.failover(n.reason, n.seconds);
          break;
        case 'log':
          this.d.log[n.level](n.fields, n.message);
          break;
      }
    }
  }

  /**
   * IPMoved, once per move, when the new node's agent has reported the address up (its
   * status.lastMove), with how long each step took; or, if it has not within a minute, without
   * that last step. Only within two minutes of the claim write, so a new leader does not tell old moves again.
   */
  private tellMoves(svcByKey: Map<string, ServiceView>): void {
    const now = this.d.clock.now();
    const live = new Set<string>();
    for (const claim of this.d.caches.claims.values()) {
      const move = pendingMove(claim);
      if (!move) continue;
      const id = `${claim.metadata.name ?? ''}|${move.claimedAt}`;
      live.add(id);
      const message = this.toldMoves.has(id) ? null : moveMessage(claim, move, now);
      if (!message) continue;
      this.toldMoves.add(id);
      this.eventAll(claim.spec.services ?? [], svcByKey, { type: 'Normal', reason: 'IPMoved', message });
    }
    for (const id of this.toldMoves) if (!live.has(id)) this.toldMoves.delete(id);
  }

  /** IPAllocated for new addresses, AllocationFailed for problems (counted and logged once while they last), claim phases. */
  private report(desired: Desired, existing: IpClaim[], svcByKey: Map<string, ServiceView>): void {
    const before = new Map<string, Set<string>>();
    for (const c of existing) {
      if (!c.spec.pool) continue;
      for (const k of c.spec.services ?? []) before.set(k, (before.get(k) ?? new Set<string>()).add(addressOf(c.spec.cidr)));
    }
    const problemsNow = new Map<string, Set<string>>();
    for (const [key, outcome] of desired.services) {
      const svc = svcByKey.get(key);
      if (!svc) continue;
      for (const h of outcome.held) {
        if (before.get(key)?.has(h.address) || svc.ingress.includes(h.address)) continue;
        this.d.metrics.allocated(h.pool);
        this.event(svc, { type: 'Normal', reason: 'IPAllocated', message: `allocated ${h.address} from IpClaimPool ${h.pool}` });
      }
      for (const p of outcome.dropped ?? [])
        this.event(svc, { type: 'Warning', reason: p.reason, message: `${p.message}; allocating another address` });
      const seen = this.reportProblems(svc, outcome.problems);
      if (seen.size) problemsNow.set(key, seen);
    }
    this.lastProblems = problemsNow;
    this.d.metrics.claimPhases(claimPhases(this.d.caches.claims.values()));
  }

  private reportProblems(svc: ServiceView, problems: Problem[]): Set<string> {
    const seen = new Set<string>();
    for (const p of problems) {
      const id = `${p.reason}|${p.message}`;
      seen.add(id);
      this.event(svc, { type: 'Warning', reason: 'AllocationFailed', message: `${p.reason}: ${p.message}` });
      if (!this.lastProblems.get(svc.key)?.has(id)) {
        this.d.metrics.allocationFailed(p.reason);
        this.d.log.warn({ service: svc.key, reason: p.reason }, p.message);
      }
    }
    return seen;
  }

  private eventAll(keys: string[], svcByKey: Map<string, ServiceView>, e: EventText): void {
    for (const key of keys) {
      const svc = svcByKey.get(key);
      if (svc) this.event(svc, e);
    }
  }

  /**
   * Events wait for the end of the pass that caused them: they are best effort, and sent
   * while the pass writes they would take the apiserver's time from the claim and ingress
   * writes (a cold start of thousands of Services emits two per Service).
   */
  private emit(e: CoreEvent): void {
    this.held.push(e);
  }

  private flushEvents(): void {
    for (const e of this.held.splice(0)) this.d.events.emit(e);
  }

  private event(svc: ServiceView, e: EventText): void {
    this.emit({
      namespace: svc.namespace,
      serviceName: svc.name,
      serviceUid: svc.uid,
      type: e.type,
      reason: e.reason,
      message: e.message,
    });
  }
}

/** The IPMoved message when it is time to tell it: once the new node reported the address up, or after a minute without; never after two. */
function moveMessage(claim: IpClaim, move: NonNullable<ReturnType<typeof pendingMove>>, now: number): string | null {
  const age = now - Date.parse(move.claimedAt);
  if (age > 120_000) return null;
  const last = claim.status?.lastMove;
  const up = last && last.claimedAt === move.claimedAt && last.to === move.to && last.upAt ? last : null;
  if (!up && age < 60_000) return null;
  return movedMessage(addressOf(claim.spec.cidr), up ?? move);
}

function claimPhases(claims: IpClaim[]): Record<string, number> {
  const phases: Record<string, number> = { Pending: 0, Assigned: 0, Failed: 0, None: 0 };
  for (const c of claims) {
    const phase = c.status?.phase ?? 'None';
    phases[phase] = (phases[phase] ?? 0) + 1;
  }
  return phases;
}

/** Planning is synchronous: lets timers (the Lease renewal) run between the stages of a large pass. */
const yieldToTimers = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/** The ingress of each Service, planned as soon as every claim it needs exists; once per Service and pass. */
class IngressLane {
  constructor(
    private readonly desired: Desired,
    private readonly svcByKey: Map<string, ServiceView>,
    private readonly claimExists: (name: string) => boolean,
    /** Services whose ingress step was made (shared with the pass: its ingress stage skips them). */
    private readonly tried: Set<string>,
  ) {}

  /** The ingress steps a landed (or unchanged) claim makes possible. */
  after(claimName: string): Step[] {
    const outcomes = new Map<string, ServiceOutcome>();
    for (const key of this.desired.claims.get(claimName)?.services ?? []) {
      const outcome = this.desired.services.get(key);
      if (outcome && !this.tried.has(key)) outcomes.set(key, outcome);
    }
    const steps = planIngress(outcomes, this.svcByKey, this.claimExists);
    for (const st of steps) this.tried.add(st.key);
    return steps;
  }
}

/** Holds the ingress of a pipelined pass until the pool stage is done (per Service: claim, pool, ingress). */
class PoolGate {
  readonly firstClaim: Promise<void>;
  private settle: () => void = () => {};
  private opened = false;
  private readonly waiting: Step[] = [];

  constructor(noClaimWrites: boolean) {
    this.firstClaim = new Promise((resolve) => (this.settle = resolve));
    if (noClaimWrites) this.settle();
  }

  claimSettled(): void {
    this.settle();
  }

  /** Steps through once open; kept until then. */
  pass(steps: Step[]): Step[] {
    if (this.opened) return steps;
    this.waiting.push(...steps);
    return [];
  }

  /** Opens the gate; returns what waited. */
  open(): Step[] {
    this.opened = true;
    return this.waiting.splice(0);
  }
}
