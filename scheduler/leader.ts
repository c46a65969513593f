// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: try every retry
// period; the leader renews and steps down when it has not renewed within the renew deadline;
// a standby takes over when the record has not changed for a lease duration (measured on its
// own clock, so clock skew between replicas does not matter). Writes carry the
// resourceVersion read, so two replicas racing get one success and one 409.
//
// A leader must stop writing on its own clock, not when the apiserver tells it: a replica that
// was frozen (SIGSTOP, a long GC pause) or cut off cannot hear that it lost. So leadership is
// valid until the send time of the last successful renew plus the renew deadline (shorter than
// the lease duration a standby waits, measured from when it saw that renew), every Lease
// request times out well inside the renew deadline, and a timer steps down at the deadline
// even while a request hangs.
import { ApiException, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { withSignal } from './kubeclient.js';
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { Logger } from '../lib/logger.js';

export interface LeaseRecord {
  holder: string;
  /** ms since epoch */
  renewTime: number;
  acquireTime: number;
  durationSeconds: number;
  transitions: number;
  resourceVersion?: string;
}

/** The Lease as a port, so the election is tested without an apiserver. */
export interface LeaseStore {
  get(signal: AbortSignal): Promise<LeaseRecord | null>;
  /** Creates the Lease; false when it already exists. */
  create(record: LeaseRecord, signal: AbortSignal): Promise<boolean>;
  /** Replaces it if unchanged since read (resourceVersion); false on conflict. */
  update(record: LeaseRecord, signal: AbortSignal): Promise<boolean>;
}

export interface ElectionConfig {
  identity: string;
  leaseMs: number;
  renewDeadlineMs: number;
  retryMs: number;
  /** Timeout of one Lease request (default: half the renew deadline). */
  requestTimeoutMs?: number;
}

class LeaseRequestTimeout extends Error {
  constructor(ms: number) {
    super(`lease request took longer than ${ms} ms`);
  }
}

export interface ElectorDeps {
  clock: Clock;
  log: Logger;
  /** Told each time this replica starts or stops leading. */
  onChange(leading: boolean): void;
}

export class LeaderElector {
  private leading = false;
  private lastRenew = 0;
  private observed: { key: string; at: number } | null = null;
  private record: LeaseRecord | null = null;
  /** Aborts the pending step-down timer when a renew extends the deadline. */
  private expiry: AbortController | null = null;
  /** How long the last round took (ms): the retry period starts when a round ends. */
  private lastRoundMs = 0;
  /** The round on the wire, if any: a release waits for it. */
  private inFlight: Promise<void> | null = null;
  /** Set by release(): no further round, and no round makes this replica leader again. */
  private released = false;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    private readonly store: LeaseStore,
    private readonly cfg: ElectionConfig,
    private readonly deps: ElectorDeps,
  ) {
    this.clock = deps.clock;
    this.log = deps.log;
  }

  isLeader(): boolean {
    return this.leading && this.clock.now() < this.validUntil();
  }

  /**
   * Until when (ms, this replica's clock) it may write as the leader: the send time of its last
   * successful renew plus the renew deadline; 0 when not leading.
   */
  validUntil(): number {
    return this.leading ? this.lastRenew + this.cfg.renewDeadlineMs : 0;
  }

  /**
   * Rounds until signal aborts, one retry period apart counted from the end of a round (as
   * client-go's sliding JitterUntil), so a slow Lease request does not bring the next one closer.
   */
  async run(signal: AbortSignal): Promise<void> {
    await every(
      this.clock,
      () => this.cfg.retryMs + this.lastRoundMs,
      signal,
      async () => {
        const started = this.clock.now();
        await this.tick();
        this.lastRoundMs = this.clock.now() - started;
      },
    );
    this.expiry?.abort();
  }

  /** One round: acquire or renew; none once released. Exposed for tests. */
  async tick(): Promise<void> {
    if (this.released) return;
    const round = this.round();
    this.inFlight = round;
    try {
      await round;
    } finally {
      if (this.inFlight === round) this.inFlight = null;
    }
  }

  private async round(): Promise<void> {
    // The send time, not the answer's: a standby starts its lease-duration wait no earlier
    // than the apiserver stored this renew, which is after we sent it.
    const now = this.clock.now();
    try {
      this.record = null;
      const ok = await this.withTimeout((signal) => this.tryAcquireOrRenew(now, signal));
      if (ok && !this.released && this.clock.now() - now < this.cfg.renewDeadlineMs) {
        this.lastRenew = now;
        this.set(true);
        this.armExpiry();
        return;
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'leader election: lease request failed');
    }
    const lostTo = this.record && this.record.holder !== this.cfg.identity && this.record.holder !== '' ? this.record.holder : null;
    if (this.leading && lostTo) {
      this.log.warn({ holder: lostTo }, 'another replica holds the lease; stepping down');
      this.set(false);
    } else if (this.leading && this.clock.now() - this.lastRenew > this.cfg.renewDeadlineMs) {
      this.log.warn('could not renew the lease within the renew deadline; stepping down');
      this.set(false);
    } else if (!this.leading) {
      this.set(false);
    }
  }

  /** Runs one Lease request with a timeout shorter than the renew deadline. */
  private async withTimeout<T>(request: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ms = this.cfg.requestTimeoutMs ?? Math.max(1, Math.floor(this.cfg.renewDeadlineMs / 2));
    const ctl = new AbortController();
    const timer = new AbortController();
    const timedOut = this.clock.sleep(ms, timer.signal).then(
      () => {
        ctl.abort(new LeaseRequestTimeout(ms));
        throw new LeaseRequestTimeout(ms);
      },
      () => undefined as never,
    );
    try {
      return await Promise.race([request(ctl.signal), timedOut]);
    } finally {
      timer.abort();
    }
  }

  /** Steps down at the deadline unless a renew moved it: a hanging request cannot delay that. */
  private armExpiry(): void {
    this.expiry?.abort();
    const ctl = new AbortController();
    this.expiry = ctl;
    const deadline = this.validUntil();
    this.clock
      .sleep(Math.max(0, deadline - this.clock.now()), ctl.signal)
      .then(() => {
        if (this.leading && this.clock.now() >= this.validUntil()) {
          this.log.warn(
            { renewDeadlineMs: this.cfg.renewDeadlineMs },
            'lease not renewed within the renew deadline (own clock); stepping down',
          );
          this.set(false);
        }
      })
      .catch(() => undefined);
  }

  private async tryAcquireOrRenew(now: number, signal: AbortSignal): Promise<boolean> {
    const current = await this.store.get(signal);
    const mine: LeaseRecord = {
      holder: this.cfg.identity,
      renewTime: now,
      acquireTime: now,
      durationSeconds: Math.max(1, Math.ceil(this.cfg.leaseMs / 1000)),
      transitions: 0,
    };
    if (!current) return this.store.create(mine, signal);
    const key = `${current.holder}|${current.renewTime}|${current.resourceVersion ?? ''}`;
    if (!this.observed || this.observed.key !== key) this.observed = { key, at: now };
    this.record = current;
    if (current.holder === this.cfg.identity) {
      return this.store.update({ ...current, renewTime: now, durationSeconds: mine.durationSeconds }, signal);
    }
    const expired = current.holder === '' || now - this.observed.at >= this.cfg.leaseMs;
    if (!expired) return false;
    this.log.info({ previous: current.holder || '(released)' }, 'lease expired; taking over');
    return this.store.update(
      { ...mine, transitions: current.transitions + 1, ...(current.resourceVersion ? { resourceVersion: current.resourceVersion } : {}) },
      signal,
    );
  }

  private set(leading: boolean): void {
    if (!leading) {
      this.expiry?.abort();
      this.expiry = null;
    }
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info({ leading, identity: this.cfg.identity }, leading ? 'became leader' : 'lost leadership');
    this.deps.onChange(leading);
  }

  /**
   * Gives the lease up at shutdown so a standby takes over at once. It stops leading at once and
   * starts no further round; a renew already on the wire lands first (its answer no longer makes
   * it leader), so the release is written over it instead of failing on its resourceVersion.
   */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.released = true;
    this.set(false);
    await this.inFlight;
    try {
      const current = await this.withTimeout((signal) => this.store.get(signal));
      if (current && current.holder === this.cfg.identity) {
        await this.withTimeout((signal) =>
          this.store.update({ ...current, holder: '', durationSeconds: 1, renewTime: this.clock.now() }, signal),
        );
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not release the lease');
    }
  }

  holder(): string | undefined {
    return this.record?.holder;
  }
}

