// The pool part of a reconcile's write plan (plan.ts): the protection finalizer, the status of
// each valid pool (allocations, used, free, conditions, excluded addresses) and the status of
// each pool that cannot be used. Pure; the pool status is rebuilt from the claims each pass.
import { PoolCondition, setCondition } from '../api/conditions.js';
import type { IpClaimPool, IpClaimPoolStatus } from '../api/types.js';
import { capped, type Pool } from './allocator.js';
import type { DesiredClaim, PoolSet } from './desired.js';
import { exclusionsIn, exclusionSummary } from './exclusions.js';
import type { PoolEntry } from './kube.js';
import { type Notice, type Step } from './plan.js';
import { deletingMessage, finalizerAction, poolConditions, poolMeta, POOL_FINALIZER, type PoolUser } from './pools.js';

function waitNotices(name: string, uid: string, users: PoolUser[]): Notice[] {
  const notices: Notice[] = [
    { kind: 'pool-event', pool: name, uid, type: 'Warning', reason: 'PoolInUse', message: deletingMessage(users) },
  ];
  for (const u of users)
    notices.push({
      kind: 'event',
      services: u.services,
      type: 'Warning',
      reason: 'PoolDeleting',
      message: `IpClaimPool ${name} is being deleted; this Service keeps ${u.address} until it lets go (or the pool is annotated ipcontroller.ext/release-on-delete=true)`,
    });
  return notices;
}

/** Protects every pool with the finalizer; lets a deleted one go once nothing uses it, and says who holds it meanwhile. */
export function planFinalizers(entries: PoolEntry[], users: Map<string, PoolUser[]>): Step[] {
  const steps: Step[] = [];
  for (const entry of entries) {
    const meta = poolMeta(entry);
    const action = finalizerAction(meta, users.get(meta.name) ?? []);
    if (action.kind === 'none') continue;
    if (action.kind === 'wait') {
      steps.push({ key: meta.name, write: null, notices: waitNotices(meta.name, meta.uid, action.users) });
      continue;
    }
    const releases = action.kind === 'remove';
    const finalizers = releases ? meta.finalizers.filter((f) => f !== POOL_FINALIZER) : [...meta.finalizers, POOL_FINALIZER];
    const said = 'IpClaimPool no longer in use; finalizer removed so its deletion completes';
    steps.push({
      key: meta.name,
      write: { kind: 'pool-finalizers', name: meta.name, resourceVersion: meta.resourceVersion, finalizers, releases },
      notices: releases ? [{ kind: 'log', level: 'info', fields: { pool: meta.name }, message: said }] : [],
    });
  }
  return steps;
}

export interface PoolStatusInput {
  pools: PoolSet;
  /** Pool name -> address -> claim name. */
  allocations: Map<string, Map<string, string>>;
  users: Map<string, PoolUser[]>;
  overlapping: Map<string, string[]>;
  now: number;
}

/** The status of a valid pool, from the pool as read; null when it already says so. */
export function poolStatus(pool: Pool, input: PoolStatusInput, current: IpClaimPool): IpClaimPoolStatus | null {
  const nowIso = new Date(input.now).toISOString();
  const want = Object.fromEntries(input.allocations.get(pool.name) ?? new Map<string, string>());
  const inUse = Object.keys(want).length;
  let list = current.status?.conditions;
  for (const c of poolConditions(pool, input.overlapping.get(pool.name) ?? [], input.users.get(pool.name) ?? []))
    list = setCondition(list, c, nowIso);
  const out = exclusionsIn(pool, input.pools.excluded ?? new Map());
  const excluded = out.length
    ? { type: PoolCondition.AddressesExcluded, status: 'True' as const, reason: 'Excluded', message: exclusionSummary(out) }
    : { type: PoolCondition.AddressesExcluded, status: 'False' as const, reason: 'NoneExcluded', message: exclusionSummary(out) };
  list = setCondition(list, excluded, nowIso);
  if (!pool.terminating) list = list.filter((c) => c.type !== PoolCondition.Deleting);
  const { excluded: _old, excludedCount: _count, ...rest } = current.status ?? {};
  const free = capped(pool.size - BigInt(inUse) - BigInt(out.filter((e) => !(e.address in want)).length));
  const status: IpClaimPoolStatus = {
    ...rest,
    allocations: want,
    used: inUse,
    free,
    conditions: list,
    excludedCount: out.length,
    ...(out.length ? { excluded: out } : {}),
  };
  return sameJson(status, current.status) ? null : status;
}

/** A status write for each valid pool that is not going away this pass. */
export function planPoolStatuses(input: PoolStatusInput, gone: Set<string>): Step[] {
  return input.pools.valid
    .filter((pool) => !gone.has(pool.name))
    .map((pool) => ({
      key: pool.name,
      write: { kind: 'pool-status', name: pool.name, change: (cur) => poolStatus(pool, input, cur) },
      notices: [],
    }));
}

/** The status write of a pool that cannot be used, unless it already says why and counts what it keeps. */
function invalidPoolStep(
  pool: { name: string; reason: string; status: IpClaimPoolStatus | undefined; kept: DesiredClaim[] },
  now: number,
): Step | null {
  const { name, reason, status, kept } = pool;
  const message = kept.length
    ? `${reason}; it keeps the ${kept.length} address(es) it gave out and gives out no new one until it is fixed`
    : reason;
  const existing = status?.conditions?.find((c) => c.type === PoolCondition.Valid);
  if (existing?.status === 'False' && existing.message === message && (status?.used ?? 0) === kept.length) return null;
  // A merge patch: null removes an allocation that is no longer kept.
  const allocations: Record<string, string | null> = Object.fromEntries(Object.keys(status?.allocations ?? {}).map((a) => [a, null]));
  for (const c of kept) allocations[c.address] = c.name;
  const invalidCondition = { type: PoolCondition.Valid, status: 'False', reason: 'InvalidSpec', message } as const;
  const conditions = setCondition(status?.conditions, invalidCondition, new Date(now).toISOString());
  const patch = { conditions, allocations: allocations as Record<string, string>, used: kept.length, free: 0 };
  const after: IpClaimPoolStatus = { ...status, ...patch, allocations: Object.fromEntries(kept.map((c) => [c.address, c.name])) };
  const said = 'IpClaimPool is invalid; no address is allocated from it';
  return {
    key: name,
    write: { kind: 'pool-status-raw', name, patch, status: after },
    notices: [{ kind: 'log', level: 'warn', fields: { pool: name, reason, kept: kept.length }, message: said }],
  };
}

/** The status of each pool that cannot be used, when it does not say so yet: why, and what it keeps (desired.ts keptIn). */
export function planInvalidPools(
  invalid: Map<string, string>,
  entryOf: (name: string) => PoolEntry | undefined,
  desired: Iterable<DesiredClaim>,
  now: number,
): Step[] {
  const keptBy = new Map<string, DesiredClaim[]>();
  for (const c of desired) if (c.pool && invalid.has(c.pool)) keptBy.set(c.pool, [...(keptBy.get(c.pool) ?? []), c]);
  const steps: Step[] = [];
  for (const [name, reason] of invalid) {
    const entry = entryOf(name);
    const status = entry ? (entry.ok ? entry.pool.status : entry.status) : undefined;
    const step = invalidPoolStep({ name, reason, status, kept: keptBy.get(name) ?? [] }, now);
    if (step) steps.push(step);
  }
  return steps;
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
