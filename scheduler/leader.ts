// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: try every retry
// period; the leader renews and steps down when it has not renewed within the renew deadline;
// a standby takes over when the record has not changed for a lease duration (measured on its
// own clock, so clock skew between replicas does not matter). Writes carry the
// resourceVersion read, so two replicas racing get one success and one 409.
import { ApiException, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Clock } from '../lib/clock.js';
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
  get(): Promise<LeaseRecord | null>;
  /** Creates the Lease; false when it already exists. */
  create(record: LeaseRecord): Promise<boolean>;
  /** Replaces it if unchanged since read (resourceVersion); false on conflict. */
  update(record: LeaseRecord): Promise<boolean>;
}

export interface ElectionConfig {
  identity: string;
  leaseMs: number;
  renewDeadlineMs: number;
  retryMs: number;
}

export class LeaderElector {
  private leading = false;
  private lastRenew = 0;
  private observed: { key: string; at: number } | null = null;
  private record: LeaseRecord | null = null;

  constructor(
    private readonly store: LeaseStore,
    private readonly cfg: ElectionConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onChange: (leading: boolean) => void,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.tick();
      try {
        await this.clock.sleep(this.cfg.retryMs, signal);
      } catch {
        break;
      }
    }
  }

  /** One round: acquire or renew. Exposed for tests. */
  async tick(): Promise<void> {
    const now = this.clock.now();
    try {
      this.record = null;
    const ok = await this.tryAcquireOrRenew(now);
      if (ok) {
        this.lastRenew = now;
        this.set(true);
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

  private async tryAcquireOrRenew(now: number): Promise<boolean> {
    const current = await this.store.get();
    const mine: LeaseRecord = {
      holder: this.cfg.identity,
      renewTime: now,
      acquireTime: now,
      durationSeconds: Math.max(1, Math.ceil(this.cfg.leaseMs / 1000)),
      transitions: 0,
    };
    if (!current) return this.store.create(mine);
    const key = `${current.holder}|${current.renewTime}|${current.resourceVersion ?? ''}`;
    if (!this.observed || this.observed.key !== key) this.observed = { key, at: now };
    this.record = current;
    if (current.holder === this.cfg.identity) {
      return this.store.update({ ...current, renewTime: now, durationSeconds: mine.durationSeconds });
    }
    const expired = current.holder === '' || now - this.observed.at >= this.cfg.leaseMs;
    if (!expired) return false;
    this.log.info({ previous: current.holder || '(released)' }, 'lease expired; taking over');
    return this.store.update({ ...mine, transitions: current.transitions + 1, ...(current.resourceVersion ? { resourceVersion: current.resourceVersion } : {}) });
  }

  private set(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info({ leading, identity: this.cfg.identity }, leading ? 'became leader' : 'lost leadership');
    this.onChange(leading);
  }

  /** Gives the lease up at shutdown so a standby takes over at once. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.set(false);
    try {
      const current = await this.store.get();
      if (current && current.holder === this.cfg.identity) {
        await this.store.update({ ...current, holder: '', durationSeconds: 1, renewTime: this.clock.now() });
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not release the lease');
    }
  }

  holder(): string | undefined {
    return this.record?.holder;
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
    async get() {
      try {
        return toRecord(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (code(err) === 404) return null;
        throw err;
      }
    },
    async create(record) {
      try {
        await api.createNamespacedLease({ namespace, body: toLease(record) });
        return true;
      } catch (err) {
        if (code(err) === 409) return false;
        throw err;
      }
    },
    async update(record) {
      try {
        await api.replaceNamespacedLease({ name, namespace, body: toLease(record) });
        return true;
      } catch (err) {
        if (code(err) === 409) return false;
        throw err;
      }
    },
  };
}
