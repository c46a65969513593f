// The one periodic loop: run a step, sleep the rest of the period on the injected clock, stop
// when the signal aborts. Six hand-written copies of this loop each handled the abort a little
// differently; this one is the rule for all of them.
import type { Clock } from './clock.js';

/**
 * Runs `step` at once and then every `periodMs` (measured from each step's start, so a slow step
 * does not push the next one late) until `signal` aborts. A step that throws is handed to
 * `onError` and the loop goes on; without `onError` the error ends the loop (rejects).
 */
export async function every(
  clock: Clock,
  periodMs: number | (() => number),
  signal: AbortSignal,
  step: () => void | Promise<void>,
  onError?: (err: unknown) => void,
): Promise<void> {
  while (!signal.aborted) {
    const started = clock.now();
    try {
      await step();
    } catch (err) {
      if (signal.aborted) return;
      if (!onError) throw err;
      onError(err);
    }
    const period = typeof periodMs === 'function' ? periodMs() : periodMs;
    try {
      await clock.sleep(Math.max(0, period - (clock.now() - started)), signal);
    } catch {
      return;
    }
  }
}
