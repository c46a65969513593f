// Which nodes may hold addresses: the failover decision from what the API says (Node labels,
// IpNode heartbeat and conditions) and what the probes saw. Pure, with time passed in.
import { AGENT_NODE_LABEL, EXCLUDE_LB_LABEL, NodeCondition, type IpNode } from '../api/types.js';

/** Why a node is not a candidate; also the `reason` label of the failover counter. */
export type NodeFailure =
  | 'not-agent' // no Node object, or it lacks the ipcontroller label
  | 'excluded' // labelled node.kubernetes.io/exclude-from-external-load-balancers
  | 'no-ipnode' // no agent has registered for it
  | 'heartbeat' // IpNode heartbeat older than --monitor
  | 'not-ready' // the agent says it is not Ready
  | 'draining' // the agent is shutting down: planned move, no timers
  | 'probe'; // --probe-failures consecutive probes failed

/**
 * holds: the node gets nothing new but keeps what it has. Its heartbeat is stale while its agent
 * still answers every probe: the agent cannot reach the API server, and by its fencing rule a
 * probed agent keeps serving its addresses, so moving them would make two nodes answer.
 */
export type NodeHealth = { candidate: true } | { candidate: false; reason: NodeFailure; message: string; since?: number; holds?: true };

export interface ProbeState {
  consecutiveFailures: number;
  /** When a probe was last answered (ms); absent before the first answer. */
  answeredAt?: number;
  /** The agent answered draining: true. */
  draining: boolean;
  /** When the probe that reached --probe-failures ended (ms). */
  failedAt?: number;
  lastError?: string;
  /** When the last result, answer or failure, came in (ms). */
  lastResultAt?: number;
  /**
   * The failures since the last answer, oldest first (the last MAX_RUN): when each came in and
   * how long after the result before it (absent for the first result ever). nodeHealth uses the
   * gaps to tell a silent node from a scheduler that did not run.
   */
  run?: ProbeFailure[];
}

export interface ProbeFailure {
  at: number;
  gapMs?: number;
}

/** Failures kept in ProbeState.run: enough for any sensible --probe-failures. */
const MAX_RUN = 16;

export interface NodeObservation {
  name: string;
  /** Labels of the Node object, or undefined when there is none. */
  nodeLabels?: Record<string, string>;
  ipNode?: IpNode;
  probe?: ProbeState;
}

export interface HealthConfig {
  monitorMs: number;
  probeFailures: number;
  /**
   * The prober's cadence. With both, a failure that came in later after the result before it
   * than a probe can take (interval + timeout + slack) is not counted: the scheduler itself did
   * not run (a late timer), the answer may be waiting unread, so it says nothing about the node.
   */
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
}

/**
 * How much later than interval + timeout a failure may come in and still count: timer lateness
 * on a busy machine (tens of ms under a CPU-bound load on both cores, measured in the lab).
 */
export function stallLimitMs(cfg: HealthConfig): number | undefined {
  if (cfg.probeIntervalMs === undefined || cfg.probeTimeoutMs === undefined) return undefined;
  return cfg.probeIntervalMs + cfg.probeTimeoutMs + Math.max(50, cfg.probeIntervalMs / 2);
}

/**
 * The failures that count against the node: those after the last one that came in late (a
 * stall of the scheduler restarts the count), and when the count reached --probe-failures.
 * Without a run (a state rebuilt from IpNode.status.probe) or without the cadence, every
 * consecutive failure counts, as before.
 */
export function countedFailures(probe: ProbeState, cfg: HealthConfig): { count: number; reachedAt?: number } {
  const limit = stallLimitMs(cfg);
  const run = probe.run;
  if (!run || limit === undefined || run.length < Math.min(probe.consecutiveFailures, MAX_RUN)) {
    return { count: probe.consecutiveFailures, ...(probe.failedAt !== undefined ? { reachedAt: probe.failedAt } : {}) };
  }
  let from = 0;
  run.forEach((f, i) => {
    if (f.gapMs !== undefined && f.gapMs > limit) from = i + 1;
  });
  // Failures older than the run we keep count only while no stall was seen in it.
  const dropped = from === 0 ? probe.consecutiveFailures - run.length : 0;
  const count = run.length - from + dropped;
  if (count < cfg.probeFailures) return { count };
  const reachedAt = run[from + cfg.probeFailures - 1 - dropped]?.at ?? probe.failedAt;
  return { count, ...(reachedAt !== undefined ? { reachedAt } : {}) };
}

function conditionTrue(ipNode: IpNode, type: string): boolean {
  return ipNode.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
}

/** The last renewTime parsed per IpNode status: a step reads every node's, and most did not change since the last step. */
const parsedBeats = new WeakMap<object, { text: string; at: number | null }>();

export function heartbeatOf(ipNode: IpNode): number | null {
  const status = ipNode.status;
  const text = status?.renewTime;
  if (!status || !text) return null;
  const known = parsedBeats.get(status);
  if (known?.text === text) return known.at;
  const t = Date.parse(text);
  const at = Number.isNaN(t) ? null : t;
  parsedBeats.set(status, { text, at });
  return at;
}

