// One reconcile pass: compute the desired claims from the caches (pure: desired.ts,
// placement.ts), diff them against the API's state and write only what changed, in an order
// that never loses or doubles an address:
//   1. create / update / delete IpClaims. A claim's name is its address, so creating it is an
//      atomic lock on that address: a 409 means someone else holds it, and we re-read. An
//      update carries the resourceVersion read, so a concurrent change is a 409, never lost.
//   2. write each pool's allocations, used and free into IpClaimPool.status: read-modify-write
//      with the resourceVersion, 409s re-read and retried;
//   3. write status.loadBalancer.ingress of Services whose claims exist;
//   4. Events and metrics.
// Claims are the record of who holds what; the pool status is rebuilt from them each pass, so
// a crash between steps leaves nothing that the next pass (or the next leader) does not fix.
import { claimName } from '../api/names.js';
import type { Condition, IpClaim, IpClaimPool, IpClaimPoolStatus, IpClaimSpec, IpNode } from '../api/types.js';
import { API_VERSION, MOVE_ANNOTATION, SERVICE_CONDITION } from '../api/types.js';
import { moveAnnotation, movedMessage, pendingMove } from '../api/moves.js';
import { addressCondition, transient, type ServiceClaim } from './condition.js';
import { isConflict } from '../api/client.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { capped, type Family, type Pool } from './allocator.js';
import {
  ADDRESS_CONFLICT,
  ANNOUNCED,
  conflictExclusions,
  exclusionSummary,
  exclusionsIn,
  mergeExclusions,
  namesOurMac,
  nodeExclusions,
} from './exclusions.js';
import { computeDesired, poolSetOf, type DesiredClaim, type PoolSet } from './desired.js';
import type { EventSink } from './events.js';
import type { NodeFailure } from './health.js';
import { parsePoolEntry, type KubeWrites, type NodeView, type PoolEntry, type SliceView } from './kube.js';
import type { SchedulerMetrics } from './metrics.js';
import { claimsToPlace, endpointNodesOf, place, type Decision, type Strategy } from './placement.js';
import { parseService, wantsLoadBalancer, type ServiceView } from './service.js';
import { Store } from './watch.js';
import { forEachLimit } from '../lib/concurrency.js';
import { deletingMessage, finalizerAction, overlaps, poolConditions, poolMeta, poolUsers, POOL_FINALIZER, type PoolUser } from './pools.js';

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
  mask: Record<Family, number>;
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

export interface PassResult {
  writes: number;
  errors: number;
}

class NotLeader extends Error {
  constructor() {
    super('no longer the leader');
  }
}

const sameList = (a: string[] | undefined, b: string[] | undefined): boolean => JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
const addressOf = (cidr: string): string => cidr.split('/')[0] ?? cidr;

function condition(type: string, status: Condition['status'], reason: string, message: string, now: number): Condition {
  return { type, status, reason, message, lastTransitionTime: new Date(now).toISOString() };
}

function withCondition(list: Condition[] | undefined, c: Condition): Condition[] {
  const old = list?.find((x) => x.type === c.type);
  const kept = old && old.status === c.status ? { ...c, lastTransitionTime: old.lastTransitionTime } : c;
  return [...(list ?? []).filter((x) => x.type !== c.type), kept];
}

export class Reconciler {
  /** Service key -> problem keys reported last pass, so failures are counted once. */
  private lastProblems = new Map<string, Set<string>>();
  private knownPools = new Set<string>();
  /** Moves already told in an IPMoved Event ("claim|claimedAt"). */
  private toldMoves = new Set<string>();
  private writes = 0;
  private errors = 0;
  /** Until when (ms) this replica may write; see guard(). */
  private validUntil: () => number = () => Infinity;

  constructor(private readonly d: ReconcileDeps) {}

