// A clock that tests move by hand, for every timing decision (failover, fencing, leases,
// heartbeats): sleepers wake only when advance() passes their time, so a test can also make
// time jump the way a frozen process sees it (advance(ms, ms): one step, every timer at once).
import type { Clock } from './clock.js';

/** Lets promise callbacks and setImmediate work queued by woken sleepers run. */
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
};

export class ManualClock implements Clock {
  private timers: { at: number; resolve: () => void }[] = [];
  constructor(private t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = (): void => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(signal?.reason);
      };
      const timer = {
        at: this.t + ms,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.timers.push(timer);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  /** Moves time forward in small steps, letting every due sleeper run. */
  async advance(ms: number, step = 50): Promise<void> {
    const end = this.t + ms;
    while (this.t < end) {
      this.t = Math.min(end, this.t + step);
      const due = this.timers.filter((x) => x.at <= this.t);
      this.timers = this.timers.filter((x) => x.at > this.t);
      for (const x of due) x.resolve();
      await flush();
    }
  }
}
