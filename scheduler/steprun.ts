// One run of steps through the executor, at most `concurrency` in flight, whose queue may grow
// while it goes: the steps that follow a landed one (a Service's ingress right after its
// claim's create) and steps another lane adds (ingress that waited for the pool status) go
// before the steps not started yet. That is what lets a cold start write each Service's
// ingress while the other claims are still being created, instead of all creates first and
// all ingress patches after.
import type { Step } from './plan.js';

export interface RunResult {
  kind: 'ok' | 'retry' | 'lostLeadership';
  writes: number;
  errors: number;
  /** Keys of the steps whose write landed (or that had none). */
  done: Set<string>;
  failures: Array<{ step: Step; err: unknown }>;
}

export interface RunHooks {
  /** The steps that follow a step that landed (or had no write); run before the rest. */
  follow?(step: Step): Step[];
  /** Every step that ended, landed or not. */
  settled?(step: Step): void;
}

export interface RunHandle {
  /** Steps decided elsewhere meanwhile; run before the rest. Ignored once the run ended. */
  add(steps: Step[]): void;
  /**
   * Keeps the run from ending (it may run dry while another lane still decides what to add)
   * until the returned release is called; a run that lost leadership ends anyway.
   */
  hold(): () => void;
  result: Promise<RunResult>;
}

/** How a run makes its steps: the executor's. */
export interface RunWorker {
  /** Writes in flight at once. */
  concurrency: number;
  /** Makes one step's write: true when it landed or had none; false when it failed, was kept or leadership is gone. */
  one(step: Step, result: RunResult): Promise<boolean>;
  /** Leadership is gone: start nothing more. */
  lost(): boolean;
}

export class StepRun implements RunHandle {
  readonly result: Promise<RunResult>;
  private readonly out: RunResult = { kind: 'ok', writes: 0, errors: 0, done: new Set(), failures: [] };
  /** Follow-ups and added steps, first in first out, before the rest. */
  private readonly first: Step[] = [];
  private firstAt = 0;
  private next = 0;
  private active = 0;
  private holds = 0;
  private ended = false;
  private end: (r: RunResult) => void = () => {};

  constructor(
    private readonly steps: Step[],
    private readonly hooks: RunHooks,
    private readonly w: RunWorker,
  ) {
    this.result = new Promise((resolve) => (this.end = resolve));
    // Not at once: the caller may hold() the run first, in the same turn.
    queueMicrotask(() => this.pump());
  }

  add(steps: Step[]): void {
    if (this.ended) return;
    this.first.push(...steps);
    this.pump();
  }

  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.pump();
    };
  }

  private take(): Step | undefined {
    if (this.firstAt < this.first.length) return this.first[this.firstAt++];
    return this.next < this.steps.length ? this.steps[this.next++] : undefined;
  }

  private pump(): void {
    if (this.ended) return;
    while (!this.w.lost() && this.active < this.w.concurrency) {
      const step = this.take();
      if (!step) break;
      this.active++;
      void this.run(step);
    }
    const queued = this.firstAt < this.first.length || this.next < this.steps.length;
    // Once leadership is gone nothing more is started, so the run ends with its last write in flight, holds or not.
    if (this.active > 0 || (!this.w.lost() && (this.holds > 0 || queued))) return;
    this.ended = true;
    this.out.kind = this.w.lost() ? 'lostLeadership' : this.out.errors > 0 ? 'retry' : 'ok';
    this.end(this.out);
  }

  private async run(step: Step): Promise<void> {
    try {
      const landed = await this.w.one(step, this.out);
      this.hooks.settled?.(step);
      if (landed && this.hooks.follow) this.first.push(...this.hooks.follow(step));
    } catch (err) {
      // A hook that throws is a bug; counted as this step's failure so the pass retries, never an unhandled rejection.
      this.out.errors++;
      this.out.failures.push({ step, err });
    } finally {
      this.active--;
      this.pump();
    }
  }
}