  /**
   * One pass. signal aborts when leadership is lost; validUntil is the end of the leadership
   * on this replica's own clock (the Lease's renew deadline), checked before every write, so
   * a replica resumed after a freeze or a partition writes nothing before it has renewed.
   */
  async pass(signal: AbortSignal, validUntil: () => number = () => Infinity): Promise<PassResult> {
    this.writes = 0;
    this.errors = 0;
    this.validUntil = validUntil;
    const { caches, cfg } = this.d;
    const services = caches.services.values();
    const existing = caches.claims.values();
    const pools = this.poolSet(existing);
    const desired = computeDesired(services, pools, existing, cfg);
    const existingByName = new Map(existing.map((c) => [c.metadata.name ?? '', c]));
    const svcByKey = new Map(services.map((s) => [s.key, s]));
    const decisions = this.placeAll([...desired.claims.values()], existingByName, svcByKey);

    await this.writeClaims(desired.claims, decisions, existingByName, svcByKey, signal);
    await this.finishPools(pools, desired.poolAllocations, desired.claims, svcByKey, signal);
    await this.writeServices(desired.services, svcByKey, signal);
    await this.writeServiceConditions(desired.claims, desired.services, decisions, svcByKey, signal);
    this.tellMoves(svcByKey);
    this.report(desired.services, existing, svcByKey);
    this.reportConflicts(existing, svcByKey);
    return { writes: this.writes, errors: this.errors };
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
      conflictExclusions(claims, stored, this.d.clock.now(), retry, this.ourMacs()),
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
        this.eventAll(claim.spec.services ?? [], svcByKey, 'Warning', ADDRESS_CONFLICT, `${addressOf(claim.spec.cidr)}: ${c.message}`);
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

  private guard(signal: AbortSignal): void {
    if (signal.aborted || this.d.clock.now() >= this.validUntil()) throw new NotLeader();
  }

  private failed(stage: string, err: unknown, fields: Record<string, unknown>): void {
    if (err instanceof NotLeader) throw err;
    this.errors++;
    this.d.metrics.reconcileError(stage);
    this.d.log.warn({ ...fields, err: String(err) }, `${stage} failed; will retry`);
  }

  /** Read-modify-write of a pool's status with the resourceVersion; 409 re-reads and retries. */
  private async writePoolStatus(name: string, change: (pool: IpClaimPool) => IpClaimPoolStatus | null, signal: AbortSignal): Promise<void> {
    const cached = this.d.caches.pools.get(name);
    let pool: IpClaimPool | null = cached?.ok ? cached.pool : null;
    for (let attempt = 0; attempt < 8; attempt++) {
      if (!pool) pool = await this.d.writes.getPool(name);
      if (!pool) return;
      const status = change(pool);
      if (!status) return;
      this.guard(signal);
      try {
        const written = await this.d.writes.replacePoolStatus({ ...pool, status });
        this.writes++;
        this.d.caches.pools.upsert(name, { ok: true, pool: written }, written.metadata.resourceVersion ?? '');
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
        pool = null; // someone else wrote it: read again and re-apply the change
      }
    }
    throw new Error(`IpClaimPool ${name}: status kept conflicting`);
  }

  private async finishPools(
    pools: PoolSet,
    allocations: Map<string, Map<string, string>>,
    desiredClaims: Map<string, DesiredClaim>,
    svcByKey: Map<string, ServiceView>,
    signal: AbortSignal,
  ): Promise<void> {
    const now = this.d.clock.now();
    // Who uses each pool: the claims wanted now, and those that still exist (a failed delete).
    const cached = this.d.caches.claims
      .values()
      .map((c) => ({
        name: c.metadata.name ?? '',
        address: addressOf(c.spec.cidr),
        services: c.spec.services ?? [],
        ...(c.spec.pool ? { pool: c.spec.pool } : {}),
      }));
    const users = poolUsers([...desiredClaims.values(), ...cached]);
    // Finalizers first: the status writes below then start from the pool as it is now.
    const gone = await this.poolFinalizers(users, svcByKey, signal);
    const overlapping = overlaps(pools.valid);
    for (const pool of pools.valid) {
      if (gone.has(pool.name)) continue;
      const want = Object.fromEntries(allocations.get(pool.name) ?? new Map<string, string>());
      this.d.metrics.pool(pool.name, capped(pool.size), Object.keys(want).length);
      const conditions = poolConditions(pool, overlapping.get(pool.name) ?? [], users.get(pool.name) ?? []);
      try {
        await this.writePoolStatus(
          pool.name,
          (current) => {
            let list = current.status?.conditions;
            for (const c of conditions) list = withCondition(list, condition(c.type, c.status, c.reason, c.message, now));
            const out = exclusionsIn(pool, pools.excluded ?? new Map());
            list = withCondition(
              list,
              condition(
                'AddressesExcluded',
                out.length ? 'True' : 'False',
                out.length ? 'Excluded' : 'NoneExcluded',
                exclusionSummary(out),
                now,
              ),
            );
            if (!pool.terminating) list = list?.filter((c) => c.type !== 'Deleting');
            const { excluded: _old, excludedCount: _count, ...rest } = current.status ?? {};
            const free = capped(pool.size - BigInt(Object.keys(want).length) - BigInt(out.filter((e) => !(e.address in want)).length));
            const status: IpClaimPoolStatus = {
              ...rest,
              allocations: want,
              ...usage(pool, want),
              free,
              conditions: list ?? [],
              excludedCount: out.length,
              ...(out.length ? { excluded: out } : {}),
            };
            return sameJson(status, current.status) ? null : status;
          },
          signal,
        );
      } catch (err) {
        this.failed('pool-status', err, { pool: pool.name });
      }
    }
    for (const [name, reason] of pools.invalid) {
      const entry = this.d.caches.pools.get(name);
      const status = entry ? (entry.ok ? entry.pool.status : entry.status) : undefined;
      // An invalid pool keeps what it gave out (desired.ts keptIn); its status says so and counts them.
      const kept = [...desiredClaims.values()].filter((c) => c.pool === name);
      const message = kept.length
        ? `${reason}; it keeps the ${kept.length} address(es) it gave out and gives out no new one until it is fixed`
        : reason;
      const existing = status?.conditions?.find((c) => c.type === 'Valid');
      if (existing?.status === 'False' && existing.message === message && (status?.used ?? 0) === kept.length) continue;
      this.d.log.warn({ pool: name, reason, kept: kept.length }, 'IpClaimPool is invalid; no address is allocated from it');
      // A merge patch: null removes an allocation that is no longer kept.
      const allocations: Record<string, string | null> = Object.fromEntries(Object.keys(status?.allocations ?? {}).map((a) => [a, null]));
      for (const c of kept) allocations[c.address] = c.name;
      try {
        this.guard(signal);
        await this.d.writes.patchPoolStatusRaw(name, {
          conditions: withCondition(status?.conditions, condition('Valid', 'False', 'InvalidSpec', message, now)),
          allocations: allocations as Record<string, string>,
          used: kept.length,
          free: 0,
        });
        this.writes++;
      } catch (err) {
        this.failed('pool-status', err, { pool: name });
      }
    }
    for (const name of this.knownPools) if (!pools.valid.some((p) => p.name === name)) this.d.metrics.forgetPool(name);
    this.knownPools = new Set(pools.valid.map((p) => p.name));
  }

  /** Protects every pool with the finalizer; lets a deleted one go once nothing uses it, and says who holds it meanwhile. */
  private async poolFinalizers(
    users: Map<string, PoolUser[]>,
    svcByKey: Map<string, ServiceView>,
    signal: AbortSignal,
  ): Promise<Set<string>> {
    const released = new Set<string>();
    for (const entry of this.d.caches.pools.values()) {
      const meta = poolMeta(entry);
      const action = finalizerAction(meta, users.get(meta.name) ?? []);
      if (action.kind === 'none') continue;
      if (action.kind === 'wait') {
        const message = deletingMessage(action.users);
        this.d.events.emit({
          namespace: 'default',
          serviceName: meta.name,
          serviceUid: meta.uid,
          object: { apiVersion: API_VERSION, kind: 'IpClaimPool', name: meta.name, uid: meta.uid },
          type: 'Warning',
          reason: 'PoolInUse',
          message,
        });
        for (const u of action.users) {
          this.eventAll(
            u.services,
            svcByKey,
            'Warning',
            'PoolDeleting',
            `IpClaimPool ${meta.name} is being deleted; this Service keeps ${u.address} until it lets go (or the pool is annotated ipcontroller.ext/release-on-delete=true)`,
          );
        }
        continue;
      }
      const finalizers = action.kind === 'add' ? [...meta.finalizers, POOL_FINALIZER] : meta.finalizers.filter((f) => f !== POOL_FINALIZER);
      try {
        this.guard(signal);
        const written = await this.d.writes.setPoolFinalizers(meta.name, meta.resourceVersion, finalizers);
        this.writes++;
        if (action.kind === 'remove') {
          released.add(meta.name);
          this.d.log.info({ pool: meta.name }, 'IpClaimPool no longer in use; finalizer removed so its deletion completes');
        } else {
          const parsed = parsePoolEntry(written);
          if (parsed) this.d.caches.pools.upsert(parsed.key, parsed.value, parsed.rv);
        }
      } catch (err) {
        // A 409 means the pool changed: the watch brings the new version and the next pass retries.
        this.failed('pool-finalizer', err, { pool: meta.name });
      }
    }
    return released;
  }

  private async writeClaims(
    desired: Map<string, DesiredClaim>,
    decisions: Map<string, Decision>,
    existing: Map<string, IpClaim>,
    svcByKey: Map<string, ServiceView>,
    signal: AbortSignal,
  ): Promise<void> {
    const work: Array<() => Promise<void>> = [];
    for (const claim of desired.values()) {
      const decision = decisions.get(claim.name);
      if (decision) work.push(() => this.writeClaim(claim, decision, existing.get(claim.name), svcByKey, signal));
    }
    for (const [name, old] of existing) {
      if (!desired.has(name)) work.push(() => this.deleteClaim(old, svcByKey, signal));
    }
    await forEachLimit(work, this.d.cfg.concurrency, (fn) => fn());
  }

  private async writeClaim(
    claim: DesiredClaim,
    decision: Decision,
    old: IpClaim | undefined,
    svcByKey: Map<string, ServiceView>,
    signal: AbortSignal,
  ): Promise<void> {
    const node = decision.kind === 'move' ? decision.to : decision.node;
    const spec: IpClaimSpec = { cidr: claim.cidr, services: claim.services };
    if (node) spec.nodeName = node;
    if (old?.spec.link) spec.link = old.spec.link;
    if (claim.pool) spec.pool = claim.pool;
    const log = this.d.log.child({ claim: claim.name, ip: claim.address });
    try {
      if (!old) {
        this.guard(signal);
        const created = await this.d.writes.createClaim({ apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name: claim.name }, spec });
        this.writes++;
        this.d.caches.claims.upsert(claim.name, created, created.metadata.resourceVersion ?? '');
        log.info({ node, services: claim.services }, 'claim created');
      } else if (!sameSpec(old.spec, spec)) {
        this.guard(signal);
        const written = await this.d.writes.replaceClaim({ ...old, metadata: this.withMove(old, decision), spec });
        this.writes++;
        this.d.caches.claims.upsert(claim.name, written, written.metadata.resourceVersion ?? '');
        log.info({ node, services: claim.services }, 'claim updated');
        this.releasedFrom(old, claim.services, svcByKey);
      }
    } catch (err) {
      if (isConflict(err)) await this.refreshClaim(claim.name);
      this.failed('claim-write', err, { claim: claim.name });
      return;
    }
    this.afterPlacement(claim, decision, old, svcByKey);
    await this.writePending(claim, decision, signal);
  }

