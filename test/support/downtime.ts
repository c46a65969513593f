// Pure reading of a request-loop log: how long the client saw no successful answer around a
// fault, and which node answered before and after.
export interface RequestResult {
  t: number;
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

/** Downtime around faultAt, or null when the log has no success on one side of it. */
export function downtimeAround(results: RequestResult[], faultAt: number): Downtime | null {
  const before = results.filter((r) => r.ok && r.t <= faultAt).pop();
  // Successes right after the fault may still come from connections the old node accepted
  // before it was cut, so "after" starts at the first failure after the fault, if any.
  const firstFailure = results.find((r) => !r.ok && r.t > faultAt);
  const after = results.find((r) => r.ok && r.t > (firstFailure?.t ?? faultAt));
  if (!before || !after) return null;
  return {
    lastBefore: before.t,
    firstAfter: after.t,
    downtimeMs: firstFailure ? after.t - before.t : 0,
    servedBefore: before.body,
    servedAfter: after.body,
  };
}