/** What the scope needs to run an election; null runs without one (--leader-elect=false). */
export interface Election {
  store: LeaseStore;
  cfg: ElectionConfig;
  log: Logger;
}

/**
 * Leadership as the rest of the scheduler sees it. Writes run under `current()`, a signal that
 * is aborted the moment the elector says leadership ended; `isLeader()` also ends on this
 * replica's own clock at the Lease's renew deadline, whatever the apiserver has (not yet) told
 * it, so a frozen or cut-off leader stops writing before a standby may take over.
 */
export class LeaderScope {
  private scope: AbortController | null = null;
  private elector: LeaderElector | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly onChange: (leading: boolean) => void,
  ) {}

  /** Runs the election until signal aborts; without one, leads at once. */
  run(election: Election | null, signal: AbortSignal): Promise<void> {
    if (!election) {
      this.set(true);
      return Promise.resolve();
    }
    this.elector = new LeaderElector(election.store, election.cfg, { clock: this.clock, log: election.log, onChange: (l) => this.set(l) });
    return this.elector.run(signal);
  }

  /** The signal this replica writes under while it leads, or null. */
  current(): AbortSignal | null {
    return this.scope && !this.scope.signal.aborted ? this.scope.signal : null;
  }

  /** Until when (ms, own clock) writes are allowed: the Lease's renew deadline; no end without election. */
  validUntil(): number {
    return this.elector ? this.elector.validUntil() : Infinity;
  }

  isLeader(): boolean {
    return this.current() !== null && this.clock.now() < this.validUntil();
  }

  /** At shutdown: hands the Lease over first (unless a crash is simulated), then ends the scope. */
  async stop(releaseLease: boolean): Promise<void> {
    if (releaseLease) await this.elector?.release();
    this.scope?.abort();
  }

  private set(leading: boolean): void {
    if (leading) {
      this.scope = new AbortController();
    } else {
      this.scope?.abort();
      this.scope = null;
    }
    this.onChange(leading);
  }
}

