// Events on Services, best effort like client-go's recorder: queued, sent a few at a time,
// repeats of the same message within a window dropped, and the queue bounded so a burst
// never grows without end (emit never waits: placement is never held up by it).
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { CoreEvent } from './kube.js';

export interface EventSink {
  emit(event: CoreEvent): void;
}

export interface RecorderOptions {
  send(event: CoreEvent): Promise<void>;
  clock: Clock;
  log: Logger;
  /** Same Service, reason and message within this window is sent once. */
  dedupeMs?: number;
  maxQueued?: number;
  concurrency?: number;
  onDrop?(): void;
}

export class EventRecorder implements EventSink {
  private readonly queue: CoreEvent[] = [];
  private readonly recent = new Map<string, number>();
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  dropped = 0;

  constructor(private readonly opts: RecorderOptions) {}

  emit(event: CoreEvent): void {
    if (this.closed) return;
    const now = this.opts.clock.now();
    const key = `${event.object?.kind ?? 'Service'}|${event.namespace}/${event.object?.name ?? event.serviceName}|${event.reason}|${event.message}`;
    const last = this.recent.get(key);
    if (last !== undefined && now - last < (this.opts.dedupeMs ?? 600_000)) return;
    if (this.recent.size > 20_000) this.recent.clear();
    this.recent.set(key, now);
    // client-go's broadcaster queues 1,000 Events and drops the rest; a cold start of 5,000
    // Services tells two per Service (IPAllocated, IPAssigned), after the pass's writes (the
    // reconciler holds them until then), so the queue takes 20,000 (a few MB) and every Service
    // of such a burst still gets its Events, sent 4 at a time behind the writes that matter.
    if (this.queue.length >= (this.opts.maxQueued ?? 20_000)) {
      this.dropped++;
      this.opts.onDrop?.();
      return;
    }
    this.queue.push(event);
    this.pump();
  }

  /** Resolves when everything queued has been sent (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Sends nothing more: what is still queued is dropped (counted) and later Events are ignored;
   * the few in flight finish. For shutdown: after a 5,000-Service pass thousands are queued, and
   * sending them all kept a stopped scheduler's process alive past its grace period.
   */
  close(): void {
    this.closed = true;
    const left = this.queue.splice(0);
    if (left.length > 0) {
      this.dropped += left.length;
      for (let i = 0; i < left.length; i++) this.opts.onDrop?.();
      this.opts.log.info({ dropped: left.length }, 'stopping: queued Events not sent');
    }
    this.settleIfIdle();
  }

  private settleIfIdle(): void {
    if (this.active === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private pump(): void {
    while (this.active < (this.opts.concurrency ?? 4) && this.queue.length > 0) {
      const event = this.queue.shift() as CoreEvent;
      this.active++;
      this.opts
        .send(event)
        .catch((err: unknown) => this.opts.log.debug({ err: String(err), reason: event.reason }, 'event not recorded'))
        .finally(() => {
          this.active--;
          this.pump();
          this.settleIfIdle();
        });
    }
  }
}
