// Status conditions (metav1.Condition) as both programs write them: one helper, one ordering rule.
//
// The rule is apimachinery's meta.SetStatusCondition: a condition already in the list is replaced
// where it stands, a new type is appended at the end, so the order is the order in which types first
// appeared and an update never reshuffles what `kubectl describe` shows. lastTransitionTime moves only
// when the status changes; reason and message always take the new values.
import type { Condition } from './types.js';

/** A condition as a decider produces it; setCondition supplies lastTransitionTime. */
export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/**
 * Condition the scheduler keeps in a Service's status.conditions: whether every address the
 * Service asked for is allocated, placed on a node and up there (`kubectl wait
 * --for=condition=ipcontroller.ext/AddressReady svc/NAME`).
 */
export const SERVICE_CONDITION = 'ipcontroller.ext/AddressReady';

/** Condition types the agent writes on its IpNode. */
export const NodeCondition = {
  Ready: 'Ready',
  Draining: 'Draining',
  Fenced: 'Fenced',
  StrictARPMissing: 'StrictARPMissing',
} as const;

/** The condition type the agent owns on an IpClaim. */
export const CLAIM_CONDITION = 'Announced';

/** The condition type the scheduler owns on an IpClaim while it cannot place it. */
export const SCHEDULED_CONDITION = 'Scheduled';

/** Condition types the scheduler writes on an IpClaimPool. */
export const PoolCondition = {
  Valid: 'Valid',
  Overlapping: 'Overlapping',
  Deleting: 'Deleting',
  AddressesExcluded: 'AddressesExcluded',
} as const;

/**
 * Sets one condition in a list (absent list: empty) and returns the new list; the input is not changed.
 * Replaced in place or appended (see the rule above); lastTransitionTime kept while the status stays.
 */
export function setCondition(list: readonly Condition[] | undefined, next: ConditionInput, nowIso: string): Condition[] {
  const current = list?.find((c) => c.type === next.type);
  const lastTransitionTime = current && current.status === next.status ? current.lastTransitionTime : nowIso;
  const updated: Condition = { ...next, lastTransitionTime };
  return current ? (list ?? []).map((c) => (c.type === next.type ? updated : c)) : [...(list ?? []), updated];
}

/** The list without conditions of this type. */
export function removeCondition(list: readonly Condition[] | undefined, type: string): Condition[] {
  return (list ?? []).filter((c) => c.type !== type);
}

/** The condition of this type, if the list has one. */
export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}
