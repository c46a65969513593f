// What the agent writes back, decided from what is already there: IpNode conditions that keep
// their lastTransitionTime while unchanged, and the IpClaim status for a claim that is up or
// failed on this node (null when the claim already says so, so nothing is written).
import type { ClaimMove, IpClaim, IpClaimStatus } from '../api/types.js';
import { completedMove } from '../api/moves.js';
import { CLAIM_CONDITION, setCondition, type ConditionInput } from '../api/conditions.js';
import { CLAIM_UP } from '../api/reasons.js';

// Re-exported while agent/agent.ts imports setCondition from here (its home is api/conditions.ts).
export { CLAIM_CONDITION, setCondition };

export type ClaimOutcome = { kind: 'up'; ip: string; iface: string } | { kind: 'failed'; reason: string; message: string };

/** The status to write for a claim on this node, or null when the claim already reports it. */
export function claimStatusUpdate(
  current: IpClaimStatus | undefined,
  outcome: ClaimOutcome,
  node: string,
  nowIso: string,
  claim?: Pick<IpClaim, 'metadata' | 'spec' | 'status'>,
): IpClaimStatus | null {
  // Carried with the status the agent writes anyway, so neither costs a write of its own:
  // the Service list as text for `kubectl get ipclaims`, and the move that brought the claim here.
  const serviceList = claim ? (claim.spec.services ?? []).join(', ') : undefined;
  const lastMove: ClaimMove | null = claim && outcome.kind === 'up' ? completedMove(claim, node, nowIso) : null;
  const phase = outcome.kind === 'up' ? 'Assigned' : 'Failed';
  const condition: ConditionInput =
    outcome.kind === 'up'
      ? {
          type: CLAIM_CONDITION,
          status: 'True',
          reason: CLAIM_UP,
          message: `${outcome.ip} is up on ${outcome.iface} of node ${node} and announced`,
        }
      : { type: CLAIM_CONDITION, status: 'False', reason: outcome.reason, message: `node ${node}: ${outcome.message}` };
  const existing = current?.conditions?.find((c) => c.type === CLAIM_CONDITION);
  const same =
    current?.phase === phase &&
    current.node === node &&
    existing?.status === condition.status &&
    existing.reason === condition.reason &&
    existing.message === condition.message &&
    (serviceList === undefined || current.serviceList === serviceList) &&
    (lastMove === null ||
      (current.lastMove?.claimedAt === lastMove.claimedAt &&
        current.lastMove.to === lastMove.to &&
        current.lastMove.upAt === lastMove.upAt));
  if (same) return null;
  return {
    phase,
    node,
    lastTransitionTime: current?.phase === phase && current.lastTransitionTime ? current.lastTransitionTime : nowIso,
    conditions: setCondition(current?.conditions ?? [], condition, nowIso),
    ...(serviceList !== undefined ? { serviceList } : {}),
    ...(lastMove ? { lastMove } : {}),
  };
}
