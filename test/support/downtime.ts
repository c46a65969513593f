// Pure reading of a request-loop log: how long the client saw no successful answer around a
// fault, and which node answered before and after.
/** The client's timeout per request (test/e2e/request-loop.ts): every request has ended this long after it started. */
export const CLIENT_TIMEOUT_MS = 250;

export interface RequestResult {
  /** Completion time, ms since the epoch. */
  t: number;
  /** Start time (absent in logs written before it was recorded: completion order stands in for start order). */
  s?: number;
  ok: boolean;
  body?: string;
  error?: string;
}

export interface Downtime {
  /** Completion time of the last success at or before the fault. */
  lastBefore: number;
  /** Completion time of the first success after the fault. */
  firstAfter: number;
  downtimeMs: number;
  servedBefore: string | undefined;
  servedAfter: string | undefined;
}

export function parseRequestLog(text: string): RequestResult[] {
  return text
    .split('\n')
    .filter((line) => line.trim().startsWith('{'))
    .map((line) => JSON.parse(line) as RequestResult)
    .sort((a, b) => a.t - b.t);
}

/**
 * Downtime around faultAt, or null when the log has no success on one side of it: from the last
 * success completed at or before the fault to the completion of the first success among the
 * requests STARTED after the first failed one. Start order, not completion order: a request
 * sent into the outage fails only when its timeout ends (250 ms later), by which time requests
 * sent after the move may have been answered, and the outage is what the requests sent into it
 * met. Successes right after the fault may still come from connections the old node accepted
 * before it was cut, so the outage starts at the first failure after the fault, if any.
 * The caller must let requests in flight end first (RequestLoop.settled): a failure not yet
 * logged would read as no downtime.
 */
export function downtimeAround(results: RequestResult[], faultAt: number): Downtime | null {
  const before = results.filter((r) => r.ok && r.t <= faultAt).pop();
  const started = (r: RequestResult): number => r.s ?? r.t;
  const byStart = results.filter((r) => r.t > faultAt).sort((a, b) => started(a) - started(b) || a.t - b.t);
  const firstFailure = byStart.findIndex((r) => !r.ok);
  const after = firstFailure < 0 ? results.find((r) => r.ok && r.t > faultAt) : byStart.slice(firstFailure).find((r) => r.ok);
  if (!before || !after) return null;
  return {
    lastBefore: before.t,
    firstAfter: after.t,
    downtimeMs: firstFailure >= 0 ? after.t - before.t : 0,
    servedBefore: before.body,
    servedAfter: after.body,
  };
}
