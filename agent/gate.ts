// The agent's gate: one pure function of what the agent knows and the time that says whether it
// may announce, must withdraw every address, is ready, and which IpNode conditions it reports,
// with the one reason that explains it. It composes the fencing rule (fencing.ts) with the
// stall rule and the state of drain and start-up. It acts on nothing: it returns what it
// remembers next and the transitions that happened, and the agent applies them in one place
// (logs, metrics, relist, reconcile request). The agent once crashed on a stall check that
// acted while it decided (stall -> reconcile -> stall without end); here the decision is
// complete, and the memory stored, before anything acts on it.
//
// The stall rule. A process frozen (SIGSTOP, a VM pause) for less than --fence-after is not
// fenced, but what it knew may be stale: on resume its timers fire before the queued watch
// events are read, so an announcement round due then would claim an address the scheduler
// already moved. A gap of over STALL_MS between two evaluations therefore holds every round
// until a reconcile has run on claims listed after it; a gap over --stall-withdraw (the
// scheduler may have moved the claims, and the kernel keeps answering ARP for them) also
// withdraws every address until the claims are listed again.
import { NodeCondition, type Condition } from '../api/types.js';
import { fenceDecision, type FenceDecision } from './fencing.js';
import { setCondition, type ConditionInput } from './status.js';
import type { StrictArpResult } from './strictarp.js';

/** A gap over this between two evaluations means the process was frozen or starved. */
export const STALL_MS = 1000;

/** What the gate remembers between evaluations; only the gate computes it. */
export interface GateMemory {
  fenced: boolean;
  /** After fencing, addresses stay withdrawn until claims were listed again after this time. */
  unfencedAt: number;
  /** The last evaluation; a long gap since means the process was frozen. */
  lastTick: number;
  /** Set when a stall is seen; cleared by the first reconcile on claims listed after it (stallCleared). */
  stalledAt: number;
  /** After a stall past --stall-withdraw, addresses stay withdrawn until claims were listed after this time. */
  stallWithdrawAt: number;
}

/** What the agent observes, as plain values (ms since the epoch for times). */
export interface GateFacts {
  /** Last successful write to the API server. */
  lastApiContact: number;
  /** Last probe from a scheduler. */
  lastProbe: number;
  /** When the claims were last listed in full (0 before the first list). */
  listedAt: number;
  synced: boolean;
  ipNodeReady: boolean;
  firstReconcileDone: boolean;
  /** SIGTERM received: report Draining, let the claims move. */
  draining: boolean;
  /** Drain over (or stop with removal): every address goes. */
  drained: boolean;
  strictArp: StrictArpResult;
  /** The IpNode conditions last written; their lastTransitionTime stays while unchanged. */
  nodeConditions: Condition[];
}

export interface GateConfig {
  fenceAfterMs: number;
  /** 0 turns the stall withdrawal off. */
  stallWithdrawMs: number;
}

export interface GateState extends GateFacts {
  memory: GateMemory;
  config: GateConfig;
}

/** Something that changed; the agent applies each (agent.ts applyTransitions). */
export type Transition =
  | { kind: 'fenced'; isolatedForMs: number }
  | { kind: 'unfenced'; reason: Exclude<FenceDecision['reason'], 'isolated'> }
  | { kind: 'stalled'; stalledMs: number; withdraw: boolean }
  | { kind: 'stallCleared' }
  | { kind: 'heartbeatRecovered'; failures: number };

/** Why the agent does what it does, first match wins. */
export type GateReason =
  | 'drained' // drain over: everything withdrawn
  | 'fenced' // neither API server nor probes: everything withdrawn
  | 'awaitingRelist' // unfenced or after a long stall: withdrawn until the claims are listed again
  | 'stalled' // holding announcement rounds until a reconcile on claims listed after the stall
  | 'draining' // serving while the claims move away
  | 'starting' // not listed, registered or reconciled yet
  | 'serving';

export interface GateDecision {
  memory: GateMemory;
  transitions: Transition[];
  /** An announcement round may go out. */
  announce: boolean;
  /** Every address must go, whatever the claims say. */
  withdrawAll: boolean;
  /** /readyz. */
  ready: boolean;
  /** The IpNode conditions to report now. */
  conditions: Condition[];
  reason: GateReason;
}

/** The memory of an agent that starts at `now`. */
export function initialMemory(now: number): GateMemory {
  return { fenced: false, unfencedAt: 0, lastTick: now, stalledAt: 0, stallWithdrawAt: 0 };
}

function fenceStep(state: GateState, now: number, memory: GateMemory, transitions: Transition[]): GateMemory {
  const decision = fenceDecision({
    now,
    lastApiContact: state.lastApiContact,
    lastProbe: state.lastProbe,
    fenceAfterMs: state.config.fenceAfterMs,
  });
  if (decision.fenced === memory.fenced) return memory;
  if (decision.fenced) {
    transitions.push({ kind: 'fenced', isolatedForMs: decision.isolatedForMs });
    return { ...memory, fenced: true };
  }
  transitions.push({ kind: 'unfenced', reason: decision.reason });
  return { ...memory, fenced: false, unfencedAt: now };
}

function stallStep(state: GateState, now: number, memory: GateMemory, transitions: Transition[]): GateMemory {
  const stalledMs = now - memory.lastTick;
  const withdraw = state.config.stallWithdrawMs > 0 && stalledMs > state.config.stallWithdrawMs;
  const next = { ...memory, lastTick: now };
  if (!withdraw && stalledMs <= STALL_MS) return next;
  transitions.push({ kind: 'stalled', stalledMs, withdraw });
  return { ...next, stalledAt: now, ...(withdraw ? { stallWithdrawAt: now } : {}) };
}

