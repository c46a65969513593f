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
