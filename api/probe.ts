// The probe: the wire contract between the scheduler (which asks) and the agent (which answers).
// Both sides import it from here so the header, the path and the answer cannot drift apart.
import { isRecord } from '../lib/json.js';

/** Header a scheduler's probe carries (value: the replica's identity), so the agent can tell probes from kubelet's liveness checks. */
export const PROBE_HEADER = 'x-ipcontroller-probe';

/** Path the scheduler probes on the agent's status port. */
export const PROBE_PATH = '/healthz';

/** The agent's answer to a probe, as JSON with HTTP 200. */
export interface ProbeAnswer {
  ok: boolean;
  /** The node the answering agent runs on: an answer from another node is a failed probe. */
  node: string;
  /** The agent is shutting down and wants its claims moved (make-before-break). */
  draining: boolean;
}

/** What the scheduler reads from an answer. */
export type ProbeVerdict = { ok: true; draining: boolean } | { ok: false; error: string };

/** Judges an answer to a probe of `node` from its HTTP status and body. */
export function judgeProbeAnswer(node: string, status: number, body: string): ProbeVerdict {
  if (status !== 200) return { ok: false, error: `HTTP ${status}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, error: 'answer is not JSON' };
  }
  const answer: Partial<Record<keyof ProbeAnswer, unknown>> = isRecord(parsed) ? parsed : {};
  if (answer.ok !== true) return { ok: false, error: 'answer says ok: false' };
  if (typeof answer.node === 'string' && answer.node !== node) return { ok: false, error: `answered as node ${answer.node}` };
  return { ok: true, draining: answer.draining === true };
}
