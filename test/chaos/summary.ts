// Pure assembly of the JSON reports of `make chaos` and `make soak` from what was injected
// and what the checker saw.
import type { CheckerReport } from './checker.js';
import { stats } from './session.js';

export interface Outcome {
  kind: string;
  target: string;
  start: number;
  /** Client downtime on the sentinel (ms), null when it could not be measured. */
  downtimeMs: number | null;
  /** The sentinel moved on the wire during the fault or within 5 s after it. */
  sentinelMoves: number;
  notes: string[];
  error?: string;
}

export interface KindSummary {
  injected: number;
  errors: string[];
  downtime_ms: ReturnType<typeof stats>;
  /** Injections after which the sentinel moved (a failover; false ones for stalls that should not fail over). */
  sentinel_moved: number;
  violations: number;
  notes: string[];
}

export function byKind(outcomes: Outcome[], report: CheckerReport): Record<string, KindSummary> {
  const out: Record<string, KindSummary> = {};
  const violationsOf = (kind: string): number =>
    report.wire.violations.filter((v) => v.fault === kind).length +
    report.state.violations.filter((v) => v.fault === kind).length +
    report.liveClaimDeletes.filter((d) => d.fault === kind).length;
  for (const o of outcomes) {
    const s = (out[o.kind] ??= {
      injected: 0,
      errors: [],
      downtime_ms: stats([]),
      sentinel_moved: 0,
      violations: violationsOf(o.kind),
      notes: [],
    });
    s.injected++;
    if (o.error) s.errors.push(o.error);
    if (o.sentinelMoves > 0) s.sentinel_moved++;
    s.notes.push(...o.notes.map((n) => `${o.target}: ${n}`));
  }
  for (const kind of Object.keys(out)) {
    const values = outcomes.filter((o) => o.kind === kind && o.downtimeMs !== null).map((o) => o.downtimeMs as number);
    (out[kind] as KindSummary).downtime_ms = stats(values);
  }
  return out;
}

/** Violations with their evidence, trimmed for a JSON report. */
export function violations(report: CheckerReport): Record<string, unknown> {
  const iso = (t: number): string => new Date(t).toISOString();
  return {
    total: report.wire.violations.length + report.state.violations.length + report.liveClaimDeletes.length,
    two_macs_on_the_wire: report.wire.violations.map((v) => ({
      ip: v.ip,
      fault: v.fault ?? null,
      from: iso(v.start),
      length_ms: Math.round(v.end - v.start),
      macs: v.macs,
      frames: v.frames,
      evidence: v.evidence,
    })),
    state: report.state.violations.map((v) => ({
      invariant: v.invariant,
      fault: v.fault ?? null,
      since: iso(v.since),
      until: iso(v.until),
      still_open: v.open,
      detail: v.detail,
    })),
    live_claims_deleted: report.liveClaimDeletes.map((d) => ({ at: iso(d.t), fault: d.fault ?? null, detail: d.detail })),
  };
}
