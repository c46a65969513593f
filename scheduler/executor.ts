// Makes the writes of a plan (plan.ts), a bounded number at a time, and says how it went as a
// value: ok, retry (some writes failed; a later pass retries them) or lostLeadership (this
// replica could no longer prove it holds the Lease: nothing more was written).
//
// Every write is preceded by the leadership check on this replica's own clock (guard), and
// carries its precondition (uid + resourceVersion on claim deletes, resourceVersion on
// replaces and status patches), so a stale writer's write fails instead of landing. Each
// written object goes into the cache at once (write-through); a 409 on a claim heals the
// cache from a quorum read (Store.take), so the next plan does not repeat the write.
import { hasStatus, isConflict } from '../api/client.js';
import type { IpClaim, IpClaimPool } from '../api/types.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { parsePoolEntry, parseServiceEntry, type KubeWrites } from './kube.js';
import type { SchedulerMetrics } from './metrics.js';
import { STAGE, type Step, type Write } from './plan.js';
import type { Caches } from './reconciler.js';
import { StepRun, type RunHandle, type RunHooks, type RunResult } from './steprun.js';

export type RunKind = RunResult['kind'];
export type { RunHandle, RunHooks, RunResult };

export interface Failure {
  step: Step;
  err: unknown;
}

export interface ExecutorDeps {
  caches: Caches;
  writes: KubeWrites;
  metrics: SchedulerMetrics;
  log: Logger;
  clock: Clock;
  /** Writes in flight at once. */
  concurrency: number;
  /** Told once a step's write has landed (or at once when it has none). */
  tell(step: Step): void;
}

/**
 * What one write did: landed; had nothing to do after all (done, told); was not made because
 * what it was decided on turned out stale (kept: not done, nothing told, the next pass decides
 * again); or was not made because leadership was lost.
 */
type Done = 'written' | 'skipped' | 'kept' | 'lost';

const KEYS: Record<string, string> = {
  'claim-write': 'claim',
  'claim-delete': 'claim',
  'claim-status': 'claim',
  'pool-finalizer': 'pool',
  'pool-status': 'pool',
  'service-status': 'service',
  'service-condition': 'service',
};

/** One executor per pass: it stops for good once leadership is lost. */
export class Executor {
  private lost = false;

  constructor(
    private readonly d: ExecutorDeps,
    private readonly signal: AbortSignal,
    private readonly validUntil: () => number,
  ) {}

  get lostLeadership(): boolean {
    return this.lost;
  }

  /** The leadership check before every write: signal and own clock (the Lease's renew deadline). */
  private mayWrite(): boolean {
    if (this.signal.aborted || this.d.clock.now() >= this.validUntil()) this.lost = true;
    return !this.lost;
  }

  async run(steps: Step[], concurrency = this.d.concurrency): Promise<RunResult> {
    return this.start(steps, {}, concurrency).result;
  }

  /**
   * Starts a run whose queue may grow while it goes: follow(step) gives the steps that follow a
   * landed one (a Service's ingress after its claim), and add() puts in steps another lane
   * decided on; both go before the steps not started yet, so what follows a write is written
   * next. settled(step) hears of every step that ended (landed, kept or failed). The run ends
   * when nothing is queued, nothing is in flight and no hold() is left open.
   */
  start(steps: Step[], hooks: RunHooks = {}, concurrency = this.d.concurrency): RunHandle {
    return new StepRun(steps, hooks, { concurrency, one: (step, result) => this.one(step, result), lost: () => this.lost });
  }

  /** One step: its write (unless leadership is gone), counted and told; true when it landed (or had none). */
  private async one(step: Step, result: RunResult): Promise<boolean> {
    if (this.lost) return false;
    try {
      const done = step.write ? await this.perform(step.write) : 'skipped';
      if (done === 'lost' || done === 'kept') return false;
      if (done === 'written') {
        result.writes++;
        this.d.metrics.apiWrite(step.write?.kind ?? 'none');
      }
      result.done.add(step.key);
      this.d.tell(step);
      return true;
    } catch (err) {
      await this.failed(step, err, result);
      return false;
    }
  }

  private async failed(step: Step, err: unknown, result: RunResult): Promise<void> {
    const write = step.write as Write;
    const stage = STAGE[write.kind];
    if (isConflict(err) && stage.startsWith('claim')) await this.refreshClaim(step.key);
    result.errors++;
    result.failures.push({ step, err });
    this.d.metrics.reconcileError(stage);
    this.d.log.warn({ [KEYS[stage] ?? 'key']: step.key, err: String(err) }, `${stage} failed; will retry`);
  }

  private perform(w: Write): Promise<Done> {
    switch (w.kind) {
      case 'claim-create':
      case 'claim-replace':
        return this.writeClaim(w.kind, w.claim);
      case 'claim-delete':
        return this.deleteClaim(w.claim, w.confirm);
      case 'claim-status':
        return this.guarded(async () => {
          const written = await this.d.writes.patchClaimStatus(w.name, w.status, w.resourceVersion);
          this.d.caches.claims.upsert(w.name, written, written.metadata.resourceVersion ?? '');
        });
      case 'pool-finalizers':
        return this.guarded(async () => {
          const written = await this.d.writes.setPoolFinalizers(w.name, w.resourceVersion, w.finalizers);
          const parsed = w.releases ? null : parsePoolEntry(written);
          if (parsed) this.d.caches.pools.upsert(parsed.key, parsed.value, parsed.rv);
        });
      case 'pool-status':
        return this.writePoolStatus(w.name, w.change);
      case 'pool-status-raw':
        return this.guarded(async () => {
          await this.d.writes.patchPoolStatusRaw(w.name, w.patch);
          this.rememberRawStatus(w.name, w.status);
        });
      case 'service-ingress':
      case 'service-external-ips':
      case 'service-condition':
        return this.guarded(async () => this.cacheService(await this.writeService(w)));
    }
  }

