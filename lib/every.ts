// The one periodic loop: run a step, sleep the rest of the period on the injected clock, stop
// when the signal aborts. Six hand-written copies of this loop each handled the abort a little
// differently; this one is the rule for all of them.
import type { Clock } from './clock.js';

/**
 * Runs `step` at once and then every `periodMs` (measured from each step's start, so a slow step
 * does not push the next one late) until `signal` aborts. A step that throws ends the loop (it
 * rejects): a step that must go on after an error catches it itself.
 */
export async function every(
  clock: Clock,
  periodMs: number | (() => number),
  signal: AbortSignal,
  step: () => void | Promise<void>,
): Promise<void> {
  while (!signal.aborted) {
    const started = clock.now();
    try {
      await step();
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    const period = typeof periodMs === 'function' ? periodMs() : periodMs;
    try {
      await clock.sleep(Math.max(0, period - (clock.now() - started)), signal);
    } catch {
      return;
    }
  }
}
