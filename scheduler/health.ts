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
}

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
}

function conditionTrue(ipNode: IpNode, type: string): boolean {
  return ipNode.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
}

export function heartbeatOf(ipNode: IpNode): number | null {
  const t = ipNode.status?.renewTime ? Date.parse(ipNode.status.renewTime) : NaN;
  return Number.isNaN(t) ? null : t;
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
  const beat = heartbeatOf(ipNode);
  if (beat === null || now - beat >= cfg.monitorMs) {
    const age = beat === null ? 'missing' : `${((now - beat) / 1000).toFixed(1)}s old`;
    // Only fresh evidence holds: answered within half the heartbeat window. A prober that
    // stopped reporting (its state frozen at "answered") must not keep a dead node's claims.
    const answeredAt = obs.probe?.answeredAt;
    const probed =
      beat !== null && obs.probe?.consecutiveFailures === 0 && answeredAt !== undefined && now - answeredAt < cfg.monitorMs / 2;
    const message = `heartbeat of ${obs.name} is ${age} (--monitor ${cfg.monitorMs}ms)${probed ? '; it still answers probes, so it keeps its addresses and gets no new ones' : ''}`;
    return {
      candidate: false,
      reason: 'heartbeat',
      message,
      ...(beat !== null ? { since: beat + cfg.monitorMs } : {}),
      ...(probed ? { holds: true as const } : {}),
    };
  }
  if (!conditionTrue(ipNode, NodeCondition.Ready))
    return { candidate: false, reason: 'not-ready', message: `the agent on ${obs.name} is not Ready` };
  if (obs.probe && obs.probe.consecutiveFailures >= cfg.probeFailures) {
    const why = obs.probe.lastError ? `: ${obs.probe.lastError}` : '';
    return {
      candidate: false,
      reason: 'probe',
      message: `${obs.probe.consecutiveFailures} probes of ${obs.name} failed${why}`,
      ...(obs.probe.failedAt !== undefined ? { since: obs.probe.failedAt } : {}),
    };
  }
  return { candidate: true };
}

/** Probe bookkeeping: the next state after one probe result. Pure. */
export function nextProbeState(prev: ProbeState | undefined, result: ProbeResult, now: number, failures: number): ProbeState {
  if (result.ok) return { consecutiveFailures: 0, draining: result.draining, answeredAt: now };
  const consecutiveFailures = (prev?.consecutiveFailures ?? 0) + 1;
  const state: ProbeState = { consecutiveFailures, draining: false, lastError: result.error };
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
  view.key = healthKey(view, observations);
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

function healthKey(view: HealthView, observations: readonly HealthObservation[]): string {
  const failures = [...view.failures]
    .map(([n, r]) => `${n}=${r}${view.holding.includes(n) ? '(holds)' : ''}`)
    .sort()
    .join(',');
  const addresses = observations
    .flatMap((o) => (o.addresses ? [`${o.name}=${o.addresses.join('+')}`] : []))
    .sort()
    .join(',');
  return `${view.candidates.join(',')}|${failures}|${addresses}`;
}