  private async guarded(fn: () => Promise<void>): Promise<Done> {
    if (!this.mayWrite()) return 'lost';
    await fn();
    return 'written';
  }

  private async writeClaim(kind: 'claim-create' | 'claim-replace', claim: IpClaim): Promise<Done> {
    return this.guarded(async () => {
      const written = kind === 'claim-create' ? await this.d.writes.createClaim(claim) : await this.d.writes.replaceClaim(claim);
      this.d.caches.claims.upsert(claim.metadata.name ?? '', written, written.metadata.resourceVersion ?? '');
    });
  }

  /**
   * Deletes with the uid and resourceVersion it was decided on as preconditions: if the claim
   * changed since (another replica re-created or moved it), the delete fails instead of
   * removing a live claim. Removal from the cache is versioned: a newer claim of that name,
   * already delivered by the watch, stays.
   */
  private async deleteClaim(old: IpClaim, confirm: boolean): Promise<Done> {
    if (confirm && (await this.servicesStillExist(old))) return 'kept';
    const name = old.metadata.name ?? '';
    const rv = old.metadata.resourceVersion ?? '';
    return this.guarded(async () => {
      await this.d.writes.deleteClaim(name, { uid: old.metadata.uid ?? '', resourceVersion: rv });
      this.d.caches.claims.remove(name, rv);
    });
  }

  /**
   * A claim whose Services are all missing from the cache may name Services this replica has
   * not seen yet (created while it was frozen, or by another replica just before it took
   * over: the Services and claims watches are separate streams). Ask the apiserver before
   * deleting; a Service found is put in the cache and the next pass decides with it.
   */
  private async servicesStillExist(old: IpClaim): Promise<boolean> {
    let found = false;
    for (const key of old.spec.services ?? []) {
      const [namespace = '', name = ''] = key.split('/');
      const entry = parseServiceEntry(await this.d.writes.getService(namespace, name));
      if (!entry) continue;
      found = true;
      this.d.caches.services.upsert(entry.key, entry.value, entry.rv);
      this.d.log.info({ claim: old.metadata.name, service: key }, 'claim kept: its Service exists but was not in the cache yet');
    }
    return found;
  }

  async refreshClaim(name: string): Promise<void> {
    try {
      // A GET is a quorum read: it wins over anything cached that is not newer, tombstones
      // included, so a 409 on create always teaches the cache that the name is taken.
      const fresh = await this.d.writes.getClaim(name);
      if (fresh) this.d.caches.claims.take(name, fresh, fresh.metadata.resourceVersion ?? '');
      else this.d.caches.claims.remove(name);
    } catch {
      /* the watch will catch up */
    }
  }

  /** Read-modify-write of a pool's status with the resourceVersion; 409 re-reads and retries. */
  private async writePoolStatus(name: string, change: (pool: IpClaimPool) => IpClaimPool['status'] | null): Promise<Done> {
    const cached = this.d.caches.pools.get(name);
    let pool: IpClaimPool | null = cached?.ok ? cached.pool : null;
    for (let attempt = 0; attempt < 8; attempt++) {
      pool ??= await this.d.writes.getPool(name);
      if (!pool) return 'skipped';
      const status = change(pool);
      if (!status) return 'skipped';
      if (!this.mayWrite()) return 'lost';
      try {
        const written = await this.d.writes.replacePoolStatus({ ...pool, status });
        this.d.caches.pools.upsert(name, { ok: true, pool: written }, written.metadata.resourceVersion ?? '');
        return 'written';
      } catch (err) {
        if (!isConflict(err)) throw err;
        pool = null; // someone else wrote it: read again and re-apply the change
      }
    }
    throw new Error(`IpClaimPool ${name}: status kept conflicting`);
  }

  /**
   * The raw patch returns nothing to cache; keep what was written under the version read, so
   * the next pass does not write the same status again before the watch brings the new one
   * (which, being newer, replaces it).
   */
  private rememberRawStatus(name: string, status: NonNullable<IpClaimPool['status']>): void {
    const entry = this.d.caches.pools.get(name);
    if (!entry) return;
    const rv = (entry.ok ? entry.pool.metadata.resourceVersion : entry.metadata.resourceVersion) ?? '';
    this.d.caches.pools.take(name, entry.ok ? { ok: true, pool: { ...entry.pool, status } } : { ...entry, status }, rv);
  }

  private writeService(w: Extract<Write, { svc: unknown }>): Promise<unknown> {
    const { namespace, name, resourceVersion } = w.svc;
    switch (w.kind) {
      case 'service-ingress':
        return this.d.writes.patchServiceIngress(namespace, name, resourceVersion, w.ingress);
      case 'service-external-ips':
        return this.d.writes.patchServiceExternalIPs(namespace, name, resourceVersion, w.externalIPs);
      case 'service-condition':
        return this.d.writes.patchServiceCondition(namespace, name, w.condition);
    }
  }

  /** As the watch stores it (parseServiceEntry: only our annotations), since the watch's event for this same resourceVersion is then ignored. */
  private cacheService(written: unknown): void {
    const entry = parseServiceEntry(written);
    if (entry) this.d.caches.services.upsert(entry.key, entry.value, entry.rv);
  }
}

/** A 422 (Invalid): the apiserver refuses the object itself; sending it again unchanged cannot help. */
export const isInvalid = (err: unknown): boolean => hasStatus(err, 422);
