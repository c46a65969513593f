// The leader's probe view of each node, published in IpNode status.probe so that users (and
// `kubectl ipcontroller why`, which runs health.ts on it) see what the scheduler decided with:
// round trip, failures in a row, draining. Written when the verdict changes (failed or not,
// draining or not), once more when a report that caught a miss is answered (staleUntilRefresh),
// and otherwise refreshed every few minutes, never per probe: at 1,000 nodes that is about 3
// writes a second, against 5,000 probes a second.
import type { ProbeReport } from '../api/types.js';
import type { Logger } from '../lib/logger.js';
import { countedFailures, type HealthConfig, type ProbeState } from './health.js';

/** Refresh of an unchanged report: keeps the RTT shown by `kubectl get ipnodes` recent enough to read. */
export const PROBE_REPORT_REFRESH_MS = 300_000;

export function probeReport(
  state: ProbeState | undefined,
  rttMs: number | undefined,
  now: number,
  scheduler: { identity: string; cfg: HealthConfig },
): ProbeReport {
  const { identity: by, cfg } = scheduler;
  // The failures health.ts counts (its stall rule drops those seen while the scheduler itself did
  // not run), so that `kubectl ipcontroller why` on this report decides as the scheduler did.
  const counted = state ? countedFailures(state, cfg) : { count: 0 };
  const report: ProbeReport = {
    by,
    observedAt: new Date(now).toISOString(),
    consecutiveFailures: counted.count,
    failureThreshold: cfg.probeFailures,
    monitorMs: cfg.monitorMs,
    draining: state?.draining ?? false,
  };
  if (rttMs !== undefined) report.rttMs = Math.round(rttMs * 1000) / 1000;
  if (counted.count >= cfg.probeFailures && counted.reachedAt !== undefined) report.failedAt = new Date(counted.reachedAt).toISOString();
  if (state?.lastError) report.lastError = state.lastError.slice(0, 512);
  return report;
}

/** The probe state a report stands for, to run health.ts on what the API shows. */
export function probeStateOf(report: ProbeReport): ProbeState {
  const state: ProbeState = { consecutiveFailures: report.consecutiveFailures, draining: report.draining };
  const failedAt = report.failedAt ? Date.parse(report.failedAt) : NaN;
  if (!Number.isNaN(failedAt)) state.failedAt = failedAt;
  if (report.lastError) state.lastError = report.lastError;
  return state;
}

/** Whether a new report is worth a write: the verdict or the scheduler changed, or the last one is old. */
export function reportDue(
  previous: { report: ProbeReport; at: number } | undefined,
  next: ProbeReport,
  now: number,
  refreshMs = PROBE_REPORT_REFRESH_MS,
): boolean {
  if (!previous) return true;
  const p = previous.report;
  const failed = (r: ProbeReport): boolean => r.consecutiveFailures >= r.failureThreshold;
  if (failed(p) !== failed(next) || p.draining !== next.draining || p.by !== next.by) return true;
  if (p.failureThreshold !== next.failureThreshold || p.monitorMs !== next.monitorMs) return true;
  if (staleUntilRefresh(p, next.lastError === undefined, next.rttMs !== undefined)) return true;
  return now - previous.at >= refreshMs;
}

/**
 * Whether the last report caught a miss the node has answered since (its error is gone: a probe
 * failure below the threshold, such as a new leader's first probe timing out), or was written
 * before any answer gave an RTT and one has now. Such a report changes no verdict, so without
 * this rule it stayed until the refresh (5 minutes), with the miss and "-" for the RTT in
 * `kubectl ipcontroller status`. At most one write per report that caught a miss.
 */
function staleUntilRefresh(p: ProbeReport, answered: boolean, rttKnown: boolean): boolean {
  return (p.lastError !== undefined && answered) || (p.rttMs === undefined && rttKnown);
}

/**
 * Whether a probe changed what health.ts decides with: answered at all, failed past the
 * threshold as health.ts counts failures (countedFailures: its stall rule), draining. The
 * scheduler looks at all nodes again only then (and on its own timer), not after every probe.
 * A rule in health.ts that reads more of ProbeState must be added here.
 */