  private async refreshClaim(name: string): Promise<void> {
    try {
      // A GET is a quorum read: it wins over anything cached that is not newer, tombstones
      // included, so a 409 on create always teaches the cache that the name is taken.
      const fresh = await this.d.writes.getClaim(name);
      if (fresh) this.d.caches.claims.take(name, fresh, fresh.metadata.resourceVersion ?? '');
      else this.d.caches.claims.remove(name);
    } catch {
      /* the watch will catch up */
    }
  }

  private afterPlacement(claim: DesiredClaim, decision: Decision, old: IpClaim | undefined, svcByKey: Map<string, ServiceView>): void {
    const now = this.d.clock.now();
    if (decision.kind === 'assign' || (decision.kind === 'keep' && !old?.spec.nodeName)) {
      this.eventAll(claim.services, svcByKey, 'Normal', 'IPAssigned', `${claim.address} assigned to node ${decision.node}`);
    } else if (decision.kind === 'move') {
      const failedAt = this.d.health().failedAt.get(decision.from);
      const seconds = failedAt !== undefined ? Math.max(0, now - failedAt) / 1000 : undefined;
      this.d.metrics.failover(decision.reason, seconds);
      // The IPMoved Event waits for the new node's agent to report the address up (tellMoves).
      this.d.log.info({ claim: claim.name, from: decision.from, to: decision.to, reason: decision.reason, seconds }, 'claim moved');
    } else if (decision.kind === 'pending') {
      this.eventAll(claim.services, svcByKey, 'Warning', decision.reason, `${claim.address}: ${decision.message}`);
    }
  }

