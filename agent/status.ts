// What the agent writes back, decided from what is already there: IpNode conditions that keep
// their lastTransitionTime while unchanged, and the IpClaim status for a claim that is up or
// failed on this node (null when the claim already says so, so nothing is written).
import type { ClaimMove, IpClaim, IpClaimStatus } from '../api/types.js';
import { completedMove } from '../api/moves.js';
import { CLAIM_CONDITION, setCondition, type ConditionInput } from '../api/conditions.js';
import { CLAIM_UP, type ClaimFailureReason } from '../api/reasons.js';

// Re-exported while agent/agent.ts and agent/gate.ts import them from here (their home is api/conditions.ts).
export { CLAIM_CONDITION, setCondition, type ConditionInput };

export type ClaimOutcome = { kind: 'up'; ip: string; iface: string } | { kind: 'failed'; reason: ClaimFailureReason; message: string };

/** Where and when a claim status is decided, and what the claim says now. */
export interface ClaimStatusContext {
  /** This agent's node. */
  node: string;
  nowIso: string;
  /** The claim's status as the API shows it. */
  current?: IpClaimStatus | undefined;
  /** The claim itself: its Service list and pending move are carried into the status. */
  claim?: Pick<IpClaim, 'metadata' | 'spec' | 'status'> | undefined;
}

/** The status to write for a claim on this node, or null when the claim already reports it. */
export function nextClaimStatus(outcome: ClaimOutcome, ctx: ClaimStatusContext): IpClaimStatus | null {
  const { node, nowIso, current, claim } = ctx;
  // Carried with the status the agent writes anyway, so neither costs a write of its own:
  // the Service list as text for `kubectl get ipclaims`, and the move that brought the claim here.
  const serviceList = claim ? (claim.spec.services ?? []).join(', ') : undefined;
  const lastMove: ClaimMove | null = claim && outcome.kind === 'up' ? completedMove(claim, node, nowIso) : null;
  const want: WantedStatus = {
    phase: outcome.kind === 'up' ? 'Assigned' : 'Failed',
    node,
    condition: claimCondition(outcome, node),
    serviceList,
    lastMove,
  };
  if (current && reports(current, want)) return null;
  return {
    phase: want.phase,
    node,
    lastTransitionTime: current?.phase === want.phase && current.lastTransitionTime ? current.lastTransitionTime : nowIso,
    conditions: setCondition(current?.conditions ?? [], want.condition, nowIso),
    ...(serviceList !== undefined ? { serviceList } : {}),
    ...(lastMove ? { lastMove } : {}),
  };
}

interface WantedStatus {
  phase: 'Assigned' | 'Failed';
  node: string;
  condition: ConditionInput;
  /** undefined: not known here, so not compared. */
  serviceList: string | undefined;
  /** null: no move to record, so not compared. */
  lastMove: ClaimMove | null;
}

function claimCondition(outcome: ClaimOutcome, node: string): ConditionInput {
  if (outcome.kind === 'failed')
    return { type: CLAIM_CONDITION, status: 'False', reason: outcome.reason, message: `node ${node}: ${outcome.message}` };
  return {
    type: CLAIM_CONDITION,
    status: 'True',
    reason: CLAIM_UP,
    message: `${outcome.ip} is up on ${outcome.iface} of node ${node} and announced`,
  };
}

/** Whether the status already says all of `want`. */
function reports(current: IpClaimStatus, want: WantedStatus): boolean {
  const existing = current.conditions?.find((c) => c.type === CLAIM_CONDITION);
  return (
    current.phase === want.phase &&
    current.node === want.node &&
    existing?.status === want.condition.status &&
    existing.reason === want.condition.reason &&
    existing.message === want.condition.message &&
    (want.serviceList === undefined || current.serviceList === want.serviceList) &&
    sameMove(current.lastMove, want.lastMove)
  );
}

function sameMove(current: ClaimMove | undefined, want: ClaimMove | null): boolean {
  return want === null || (current?.claimedAt === want.claimedAt && current.to === want.to && current.upAt === want.upAt);
}