/** Whether a node may hold addresses now, or why not. */
export function nodeHealth(obs: NodeObservation, now: number, cfg: HealthConfig): NodeHealth {
  if (!obs.nodeLabels || !(AGENT_NODE_LABEL in obs.nodeLabels)) {
    return { candidate: false, reason: 'not-agent', message: `node ${obs.name} is gone or not labelled ${AGENT_NODE_LABEL}` };
  }
  if (EXCLUDE_LB_LABEL in obs.nodeLabels)
    return { candidate: false, reason: 'excluded', message: `node ${obs.name} is labelled ${EXCLUDE_LB_LABEL}` };
  const ipNode = obs.ipNode;
  if (!ipNode) return { candidate: false, reason: 'no-ipnode', message: `no agent runs on node ${obs.name} (no IpNode)` };
  // Draining first: a planned move must not wait for any failure timer.
  if (conditionTrue(ipNode, NodeCondition.Draining) || obs.probe?.draining) {
    return { candidate: false, reason: 'draining', message: `the agent on ${obs.name} is draining` };
  }
  const stale = heartbeatVerdict(obs, ipNode, now, cfg);
  if (stale) return stale;
  if (!conditionTrue(ipNode, NodeCondition.Ready))
    return { candidate: false, reason: 'not-ready', message: `the agent on ${obs.name} is not Ready` };
  return probeVerdict(obs, cfg);
}

/** The heartbeat rule: a stale or missing heartbeat fails the node; fresh probe answers make it hold. */
function heartbeatVerdict(obs: NodeObservation, ipNode: IpNode, now: number, cfg: HealthConfig): NodeHealth | null {
  const beat = heartbeatOf(ipNode);
  if (beat !== null && now - beat < cfg.monitorMs) return null;
  const age = beat === null ? 'missing' : `${((now - beat) / 1000).toFixed(1)}s old`;
  // Only fresh evidence holds: answered within half the heartbeat window. A prober that
  // stopped reporting (its state frozen at "answered") must not keep a dead node's claims.
  const answeredAt = obs.probe?.answeredAt;
  const probed = beat !== null && obs.probe?.consecutiveFailures === 0 && answeredAt !== undefined && now - answeredAt < cfg.monitorMs / 2;
  const message = `heartbeat of ${obs.name} is ${age} (--monitor ${cfg.monitorMs}ms)${probed ? '; it still answers probes, so it keeps its addresses and gets no new ones' : ''}`;
  return {
    candidate: false,
    reason: 'heartbeat',
    message,
    ...(beat !== null ? { since: beat + cfg.monitorMs } : {}),
    ...(probed ? { holds: true as const } : {}),
  };
}

function probeVerdict(obs: NodeObservation, cfg: HealthConfig): NodeHealth {
  if (!obs.probe) return { candidate: true };
  const { count, reachedAt } = countedFailures(obs.probe, cfg);
  if (count < cfg.probeFailures) return { candidate: true };
  const why = obs.probe.lastError ? `: ${obs.probe.lastError}` : '';
  return {
    candidate: false,
    reason: 'probe',
    message: `${count} probes of ${obs.name} failed${why}`,
    ...(reachedAt !== undefined ? { since: reachedAt } : {}),
  };
}

/**
 * Probe bookkeeping: the next state after one probe result. Pure. It records when results came
 * in; which failures count against the node is nodeHealth's call (countedFailures).
 */
export function nextProbeState(prev: ProbeState | undefined, result: ProbeResult, now: number, failures: number): ProbeState {
  if (result.ok) return { consecutiveFailures: 0, draining: result.draining, answeredAt: now, lastResultAt: now };
  const consecutiveFailures = (prev?.consecutiveFailures ?? 0) + 1;
  const gap = prev?.lastResultAt !== undefined ? { gapMs: now - prev.lastResultAt } : {};
  const run = [...(prev?.run ?? []), { at: now, ...gap }].slice(-MAX_RUN);
  const state: ProbeState = { consecutiveFailures, draining: false, lastError: result.error, lastResultAt: now, run };
  if (prev?.answeredAt !== undefined) state.answeredAt = prev.answeredAt;
  const failedAt = consecutiveFailures === failures ? now : prev?.failedAt;
  if (failedAt !== undefined && consecutiveFailures >= failures) state.failedAt = failedAt;
  return state;
}

export type ProbeResult = { ok: true; draining: boolean; rttMs: number } | { ok: false; error: string };

/** What the scheduler knows of one node at a step: what nodeHealth reads, and its Node's addresses. */
export interface HealthObservation extends NodeObservation {
  /** IPs of the Node object (absent without one): a pool address turning up there must stop its allocation at once. */
  addresses?: string[];
}