  /** The scheduler writes claim status only to say why it cannot place a claim (or that it now can). */
  private async writePending(claim: DesiredClaim, decision: Decision, signal: AbortSignal): Promise<void> {
    const current = this.d.caches.claims.get(claim.name);
    if (!current) return;
    const now = this.d.clock.now();
    const old = current.status?.conditions?.find((c) => c.type === 'Scheduled');
    let status: IpClaim['status'] | null = null;
    if (decision.kind === 'pending') {
      if (old?.status === 'False' && old.reason === decision.reason && old.message === decision.message) return;
      status = {
        ...current.status,
        serviceList: claim.services.join(', '),
        phase: current.status?.phase === 'Assigned' && decision.node ? 'Assigned' : 'Pending',
        conditions: withCondition(current.status?.conditions, condition('Scheduled', 'False', decision.reason, decision.message, now)),
      };
    } else if (old?.status === 'False') {
      status = {
        ...current.status,
        conditions: withCondition(
          current.status?.conditions,
          condition('Scheduled', 'True', 'Scheduled', `placed on ${current.spec.nodeName ?? ''}`, now),
        ),
      };
    }
    if (!status) return;
    try {
      this.guard(signal);
      const written = await this.d.writes.patchClaimStatus(claim.name, status, current.metadata.resourceVersion ?? '');
      this.writes++;
      this.d.caches.claims.upsert(claim.name, written, written.metadata.resourceVersion ?? '');
    } catch (err) {
      if (isConflict(err)) await this.refreshClaim(claim.name);
      this.failed('claim-status', err, { claim: claim.name });
    }
  }