export function probeVerdictChanged(prev: ProbeState | undefined, next: ProbeState, cfg: HealthConfig): boolean {
  if (!prev) return true;
  // Compared field by field: this runs for every probe result, so it builds no strings.
  const a = prev.consecutiveFailures;
  const b = next.consecutiveFailures;
  if ((a === 0) !== (b === 0) || prev.draining !== next.draining) return true;
  // Counted failures are never more than the raw ones: below the threshold raw, below it counted.
  if (a < cfg.probeFailures && b < cfg.probeFailures) return false;
  return failedBy(prev, cfg) !== failedBy(next, cfg);
}

function failedBy(state: ProbeState | undefined, cfg: HealthConfig): boolean {
  return state !== undefined && countedFailures(state, cfg).count >= cfg.probeFailures;
}

/** reportDue for the state a report would be built from (same rules, no report built). */
function stateDue(
  previous: { report: ProbeReport; at: number },
  next: { state: ProbeState | undefined; rttKnown: boolean },
  now: number,
  d: { identity: string; cfg: HealthConfig },
): boolean {
  const p = previous.report;
  const state = next.state;
  if (p.consecutiveFailures >= p.failureThreshold !== failedBy(state, d.cfg)) return true;
  if (p.draining !== (state?.draining ?? false) || p.by !== d.identity) return true;
  if (p.failureThreshold !== d.cfg.probeFailures || p.monitorMs !== d.cfg.monitorMs) return true;
  if (staleUntilRefresh(p, !state?.lastError, next.rttKnown)) return true;
  return now - previous.at >= PROBE_REPORT_REFRESH_MS;
}

export interface ProbeReporterDeps {
  write(node: string, report: ProbeReport): Promise<void>;
  isLeader(): boolean;
  log: Logger;
  identity: string;
  cfg: HealthConfig;
}

/**
 * Report writes in flight at most, over all nodes. A new leader has a report due for every node at
 * its first probe of each: at 1,000 nodes that was 1,000 IpNode status writes at once, which
 * queue in the apiserver in front of the replicas' Lease renewals. A report not written for
 * this cap is tried again with the node's next probe (an interval later).
 */
export const REPORT_WRITES_IN_FLIGHT = 8;

/** Writes due reports, one in flight per node and REPORT_WRITES_IN_FLIGHT in all; a failed write is tried again with the next probe. */
export class ProbeReporter {
  private readonly last = new Map<string, { report: ProbeReport; at: number }>();
  private readonly rtt = new Map<string, number>();
  private readonly busy = new Set<string>();
  private cfg: HealthConfig;

  constructor(private readonly d: ProbeReporterDeps) {
    this.cfg = d.cfg;
  }

  /** The failure rules the prober runs by now (the rate cap may stretch the interval); the configured ones until told. */
  useRules(cfg: HealthConfig): void {
    this.cfg = cfg;
  }

  observe(node: string, state: ProbeState | undefined, rttMs: number | null, now: number): void {
    if (rttMs !== null) this.rtt.set(node, rttMs);
    if (!this.d.isLeader() || this.busy.has(node) || this.busy.size >= REPORT_WRITES_IN_FLIGHT) return;
    const last = this.last.get(node);
    const scheduler = { identity: this.d.identity, cfg: this.cfg };
    // Most probes change nothing worth a write: decide that before building a report.
    if (last && !stateDue(last, { state, rttKnown: this.rtt.has(node) }, now, scheduler)) return;
    const report = probeReport(state, this.rtt.get(node), now, scheduler);
    if (!reportDue(this.last.get(node), report, now)) return;
    this.busy.add(node);
    this.d
      .write(node, report)
      .then(() => this.last.set(node, { report, at: now }))
      .catch((err: unknown) => this.d.log.debug({ node, err: String(err) }, 'probe report not written'))
      .finally(() => this.busy.delete(node));
  }

  forget(node: string): void {
    this.last.delete(node);
    this.rtt.delete(node);
  }
}
