// Pure decisions about IpClaimPool objects beyond their address math (allocator.ts): the
// deletion protection finalizer, who still uses a pool, which pools overlap, and the
// conditions the pool's status carries. The reconciler acts on what these return.
//
// Deleting a pool follows the Kubernetes convention for objects in use (PVC protection,
// kubernetes.io/pvc-protection): every pool carries POOL_FINALIZER, so `kubectl delete`
// leaves it Terminating while any claim records it as its pool. Meanwhile the pool keeps the
// addresses it gave out and gives out no new one; its status (condition Deleting) and an
// Event name the Services holding it. The finalizer comes off when the last of them lets go,
// or at once when the user says so with the annotation RELEASE_ON_DELETE: "true" (their
// addresses are then released as if the pool had gone), or by removing the finalizer by hand.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { PoolCondition, type ConditionInput } from '../api/conditions.js';
import type { PoolConditionReason } from '../api/reasons.js';
import type { Pool } from './allocator.js';
import type { PoolEntry } from './kube.js';

export const POOL_FINALIZER = 'ipcontroller.ext/pool-protection';
export const RELEASE_ON_DELETE = 'ipcontroller.ext/release-on-delete';

export interface PoolMeta {
  name: string;
  uid: string;
  resourceVersion: string;
  deleting: boolean;
  finalizers: string[];
  /** The user asked for the pool's addresses to be released when it is deleted. */
  releaseOnDelete: boolean;
}

export function poolMeta(entry: PoolEntry): PoolMeta {
  const metadata: V1ObjectMeta = entry.ok ? entry.pool.metadata : entry.metadata;
  return {
    name: metadata.name ?? (entry.ok ? '' : entry.name),
    uid: metadata.uid ?? '',
    resourceVersion: metadata.resourceVersion ?? '',
    deleting: metadata.deletionTimestamp !== undefined && metadata.deletionTimestamp !== null,
    finalizers: metadata.finalizers ?? [],
    releaseOnDelete: (metadata.annotations?.[RELEASE_ON_DELETE] ?? '').trim().toLowerCase() === 'true',
  };
}

/** A claim that records the pool as the one its address came from. */
export interface PoolUser {
  claim: string;
  address: string;
  services: string[];
}

/** Pool name -> its users, from the claims wanted now and the claims that still exist. */
export function poolUsers(claims: Iterable<{ name: string; address: string; pool?: string; services: string[] }>): Map<string, PoolUser[]> {
  const out = new Map<string, Map<string, PoolUser>>();
  for (const c of claims) {
    if (!c.pool) continue;
    const byClaim = out.get(c.pool) ?? new Map<string, PoolUser>();
    const user = byClaim.get(c.name) ?? { claim: c.name, address: c.address, services: [] };
    user.services = [...new Set([...user.services, ...c.services])].sort();
    byClaim.set(c.name, user);
    out.set(c.pool, byClaim);
  }
  return new Map([...out].map(([pool, m]) => [pool, [...m.values()].sort((a, b) => (a.claim < b.claim ? -1 : 1))]));
}

export type FinalizerAction = { kind: 'none' } | { kind: 'add' } | { kind: 'remove' } | { kind: 'wait'; users: PoolUser[] };

/** What to do with the pool's finalizer: protect a live pool, hold a deleted one while it is in use. */
export function finalizerAction(meta: PoolMeta, users: PoolUser[]): FinalizerAction {
  const has = meta.finalizers.includes(POOL_FINALIZER);
  if (!meta.deleting) return has ? { kind: 'none' } : { kind: 'add' };
  if (!has) return { kind: 'none' };
  return users.length === 0 ? { kind: 'remove' } : { kind: 'wait', users };
}

/** Words naming a pool's users: "default/a (192.0.2.1), default/b (192.0.2.2)", shortened past ten. */
export function describeUsers(users: PoolUser[]): string {
  const parts = users.map((u) => `${u.services.length ? u.services.join(' + ') : `claim ${u.claim}`} (${u.address})`);
  return parts.length > 10 ? `${parts.slice(0, 10).join(', ')} and ${parts.length - 10} more` : parts.join(', ');
}

/** What a user reads on a pool being deleted while in use. */
export function deletingMessage(users: PoolUser[]): string {
  return (
    `IpClaimPool is being deleted but ${users.length} address(es) from it are in use: ${describeUsers(users)}. ` +
    `It gives out no new address and is removed once they let go; annotate it ${RELEASE_ON_DELETE}=true to release them now`
  );
}

function overlapping(a: Pool, b: Pool): boolean {
  if (a.family !== b.family) return false;
  return a.intervals.some(([x, y]) => b.intervals.some(([u, v]) => x <= v && u <= y));
}

/** Pool name -> the other pools sharing allocatable addresses with it, by name. */
export function overlaps(pools: Pool[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const a of pools) {
    const others = pools
      .filter((b) => b !== a && overlapping(a, b))
      .map((b) => b.name)
      .sort();
    if (others.length) out.set(a.name, others);
  }
  return out;
}

/** A pool condition as this module decides it (ConditionInput with the pool's own types and reasons). */
type PoolConditionInput = Omit<ConditionInput, 'type' | 'reason'> & {
  type: (typeof PoolCondition)[keyof typeof PoolCondition];
  reason: PoolConditionReason;
};

/** The conditions a valid pool's status carries (Valid, Overlapping, and Deleting while terminating). */
export function poolConditions(pool: Pool, overlapsWith: string[], users: PoolUser[]): PoolConditionInput[] {
  const withheld = pool.withheld.length ? `; never handed out: ${pool.withheld.join(', ')}` : '';
  const out: PoolConditionInput[] = [
    {
      type: PoolCondition.Valid,
      status: 'True',
      reason: 'Valid',
      message: `${pool.size} allocatable addresses in ${pool.cidr}${withheld}`,
    },
    overlapsWith.length
      ? {
          type: PoolCondition.Overlapping,
          status: 'True',
          reason: 'SharesAddresses',
          message: `shares addresses with IpClaimPool ${overlapsWith.join(', ')}; an address in use counts as used in every pool that contains it`,
        }
      : { type: PoolCondition.Overlapping, status: 'False', reason: 'Disjoint', message: 'no other IpClaimPool contains these addresses' },
  ];
  if (pool.terminating)
    out.push({
      type: PoolCondition.Deleting,
      status: 'True',
      reason: users.length ? 'InUse' : 'Releasing',
      message: users.length ? deletingMessage(users) : 'no address from it is in use; removing it',
    });
  return out;
}