  /**
   * Deletes a claim no Service asks for any more, with the uid and resourceVersion it was
   * decided on as preconditions: if the claim changed since (another replica re-created or
   * moved it), the delete fails instead of removing a live claim.
   */
  private async deleteClaim(old: IpClaim, svcByKey: Map<string, ServiceView>, signal: AbortSignal): Promise<void> {
    const name = old.metadata.name ?? '';
    const rv = old.metadata.resourceVersion ?? '';
    try {
      if (await this.servicesStillExist(old, svcByKey)) return;
      this.guard(signal);
      await this.d.writes.deleteClaim(name, { uid: old.metadata.uid ?? '', resourceVersion: rv });
      this.writes++;
      // Versioned: a newer claim of that name, already delivered by the watch, stays.
      this.d.caches.claims.remove(name, rv);
      this.d.log.info({ claim: name, ip: old.spec.cidr }, 'claim deleted');
      this.releasedFrom(old, [], svcByKey);
    } catch (err) {
      if (isConflict(err)) await this.refreshClaim(name);
      this.failed('claim-delete', err, { claim: name });
    }
  }

  /**
   * A claim whose Services are all missing from the cache may name Services this replica has
   * not seen yet (created while it was frozen, or by another replica just before it took
   * over: the Services and claims watches are separate streams). Ask the apiserver before
   * deleting; a Service found is put in the cache and the next pass decides with it.
   */
  private async servicesStillExist(old: IpClaim, svcByKey: Map<string, ServiceView>): Promise<boolean> {
    const keys = old.spec.services ?? [];
    if (keys.length === 0 || keys.some((k) => svcByKey.has(k))) return false;
    let found = false;
    for (const key of keys) {
      const [namespace = '', name = ''] = key.split('/');
      const view = parseService(await this.d.writes.getService(namespace, name));
      if (!view) continue;
      found = true;
      this.d.caches.services.upsert(view.key, view, view.resourceVersion);
      this.d.log.info({ claim: old.metadata.name, service: key }, 'claim kept: its Service exists but was not in the cache yet');
    }
    return found;
  }

