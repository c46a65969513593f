// The fencing rule, as a pure function of what the agent knows and the time.
//
// Two nodes answering for one IP is the worst failure of this system. The scheduler moves
// claims away from a node it can no longer probe; such a node must not keep answering for
// them. But the agent only learns that its claims moved through the API server. So:
//
//   - while the agent can reach the API server, it follows the claims (no fencing);
//   - while the scheduler still probes it, it keeps its addresses even through an API outage
//     (the scheduler sees it healthy and will not move its claims);
//   - when it has neither reached the API server nor been probed for longer than
//     --fence-after, it withdraws every address it holds (fenced), and takes them back as soon
//     as either comes back and the claims say so.
//
// "Reached the API server" is the last successful heartbeat write; "probed" is the last
// /healthz request carrying the scheduler's x-ipcontroller-probe header (kubelet's liveness
// probes do not count). --fence-after 0 turns fencing off.

export interface FenceInput {
  now: number;
  /** Last successful write to the API server (ms since epoch). */
  lastApiContact: number;
  /** Last probe from a scheduler (ms since epoch). */
  lastProbe: number;
  fenceAfterMs: number;
}

export type FenceDecision =
  { fenced: false; reason: 'api-reachable' | 'probed' | 'disabled' } | { fenced: true; reason: 'isolated'; isolatedForMs: number };

export function fenceDecision(input: FenceInput): FenceDecision {
  if (input.fenceAfterMs <= 0) return { fenced: false, reason: 'disabled' };
  const sinceApi = input.now - input.lastApiContact;
  const sinceProbe = input.now - input.lastProbe;
  if (sinceApi <= input.fenceAfterMs) return { fenced: false, reason: 'api-reachable' };
  if (sinceProbe <= input.fenceAfterMs) return { fenced: false, reason: 'probed' };
  return { fenced: true, reason: 'isolated', isolatedForMs: Math.min(sinceApi, sinceProbe) };
}
