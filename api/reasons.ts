// Every reason the programs write (Event reasons, condition reasons, metric `reason` labels), as closed
// lists: a reason is part of what users script against (`kubectl get events --field-selector reason=`,
// alerts on failovers_total{reason="probe"}), and a metric label fed from an open string is an
// unbounded series count. A decider returns one of these types; nothing builds a reason from text.

/** Addresses a pool never hands out (IpClaimPool status.excluded[].reason). */
export const EXCLUSION_REASONS = ['NodeAddress', 'NodeSubnet', 'AddressConflict'] as const;
export type ExclusionReason = (typeof EXCLUSION_REASONS)[number];

/** The agent saw another host answer for an address (exclusion reason and claim Announced=False reason). */
export const ADDRESS_CONFLICT = 'AddressConflict' satisfies ExclusionReason;

/**
 * Why an address a Service asked for cannot be given (service.ts, desired.ts): a Service Warning Event,
 * the AddressReady condition's reason and the `reason` label of allocation_failures_total.
 */
export const ALLOCATION_PROBLEMS = [
  'InvalidRequest',
  'InvalidExternalIP',
  'PoolInvalid',
  'PoolNotFound',
  'PoolTerminating',
  'NoPoolForFamily',
  'AddressOutsidePool',
  'AddressInUse',
  'PoolExhausted',
  ...EXCLUSION_REASONS,
] as const;
export type AllocationProblem = (typeof ALLOCATION_PROBLEMS)[number];

/** Why a claim stays unplaced (placement.ts): Service Warning Event and claim Scheduled=False reason. */
export const PENDING_REASONS = ['NoCandidateNode', 'NoServingEndpoint'] as const;
export type PendingReason = (typeof PENDING_REASONS)[number];

/** The claim Scheduled=True reason, once a claim that could not be placed is placed (scheduler/plan.ts). */
export const CLAIM_SCHEDULED = 'Scheduled';

/** Reasons of the scheduler's claim condition Scheduled: placed again, or why not. */
export const SCHEDULED_REASONS = [CLAIM_SCHEDULED, ...PENDING_REASONS] as const;
export type ScheduledReason = (typeof SCHEDULED_REASONS)[number];

/** Why a node is not a candidate for claims (scheduler/health.ts). */
export const NODE_FAILURES = ['not-agent', 'excluded', 'no-ipnode', 'draining', 'heartbeat', 'not-ready', 'probe'] as const;
export type NodeFailureReason = (typeof NODE_FAILURES)[number];

/** Why a claim left its node: the `reason` label of failovers_total and ClaimMove.reason. */
export const MOVE_REASONS = [...NODE_FAILURES, 'no-endpoint', 'rebalance'] as const;
export type MoveReason = (typeof MOVE_REASONS)[number];

/** The reasons of the Service condition ipcontroller.ext/AddressReady (scheduler/condition.ts). */
export const ADDRESS_READY_REASONS = [
  'Ready', // every address allocated, placed and reported up by its agent
  'Announcing', // placed; waiting for the agent to report the address up (transient)
  'AnnounceFailed', // the agent could not bring the address up
  'NotRequested', // the Service no longer asks for an address (or belongs to another class)
  'AllocationFailed', // a problem without a reason of its own
  ...PENDING_REASONS,
  ...ALLOCATION_PROBLEMS,
] as const;
export type AddressReadyReason = (typeof ADDRESS_READY_REASONS)[number];

/** Event reasons on Services (scheduler/reconciler.ts); also what `kubectl ipcontroller history` reads. */
export const SERVICE_EVENT_REASONS = [
  'IPAllocated',
  'IPAssigned',
  'IPMoved',
  'IPReleased',
  'AllocationFailed',
  ...PENDING_REASONS,
  ...ALLOCATION_PROBLEMS,
] as const;
export type ServiceEventReason = (typeof SERVICE_EVENT_REASONS)[number];

/** Event reasons on IpClaimPools. */
export const POOL_EVENT_REASONS = ['PoolInUse'] as const;
export type PoolEventReason = (typeof POOL_EVENT_REASONS)[number];

/** Reasons of the IpClaimPool conditions (scheduler/pools.ts and reconciler.ts). */
export const POOL_CONDITION_REASONS = [
  'Valid',
  'InvalidSpec',
  'SharesAddresses',
  'Disjoint',
  'InUse',
  'Releasing',
  'Excluded',
  'NoneExcluded',
] as const;
export type PoolConditionReason = (typeof POOL_CONDITION_REASONS)[number];

/**
 * Why the agent marks a claim Failed (claim Announced=False reason, the `reason` label of the agent's
 * claim_failures_total); 'AddressUp' is the Announced=True reason.
 */
export const CLAIM_FAILURES = [
  'InvalidClaim',
  'InvalidAddress',
  'InterfaceNotFound',
  'NoInterface',
  'DuplicateClaim',
  'AddFailed',
  ADDRESS_CONFLICT,
] as const;
export type ClaimFailureReason = (typeof CLAIM_FAILURES)[number];
export const CLAIM_UP = 'AddressUp';

/** Reasons of the agent's IpNode conditions (Ready, Draining, Fenced, StrictARPMissing). */
export const NODE_CONDITION_REASONS = [
  'Serving',
  'Starting',
  'Draining',
  'Fenced',
  'ShuttingDown',
  'Running',
  'Isolated',
  'Connected',
  'IPVSWithoutStrictARP',
  'NotNeeded',
] as const;
export type NodeConditionReason = (typeof NODE_CONDITION_REASONS)[number];