/**
 * A MicroTime for the wire. client-node 1.4 types MicroTime fields as Date but has no
 * serializer for them, so a Date goes out through JSON.stringify with milliseconds, which the
 * apiserver refuses (it wants six fractional digits). Its serializer passes strings through.
 */
function microTime(ms: number): Date {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

/** The Lease store over coordination.k8s.io/v1. */
export function kubeLeaseStore(api: CoordinationV1Api, namespace: string, name: string): LeaseStore {
  const toRecord = (lease: V1Lease): LeaseRecord => ({
    holder: lease.spec?.holderIdentity ?? '',
    renewTime: lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0,
    acquireTime: lease.spec?.acquireTime ? new Date(lease.spec.acquireTime).getTime() : 0,
    durationSeconds: lease.spec?.leaseDurationSeconds ?? 0,
    transitions: lease.spec?.leaseTransitions ?? 0,
    ...(lease.metadata?.resourceVersion ? { resourceVersion: lease.metadata.resourceVersion } : {}),
  });
  const toLease = (r: LeaseRecord): V1Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(r.resourceVersion ? { resourceVersion: r.resourceVersion } : {}) },
    spec: {
      holderIdentity: r.holder,
      leaseDurationSeconds: r.durationSeconds,
      renewTime: microTime(r.renewTime),
      acquireTime: microTime(r.acquireTime),
      leaseTransitions: r.transitions,
    },
  });
  const code = (err: unknown): number | undefined => (err instanceof ApiException ? err.code : undefined);
  return {
    async get(signal) {
      try {
        return toRecord(await api.readNamespacedLease({ name, namespace }, withSignal(signal)));
      } catch (err) {
        if (code(err) === 404) return null;
        throw err;
      }
    },
    async create(record, signal) {
      try {
        await api.createNamespacedLease({ namespace, body: toLease(record) }, withSignal(signal));
        return true;
      } catch (err) {
        if (code(err) === 409) return false;
        throw err;
      }
    },
    async update(record, signal) {
      try {
        await api.replaceNamespacedLease({ name, namespace, body: toLease(record) }, withSignal(signal));
        return true;
      } catch (err) {
        if (code(err) === 409) return false;
        throw err;
      }
    },
  };
}