  /** Metadata for a claim write: a move carries its record (api/moves.ts) in the same write. */
  private withMove(old: IpClaim, decision: Decision): IpClaim['metadata'] {
    if (decision.kind !== 'move') return old.metadata;
    const now = this.d.clock.now();
    const detected = this.d.health().failedAt.get(decision.from) ?? now;
    const record = moveAnnotation({
      from: decision.from,
      to: decision.to,
      reason: decision.reason,
      detectedAt: new Date(Math.min(detected, now)).toISOString(),
      claimedAt: new Date(now).toISOString(),
    });
    return { ...old.metadata, annotations: { ...old.metadata.annotations, [MOVE_ANNOTATION]: record } };
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
      const age = now - Date.parse(move.claimedAt);
      if (this.toldMoves.has(id) || age > 120_000) continue;
      const last = claim.status?.lastMove;
      const up = last && last.claimedAt === move.claimedAt && last.to === move.to && last.upAt ? last : null;
      if (!up && age < 60_000) continue;
      this.toldMoves.add(id);
      this.eventAll(claim.spec.services ?? [], svcByKey, 'Normal', 'IPMoved', movedMessage(addressOf(claim.spec.cidr), up ?? move));
    }
    for (const id of this.toldMoves) if (!live.has(id)) this.toldMoves.delete(id);
  }

  /** Our condition on each Service that asks for addresses, written when it changes (a first passing state is not written). */
  private async writeServiceConditions(
    claims: Map<string, DesiredClaim>,
    outcomes: Map<string, { problems: Array<{ reason: string; message: string }> }>,
    decisions: Map<string, Decision>,
    svcByKey: Map<string, ServiceView>,
    signal: AbortSignal,
  ): Promise<void> {
    const byService = new Map<string, ServiceClaim[]>();
    for (const c of claims.values()) {
      const decision = decisions.get(c.name);
      const existing = this.d.caches.claims.get(c.name);
      for (const key of c.services)
        byService.set(key, [
          ...(byService.get(key) ?? []),
          { name: c.name, address: c.address, ...(decision ? { decision } : {}), ...(existing ? { existing } : {}) },
        ]);
    }
    const now = this.d.clock.now();
    const work: Array<{ svc: ServiceView; cond: Condition }> = [];
    for (const svc of svcByKey.values()) {
      const outcome = outcomes.get(svc.key);
      const asks = outcome !== undefined && (wantsLoadBalancer(svc) || svc.externalIPs.length > 0);
      if (!asks && !svc.addressCondition) continue;
      // A Service that stopped asking (or moved to another class) keeps no stale Ready.
      const want = outcome && asks ? addressCondition(outcome.problems, byService.get(svc.key) ?? []) : NOT_REQUESTED;
      const old = svc.addressCondition;
      if (old ? old.status === want.status && old.reason === want.reason && old.message === want.message : transient(want)) continue;
      const at = old && old.status === want.status ? old.lastTransitionTime : new Date(now).toISOString();
      work.push({ svc, cond: { type: SERVICE_CONDITION, ...want, lastTransitionTime: at } });
    }
    await forEachLimit(work, this.d.cfg.concurrency, async ({ svc, cond }) => {
      try {
        this.guard(signal);
        const view = parseService(await this.d.writes.patchServiceCondition(svc.namespace, svc.name, cond));
        this.writes++;
        if (view) this.d.caches.services.upsert(view.key, view, view.resourceVersion);
      } catch (err) {
        this.failed('service-condition', err, { service: svc.key });
      }
    });
  }

  private releasedFrom(old: IpClaim, now: string[], svcByKey: Map<string, ServiceView>): void {
    const gone = (old.spec.services ?? []).filter((k) => !now.includes(k));
    for (const _ of gone) this.d.metrics.released();
    this.eventAll(gone, svcByKey, 'Normal', 'IPReleased', `${addressOf(old.spec.cidr)} released`);
  }

  private async writeServices(
    outcomes: Map<string, { ingress: string[] | null; externalIPs: string[] | null }>,
    svcByKey: Map<string, ServiceView>,
    signal: AbortSignal,
  ): Promise<void> {
    const work: Array<{ svc: ServiceView; ingress: string[] | null; externalIPs: string[] | null }> = [];
    // Publish an address only once its claim exists.
    const claimed = (ips: string[]): boolean => ips.every((ip) => this.d.caches.claims.get(claimName(ip)) !== undefined);
    for (const [key, outcome] of outcomes) {
      const svc = svcByKey.get(key);
      if (!svc) continue;
      const ingress =
        outcome.ingress !== null && !sameList(svc.ingress, outcome.ingress) && claimed(outcome.ingress) ? outcome.ingress : null;
      const externalIPs =
        outcome.externalIPs !== null && claimed(outcome.externalIPs.filter((ip) => !svc.externalIPs.includes(ip)))
          ? outcome.externalIPs
          : null;
      if (ingress || externalIPs) work.push({ svc, ingress, externalIPs });
    }
    await forEachLimit(work, this.d.cfg.concurrency, async ({ svc, ingress, externalIPs }) => {
      try {
        this.guard(signal);
        let written: unknown;
        if (ingress) {
          const mode = svc.type === 'LoadBalancer' ? { ipMode: 'VIP' } : {};
          written = await this.d.writes.patchServiceIngress(
            svc.namespace,
            svc.name,
            svc.resourceVersion,
            ingress.map((ip) => ({ ip, ...mode })),
          );
        } else if (externalIPs) {
          written = await this.d.writes.patchServiceExternalIPs(svc.namespace, svc.name, svc.resourceVersion, externalIPs);
        }
        this.writes++;
        const view = parseService(written);
        if (view) this.d.caches.services.upsert(view.key, view, view.resourceVersion);
      } catch (err) {
        this.failed('service-status', err, { service: svc.key });
      }
    });
  }

  private report(
    outcomes: Map<
      string,
      {
        held: Array<{ address: string; pool: string }>;
        problems: Array<{ reason: string; message: string }>;
        dropped?: Array<{ reason: string; message: string }>;
      }
    >,
    existing: IpClaim[],
    svcByKey: Map<string, ServiceView>,
  ): void {
    const before = new Map<string, Set<string>>();
    for (const c of existing) {
      if (!c.spec.pool) continue;
      for (const k of c.spec.services ?? []) before.set(k, (before.get(k) ?? new Set<string>()).add(addressOf(c.spec.cidr)));
    }
    const problemsNow = new Map<string, Set<string>>();
    for (const [key, outcome] of outcomes) {
      const svc = svcByKey.get(key);
      if (!svc) continue;
      for (const h of outcome.held) {
        if (before.get(key)?.has(h.address) || svc.ingress.includes(h.address)) continue;
        this.d.metrics.allocated(h.pool);
        this.event(svc, 'Normal', 'IPAllocated', `allocated ${h.address} from IpClaimPool ${h.pool}`);
      }
      const seen = new Set<string>();
      for (const p of outcome.dropped ?? []) this.event(svc, 'Warning', p.reason, `${p.message}; allocating another address`);
      for (const p of outcome.problems) {
        const id = `${p.reason}|${p.message}`;
        seen.add(id);
        this.event(svc, 'Warning', 'AllocationFailed', `${p.reason}: ${p.message}`);
        if (!this.lastProblems.get(key)?.has(id)) {
          this.d.metrics.allocationFailed(p.reason);
          this.d.log.warn({ service: key, reason: p.reason }, p.message);
        }
      }
      if (seen.size) problemsNow.set(key, seen);
    }
    this.lastProblems = problemsNow;
    const phases: Record<string, number> = { Pending: 0, Assigned: 0, Failed: 0, None: 0 };
    for (const c of this.d.caches.claims.values()) {
      const phase = c.status?.phase ?? 'None';
      phases[phase] = (phases[phase] ?? 0) + 1;
    }
    this.d.metrics.claimPhases(phases);
  }

  private eventAll(keys: string[], svcByKey: Map<string, ServiceView>, type: 'Normal' | 'Warning', reason: string, message: string): void {
    for (const key of keys) {
      const svc = svcByKey.get(key);
      if (svc) this.event(svc, type, reason, message);
    }
  }

  private event(svc: ServiceView, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.d.events.emit({ namespace: svc.namespace, serviceName: svc.name, serviceUid: svc.uid, type, reason, message });
  }
}

const NOT_REQUESTED = { status: 'False', reason: 'NotRequested', message: 'the Service asks ipcontroller for no address' } as const;

function sameSpec(a: IpClaimSpec, b: IpClaimSpec): boolean {
  return (
    a.cidr === b.cidr &&
    (a.nodeName ?? '') === (b.nodeName ?? '') &&
    (a.pool ?? '') === (b.pool ?? '') &&
    (a.link ?? '') === (b.link ?? '') &&
    sameList(a.services, b.services)
  );
}

/** Deep equality of JSON values, ignoring key order (the apiserver may reorder keys). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function usage(pool: Pool, allocations: Record<string, string>): { used: number; free: number } {
  const used = Object.keys(allocations).length;
  return { used, free: capped(pool.size - BigInt(used)) };
}