/** The scheduler's view of its nodes after a step: what placement reads (reconciler.ts NodeHealthView). */
export interface HealthView {
  /** Nodes that may hold addresses, by name. */
  candidates: string[];
  /** Why each other node may not. */
  failures: Map<string, NodeFailure>;
  /** Failed nodes that keep their claims (stale heartbeat, probes answered), by name. */
  holding: string[];
  /**
   * When each node was found failed (ms): set once when it fails, dropped when it is a candidate
   * again, kept for a node that is gone (its claims' failover duration is measured from it).
   */
  failedAt: Map<string, number>;
  /** Nodes per state (candidate, or the failure reason): the nodes gauge. */
  states: Record<string, number>;
  /** What placement depends on, as one string: a step that changes it must start a reconcile. */
  key: string;
}

/**
 * What a step changed for one node; the caller logs and acts, the step only says. `holding`: a
 * node already failed starts keeping its claims (one that fails holding says so in `failed`).
 */
export type HealthTransition =
  | { kind: 'failed'; node: string; reason: NodeFailure; message: string; since: number; holds: boolean }
  | { kind: 'recovered'; node: string }
  | { kind: 'holding'; node: string; message: string };

export interface HealthStep {
  view: HealthView;
  transitions: HealthTransition[];
  /** The key changed: placement may decide differently, so reconcile. */
  changed: boolean;
}

export function emptyHealthView(): HealthView {
  return { candidates: [], failures: new Map(), holding: [], failedAt: new Map(), states: {}, key: '' };
}

/**
 * One health step, pure: the view before, what is known of every node now (Node, IpNode, probe
 * state and Node addresses), the time and the failure rules (nodeHealth) -> the new view and the
 * transitions. This is where a failover starts: a node leaving `candidates` lets placement move
 * its claims on the next pass.
 */
export function healthStep(
  previous: Readonly<HealthView>,
  observations: readonly HealthObservation[],
  now: number,
  cfg: HealthConfig,
): HealthStep {
  const view: HealthView = { ...emptyHealthView(), failedAt: new Map(previous.failedAt) };
  const transitions: HealthTransition[] = [];
  for (const obs of observations) {
    const t = record({ view, previous, now }, obs.name, nodeHealth(obs, now, cfg));
    if (t) transitions.push(t);
  }
  view.candidates.sort();
  view.holding.sort();
  view.key = healthKey(previous, view, observations);
  return { view, transitions, changed: view.key !== previous.key };
}

/** Puts one node's health into the view being built; returns what changed for it. */
function record(
  step: { view: HealthView; previous: Readonly<HealthView>; now: number },
  name: string,
  h: NodeHealth,
): HealthTransition | null {
  const { view, previous, now } = step;
  if (h.candidate) {
    view.candidates.push(name);
    view.states.candidate = (view.states.candidate ?? 0) + 1;
    return view.failedAt.delete(name) ? { kind: 'recovered', node: name } : null;
  }
  view.failures.set(name, h.reason);
  view.states[h.reason] = (view.states[h.reason] ?? 0) + 1;
  if (h.holds) view.holding.push(name);
  if (!view.failedAt.has(name)) {
    const since = Math.min(h.since ?? now, now);
    view.failedAt.set(name, since);
    return { kind: 'failed', node: name, reason: h.reason, message: h.message, since, holds: h.holds === true };
  }
  return h.holds && !previous.holding.includes(name) ? { kind: 'holding', node: name, message: h.message } : null;
}

/** The Node addresses part of a view's key, and what it was built from, by view (see addressesKey). */
const addressKeys = new WeakMap<HealthView, { byName: Map<string, readonly string[]>; key: string }>();

function healthKey(previous: Readonly<HealthView>, view: HealthView, observations: readonly HealthObservation[]): string {
  const failures = [...view.failures]
    .map(([n, r]) => `${n}=${r}${view.holding.includes(n) ? '(holds)' : ''}`)
    .sort()
    .join(',');
  return `${view.candidates.join(',')}|${failures}|${addressesKey(previous, view, observations)}`;
}

/**
 * Every node's addresses as one sorted string. Node addresses rarely change, so when every
 * observation has the same addresses as at the previous step, that step's string is taken
 * again instead of building and sorting one string per node at every step.
 */
function addressesKey(previous: Readonly<HealthView>, view: HealthView, observations: readonly HealthObservation[]): string {
  const before = addressKeys.get(previous);
  let same = before !== undefined;
  let count = 0;
  for (const o of observations) {
    if (!o.addresses) continue;
    count++;
    if (same && !sameList(before?.byName.get(o.name), o.addresses)) same = false;
  }
  if (same && before && before.byName.size === count) {
    addressKeys.set(view, before);
    return before.key;
  }
  const byName = new Map<string, readonly string[]>();
  // Copies: an observation's list changed in place must not look unchanged at the next step.
  for (const o of observations) if (o.addresses) byName.set(o.name, [...o.addresses]);
  const key = [...byName]
    .map(([name, addresses]) => `${name}=${addresses.join('+')}`)
    .sort()
    .join(',');
  addressKeys.set(view, { byName, key });
  return key;
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  if (a === b) return true;
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
