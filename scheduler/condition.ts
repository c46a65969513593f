// The Service condition (type SERVICE_CONDITION) that says whether the Service's address request
// is satisfied, as Cilium's LB-IPAM does with io.cilium/lb-ipam-request-satisfied, so generic
// tools (kubectl wait, Argo CD health checks) can read it. Pure: decided from the per-Service
// outcome of desired.ts, the placement decisions and the claims as the API shows them.
import type { IpClaim } from '../api/types.js';
import { CLAIM_CONDITION } from '../api/conditions.js';
import type { AddressReadyReason } from '../api/reasons.js';
import type { Decision } from './placement.js';
import type { Problem } from './service.js';

/** @deprecated AddressReadyReason (api/reasons.ts); kept while scheduler/reconciler.ts may import it. */
export type AddressReason = AddressReadyReason;

/** R widens only for callers whose problems still carry `reason: string` (scheduler/reconciler.ts today). */
export interface AddressCondition<R extends string = AddressReadyReason> {
  status: 'True' | 'False';
  reason: R;
  message: string;
}

export interface ServiceClaim {
  name: string;
  address: string;
  /** This pass's placement decision. */
  decision?: Decision;
  /** The claim as the API shows it (absent until created). */
  existing?: IpClaim;
}

/** Whether the condition is a passing state that is not worth a write of its own on a Service that has none yet. */
export function transient(c: AddressCondition<string>): boolean {
  return c.reason === 'Announcing';
}

/** The condition for one Service that asks for addresses. */
export function addressCondition<P extends Pick<Problem, 'message'> & { reason: string }>(
  problems: readonly P[],
  claims: ServiceClaim[],
): AddressCondition<AddressReadyReason | P['reason']> {
  if (problems.length > 0) return problemCondition(problems);
  if (claims.length === 0) return { status: 'False', reason: 'Announcing', message: 'no address allocated yet' };
  const sorted = [...claims].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  // The first of: an address that cannot be placed, one its agent failed, one not up yet.
  const failed = pendingCondition(sorted) ?? failedCondition(sorted) ?? announcingCondition(sorted);
  if (failed) return failed;
  return { status: 'True', reason: 'Ready', message: `${sorted.map((c) => c.address).join(', ')} allocated and announced` };
}

function problemCondition<P extends { reason: string; message: string }>(
  problems: readonly P[],
): AddressCondition<P['reason'] | 'AllocationFailed'> {
  const message = problems.length === 1 ? (problems[0]?.message ?? '') : problems.map((p) => `${p.reason}: ${p.message}`).join('; ');
  return { status: 'False', reason: problems[0]?.reason ?? 'AllocationFailed', message };
}

function pendingCondition(sorted: ServiceClaim[]): AddressCondition | null {
  for (const c of sorted) {
    if (c.decision?.kind === 'pending')
      return { status: 'False', reason: c.decision.reason, message: `${c.address}: ${c.decision.message}` };
  }
  return null;
}

function failedCondition(sorted: ServiceClaim[]): AddressCondition | null {
  for (const c of sorted) {
    if (c.existing?.status?.phase !== 'Failed') continue;
    const why = c.existing.status.conditions?.find((x) => x.type === CLAIM_CONDITION)?.message ?? 'the agent reported Failed';
    return { status: 'False', reason: 'AnnounceFailed', message: `${c.address}: ${why}` };
  }
  return null;
}

function announcingCondition(sorted: ServiceClaim[]): AddressCondition | null {
  for (const c of sorted) {
    const node = c.existing?.spec.nodeName;
    if (c.existing && node && c.existing.status?.phase === 'Assigned') continue;
    return {
      status: 'False',
      reason: 'Announcing',
      message: `${c.address} is placed${node ? ` on node ${node}` : ''}; waiting for the agent to report it up`,
    };
  }
  return null;
}