/** Every address goes: fenced, drained, or the claims were not listed since the fence lifted or a long stall. */
function mustWithdrawAll(state: GateFacts, memory: GateMemory): boolean {
  const relisted = state.listedAt > memory.unfencedAt && state.listedAt > memory.stallWithdrawAt;
  return memory.fenced || state.drained || !relisted;
}

function reasonOf(state: GateFacts, memory: GateMemory, serving: boolean): GateReason {
  if (state.drained) return 'drained';
  if (memory.fenced) return 'fenced';
  if (mustWithdrawAll(state, memory) && state.synced) return 'awaitingRelist';
  if (memory.stalledAt > 0) return 'stalled';
  if (state.draining) return 'draining';
  return serving ? 'serving' : 'starting';
}

/** A True/False condition with the reason and message of each side. */
function flag(type: string, on: boolean, whenTrue: [string, string], whenFalse: [string, string]): ConditionInput {
  const [reason, message] = on ? whenTrue : whenFalse;
  return { type, status: on ? 'True' : 'False', reason, message };
}

/** The conditions the agent owns on its IpNode, set into the list last written. */
export function nodeConditions(state: GateFacts, fenced: boolean, nowIso: string): Condition[] {
  const { draining, strictArp } = state;
  const ready = state.synced && state.firstReconcileDone && !fenced && !draining;
  const notReady = draining ? 'Draining' : fenced ? 'Fenced' : 'Starting';
  const set = [
    flag(NodeCondition.Ready, ready, ['Serving', 'agent is holding its claims'], [notReady, `agent is ${notReady.toLowerCase()}`]),
    flag(NodeCondition.Draining, draining, ['ShuttingDown', 'agent is shutting down; move its claims'], ['Running', '']),
    flag(
      NodeCondition.Fenced,
      fenced,
      ['Isolated', 'addresses withdrawn: neither API server nor scheduler probes reached this agent'],
      ['Connected', ''],
    ),
    flag(
      NodeCondition.StrictARPMissing,
      strictArp.missing,
      ['IPVSWithoutStrictARP', strictArp.missing ? strictArp.message : ''],
      ['NotNeeded', ''],
    ),
  ];
  return set.reduce<Condition[]>((list, c) => setCondition(list, c, nowIso), state.nodeConditions);
}

/**
 * The gate: applies the fencing rule, then the stall rule, at `now`, and decides from the
 * result. Evaluated before every reconcile, before every announcement round, on every
 * heartbeat and readiness check and by the agent's gate loop, so a process that was frozen
 * withdraws before it acts on anything it knew before.
 */
export function gate(state: GateState, now: number): GateDecision {
  const transitions: Transition[] = [];
  const memory = stallStep(state, now, fenceStep(state, now, state.memory, transitions), transitions);
  const withdrawAll = mustWithdrawAll(state, memory);
  const ready = state.ipNodeReady && state.synced && state.firstReconcileDone && !memory.fenced && !state.draining;
  return {
    memory,
    transitions,
    announce: !memory.fenced && !state.drained && memory.stalledAt === 0,
    withdrawAll,
    ready,
    conditions: nodeConditions(state, memory.fenced, new Date(now).toISOString()),
    reason: reasonOf(state, memory, ready),
  };
}

/**
 * After a reconcile: the stall seen when it started is over if that reconcile rested on claims
 * listed after it and no newer stall came meanwhile.
 */
export function stallCleared(memory: GateMemory, seen: { stalledAt: number; listedAt: number }): GateMemory | undefined {
  if (seen.stalledAt <= 0 || seen.listedAt <= seen.stalledAt || memory.stalledAt !== seen.stalledAt) return undefined;
  return { ...memory, stalledAt: 0 };
}

/**
 * The dead-man switch's round (deadman.ts keeps the kernel answering only while refreshed). A
 * round that comes late (the process did not run) refreshes nothing: the stall rule decides
 * first. Not before the first reconcile: what an earlier run left on the interface stays
 * managed and silent until this run has decided what is still its own. While everything is
 * withdrawn nothing is live.
 */
export function deadmanRound(input: {
  sinceLastRoundMs: number;
  periodMs: number;
  ttlMs: number;
  stallWithdrawMs: number;
  firstReconcileDone: boolean;
  withdrawAll: boolean;
}): 'skip' | 'none' | 'held' {
  const lateAfter = Math.max(2 * input.periodMs, Math.min(input.ttlMs, input.stallWithdrawMs || input.ttlMs));
  if (input.sinceLastRoundMs > lateAfter || !input.firstReconcileDone) return 'skip';
  return input.withdrawAll ? 'none' : 'held';
}

/** The dead-man refresh period: a quarter of the ttl, at least 25 ms. */
export function deadmanPeriod(ttlMs: number): number {
  return Math.max(25, Math.floor(ttlMs / 4));
}

/** The gate loop's period: the stall tick, or faster when --fence-after is short (a quarter of it, at least 50 ms). */
export function gatePeriod(fenceAfterMs: number, stallTickMs: number): number {
  return Math.min(stallTickMs, Math.max(50, Math.min(250, Math.floor(fenceAfterMs / 4) || 250)));
}
