// The reconcile loop: one pass at a time, woken by a kick (a cache or the health view changed,
// leadership began, a retry is due) or by the resync period; only the leader writes, under its
// leader scope. Failed writes are retried by a later pass after a growing delay.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { LeaderScope } from './leader.js';
import type { SchedulerMetrics } from './metrics.js';
import type { PassResult } from './reconciler.js';

/** Wakes the reconcile loop; coalesces any number of kicks into one pass. */
export class Trigger {
  private dirty = true;
  private wake: (() => void) | null = null;

  constructor(private readonly clock: Clock) {}

  kick(): void {
    this.dirty = true;
    this.wake?.();
  }

  /** Waits for a kick, the timeout or the signal, whichever comes first; take() then says whether it was kicked. */
  async wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.dirty) return;
    const ctl = new AbortController();
    const onAbort = (): void => ctl.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.wake = () => ctl.abort();
    try {
      await this.clock.sleep(timeoutMs, ctl.signal);
    } catch {
      /* kicked or stopped */
    } finally {
      this.wake = null;
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Whether a kick came since the last take; clears it. */
  take(): boolean {
    const was = this.dirty;
    this.dirty = false;
    return was;
  }
}

/** First retry of a failed pass after 250 ms, doubling after each further failure, at most 10 s. */
export const RETRY_FIRST_MS = 250;
export const RETRY_MAX_MS = 10_000;

/** The delay before the next retry, after one more failure. Pure. */
export function nextRetryDelay(previousMs: number): number {
  return Math.min(Math.max(previousMs * 2, RETRY_FIRST_MS), RETRY_MAX_MS);
}

/**
 * Failed writes are retried by a later pass, kicked after a growing delay; passes that events
 * trigger meanwhile still run, so one failing write never holds up a failover.
 */
export class RetryBackoff {
  private delay = 0;
  private pending = false;

  constructor(
    private readonly clock: Clock,
    private readonly signal: AbortSignal,
    private readonly kick: () => void,
  ) {}

  /** The delay the next failure would wait (ms); 0 after a success. */
  delayMs(): number {
    return this.delay;
  }

  /** A pass had errors: kick another after the next delay (one timer at a time). */
  failed(): void {
    this.delay = nextRetryDelay(this.delay);
    if (this.pending) return;
    this.pending = true;
    this.clock
      .sleep(this.delay, this.signal)
      .then(() => this.kick())
      .catch(() => undefined)
      .finally(() => (this.pending = false));
  }

  succeeded(): void {
    this.delay = 0;
  }
}

export interface ReconcileLoopDeps {
  trigger: Trigger;
  clock: Clock;
  leader: Pick<LeaderScope, 'current' | 'isLeader' | 'validUntil'>;
  /** One reconcile pass under the leader's signal (Reconciler.pass). */
  pass(scope: AbortSignal, validUntil: () => number): Promise<PassResult>;
  /** Brings the health view up to date just before a pass. */
  refreshHealth(): void;
  /** Whether every cache has listed. */
  synced(): boolean;
  /** Told at every wake once the caches have listed. */
  onSynced(): void;
  metrics: Pick<SchedulerMetrics, 'reconcileError' | 'reconciled'>;
  log: Logger;
  resyncMs: number;
}

export class ReconcileLoop {
  private readonly retry: RetryBackoff;

  constructor(
    private readonly d: ReconcileLoopDeps,
    private readonly signal: AbortSignal,
  ) {
    this.retry = new RetryBackoff(d.clock, signal, () => d.trigger.kick());
  }

  /** Until the signal aborts: wait for a kick (50 ms polls until the caches have listed), then pass if leading. */
  async run(): Promise<void> {
    const { trigger } = this.d;
    while (!this.signal.aborted) {
      await trigger.wait(this.d.synced() ? this.d.resyncMs : 50, this.signal);
      if (this.signal.aborted) return;
      trigger.take();
      if (!this.d.synced()) continue;
      this.d.onSynced();
      const scope = this.d.leader.current();
      if (!scope || !this.d.leader.isLeader()) continue;
      await this.pass(scope);
    }
  }

  private async pass(scope: AbortSignal): Promise<void> {
    const { clock, log, metrics } = this.d;
    this.d.refreshHealth();
    this.d.trigger.take();
    const started = clock.now();
    try {
      const result = await this.d.pass(scope, () => this.d.leader.validUntil());
      if (result.errors > 0) this.retry.failed();
      else this.retry.succeeded();
      if (result.writes > 0) log.debug({ writes: result.writes, ms: clock.now() - started }, 'reconciled');
    } catch (err) {
      if (!scope.aborted && this.d.leader.isLeader()) {
        metrics.reconcileError('pass');
        log.error({ err: String(err) }, 'reconcile pass failed');
        this.retry.failed();
      }
    }
    metrics.reconciled((clock.now() - started) / 1000);
  }
}
