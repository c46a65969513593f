// An apiserver in Maps, for unit tests of the scheduler: resourceVersions, 409 on stale writes
// and on create of an existing name, watches that deliver every change after the write returns
// (as a real watch does), and Leases. `port(identity)` is one replica's Kube port
// (scheduler/kubeport.ts), so startScheduler runs whole against it, several replicas on one
// "cluster": every call a replica makes is recorded with its identity, and `cutOff(identity)`
// black-holes that replica's Lease requests (a partition, a frozen apiserver).
import { ApiException } from '@kubernetes/client-node';
import { nextClaimStatus } from '../../agent/status.js';
import {
  AGENT_NODE_LABEL,
  API_VERSION,
  NodeCondition,
  type Condition,
  type IpClaim,
  type IpClaimPool,
  type IpClaimPoolStatus,
  type IpClaimStatus,
  type IpNode,
  type ProbeReport,
} from '../../api/types.js';
import type { CoreEvent, KubeWrites } from '../../scheduler/kube.js';
import type { SchedulerKube, Watched, WatchSink } from '../../scheduler/kubeport.js';
import type { LeaseRecord, LeaseStore } from '../../scheduler/leader.js';
import type { Parsed } from '../../scheduler/watch.js';

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const conflict = (): ApiException<string> => new ApiException(409, 'Conflict', 'the object has been modified', {});
const hangUntil = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

/** An in-memory Lease with resourceVersion semantics. */
export class MemoryLease implements LeaseStore {
  record: LeaseRecord | null = null;
  private rv = 0;
  down = false;
  /** Requests never answer (a black-holed connection) until the signal aborts them. */
  hang = false;
  async get(signal: AbortSignal): Promise<LeaseRecord | null> {
    if (this.hang) await hangUntil(signal);
    if (this.down) throw new Error('apiserver unreachable');
    return this.record ? { ...this.record } : null;
  }
  async create(r: LeaseRecord): Promise<boolean> {
    if (this.down) throw new Error('apiserver unreachable');
    if (this.record) return false;
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return true;
  }
  async update(r: LeaseRecord): Promise<boolean> {
    if (this.down) throw new Error('apiserver unreachable');
    if (!this.record || r.resourceVersion !== this.record.resourceVersion) return false;
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return true;
  }
}

type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface Watcher {
  what: Watched;
  deliver(type: WatchType, raw: unknown): void;
}
/** Resources a test writes as raw objects (the scheduler only reads them). */
type Raw = 'services' | 'nodes' | 'endpointslices' | 'ipnodes';

const meta = (raw: unknown): { name?: string; namespace?: string } =>
  ((raw as { metadata?: { name?: string; namespace?: string } } | null)?.metadata ?? {}) as { name?: string; namespace?: string };
const keyOf = (raw: unknown): string => {
  const m = meta(raw);
  return m.namespace ? `${m.namespace}/${m.name ?? ''}` : (m.name ?? '');
};

export class MemoryKube implements KubeWrites {
  rv = 100;
  claims = new Map<string, IpClaim>();
  pools = new Map<string, IpClaimPool>();
  ingress = new Map<string, Array<{ ip: string; ipMode?: string }>>();
  /** Services as the apiserver has them (raw), for getService and the Service watch. */
  services = new Map<string, unknown>();
  nodes = new Map<string, unknown>();
  slices = new Map<string, unknown>();
  ipNodes = new Map<string, unknown>();
  events: CoreEvent[] = [];
  log: string[] = [];
  /** Every call through a port, with the replica that made it (reads included: filter on `method`). */
  calls: Array<{ by: string; method: string }> = [];
  conditions = new Map<string, Condition>();
  failPoolWrites = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly leases = new Map<string, MemoryLease>();
  private readonly cut = new Set<string>();

  /** One replica's Kube port onto this cluster. */
  port(identity: string): SchedulerKube {
    return {
      listWatch: (what, sink, signal) => this.listWatch(what, sink, signal),
      writes: this.recorded(identity),
      lease: (namespace, name) => this.leaseFor(identity, `${namespace}/${name}`),
    };
  }

  /** From now on the replica's Lease requests hang until they time out (its writes still pass). */
  cutOff(identity: string): void {
    this.cut.add(identity);
  }

  /** Calls of a replica that write (everything but get*). */
  writesBy(identity: string): string[] {
    return this.calls.filter((c) => c.by === identity && !c.method.startsWith('get')).map((c) => c.method);
  }

  // --- what a test (or an agent) writes -----------------------------------------------------------

  /** Creates or replaces a raw object the scheduler only reads; the watch tells the scheduler. */
  put(what: Raw, raw: unknown): void {
    const map = this.rawMap(what);
    const key = keyOf(raw);
    const stored = clone(raw) as { metadata: Record<string, unknown> };
    stored.metadata = { ...stored.metadata, resourceVersion: this.next() };
    const type = map.has(key) ? 'MODIFIED' : 'ADDED';
    map.set(key, stored);
    this.changed(what, type, stored);
  }

  remove(what: Raw, key: string): void {
    const map = this.rawMap(what);
    const cur = map.get(key) as { metadata: Record<string, unknown> } | undefined;
    if (!cur) return;
    map.delete(key);
    this.changed(what, 'DELETED', { ...cur, metadata: { ...cur.metadata, resourceVersion: this.next() } });
  }

  putPool(pool: IpClaimPool): void {
    const stored = { ...clone(pool), metadata: { ...pool.metadata, resourceVersion: this.next() } };
    const type = this.pools.has(pool.metadata.name ?? '') ? 'MODIFIED' : 'ADDED';
    this.pools.set(pool.metadata.name ?? '', stored);
    this.changed('ipclaimpools', type, stored);
  }

  /** A labelled Node and the IpNode of a Ready agent on it, heartbeating at `now`. */
  putAgentNode(name: string, now: number, probeAddress = '198.51.100.1'): void {
    this.put('nodes', { metadata: { name, labels: { [AGENT_NODE_LABEL]: '' } }, status: { addresses: [] } });
    const at = new Date(now).toISOString();
    const ipNode: IpNode = {
      apiVersion: API_VERSION,
      kind: 'IpNode',
      metadata: { name },
      spec: { probeAddress, probePort: 9612 },
      status: {
        renewTime: at,
        conditions: [{ type: NodeCondition.Ready, status: 'True', reason: 'Ready', message: '', lastTransitionTime: at }],
      },
    };
    this.put('ipnodes', ipNode);
  }

  /** What the agent on the claim's node writes once the address is up there. */
  agentReportsUp(name: string, at: string): IpClaim {
    const cur = this.claims.get(name);
    if (!cur) throw new Error(`no claim ${name}`);
    const status = nextClaimStatus(
      { kind: 'up', ip: cur.spec.cidr.split('/')[0] ?? '', iface: 'eth0' },
      { node: cur.spec.nodeName ?? '', nowIso: at, current: cur.status, claim: cur },
    );
    const stored = { ...cur, status: { ...cur.status, ...status }, metadata: { ...cur.metadata, resourceVersion: this.next() } };
    this.storeClaim(stored, 'MODIFIED');
    return clone(stored);
  }

  // --- KubeWrites ---------------------------------------------------------------------------------

  async createClaim(claim: IpClaim): Promise<IpClaim> {
    const name = claim.metadata.name ?? '';
    this.log.push(`create ${name}`);
    if (this.claims.has(name)) throw conflict();
    const rv = this.next();
    return clone(this.storeClaim({ ...clone(claim), metadata: { ...claim.metadata, resourceVersion: rv, uid: `uid-${rv}` } }, 'ADDED'));
  }
  async replaceClaim(claim: IpClaim): Promise<IpClaim> {
    const name = claim.metadata.name ?? '';
    this.log.push(`replace ${name}`);
    const cur = this.claims.get(name);
    if (!cur || cur.metadata.resourceVersion !== claim.metadata.resourceVersion) throw conflict();
    return clone(this.storeClaim({ ...clone(claim), metadata: { ...claim.metadata, resourceVersion: this.next() } }, 'MODIFIED'));
  }
  async deleteClaim(name: string, pre: { uid: string; resourceVersion: string }): Promise<void> {
    this.log.push(`delete ${name}`);
    const cur = this.claims.get(name);
    if (cur && (cur.metadata.uid !== pre.uid || cur.metadata.resourceVersion !== pre.resourceVersion)) throw conflict();
    this.claims.delete(name);
    if (cur) this.changed('ipclaims', 'DELETED', { ...cur, metadata: { ...cur.metadata, resourceVersion: this.next() } });
  }
  async getService(namespace: string, name: string): Promise<unknown> {
    return this.services.get(`${namespace}/${name}`) ?? null;
  }
  async getClaim(name: string): Promise<IpClaim | null> {
    const c = this.claims.get(name);
    return c ? clone(c) : null;
  }
  async patchClaimStatus(name: string, status: IpClaimStatus, resourceVersion: string): Promise<IpClaim> {
    this.log.push(`claim-status ${name}`);
    const cur = this.claims.get(name);
    if (!cur) throw new ApiException(404, 'NotFound', '', {});
    if (cur.metadata.resourceVersion !== resourceVersion) throw conflict();
    return clone(this.storeClaim({ ...cur, status, metadata: { ...cur.metadata, resourceVersion: this.next() } }, 'MODIFIED'));
  }
  async getPool(name: string): Promise<IpClaimPool | null> {
    const p = this.pools.get(name);
    return p ? clone(p) : null;
  }
  async replacePoolStatus(pool: IpClaimPool): Promise<IpClaimPool> {
    const name = pool.metadata.name ?? '';
    this.log.push(`pool-status ${name}`);
    const cur = this.pools.get(name);
    if (this.failPoolWrites > 0) {
      this.failPoolWrites--;
      if (cur) this.storePool({ ...cur, metadata: { ...cur.metadata, resourceVersion: this.next() } }); // someone else wrote
      throw conflict();
    }
    if (!cur || cur.metadata.resourceVersion !== pool.metadata.resourceVersion) throw conflict();
    return clone(
      this.storePool({ ...cur, status: clone(pool.status), metadata: { ...cur.metadata, resourceVersion: this.next() } } as IpClaimPool),
    );
  }
  async patchPoolStatusRaw(name: string, status: IpClaimPoolStatus): Promise<void> {
    this.log.push(`pool-status-raw ${name}`);
    void status;
  }
  async setPoolFinalizers(name: string, resourceVersion: string, finalizers: string[]): Promise<unknown> {
    this.log.push(`pool-finalizers ${name} [${finalizers.join(',')}]`);
    const cur = this.pools.get(name);
    if (!cur || cur.metadata.resourceVersion !== resourceVersion) throw conflict();
    if (finalizers.length === 0 && cur.metadata.deletionTimestamp) {
      this.pools.delete(name);
      this.changed('ipclaimpools', 'DELETED', { ...cur, metadata: { ...cur.metadata, resourceVersion: this.next() } });
      return clone(cur);
    }
    return clone(this.storePool({ ...cur, metadata: { ...cur.metadata, finalizers, resourceVersion: this.next() } } as IpClaimPool));
  }
  async patchServiceIngress(
    namespace: string,
    name: string,
    _rv: string,
    ingress: Array<{ ip: string; ipMode?: string }>,
  ): Promise<unknown> {
    this.log.push(`ingress ${namespace}/${name}`);
    this.ingress.set(`${namespace}/${name}`, ingress);
    return this.patchService(namespace, name, { spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress } } });
  }
  async patchServiceExternalIPs(namespace: string, name: string, _rv: string, externalIPs: string[]): Promise<unknown> {
    this.log.push(`externalIPs ${namespace}/${name}`);
    return this.patchService(namespace, name, { spec: { type: 'ClusterIP', externalIPs } });
  }
  async createEvent(event: CoreEvent): Promise<void> {
    this.events.push(event);
  }
  async patchServiceCondition(namespace: string, name: string, condition: Condition): Promise<unknown> {
    this.log.push(`condition ${namespace}/${name} ${condition.status} ${condition.reason}`);
    this.conditions.set(`${namespace}/${name}`, condition);
    const ingress = this.ingress.get(`${namespace}/${name}`) ?? [];
    return this.patchService(namespace, name, {
      spec: { type: 'LoadBalancer' },
      status: { loadBalancer: { ingress }, conditions: [condition] },
    });
  }
  async patchIpNodeProbe(name: string, probe: ProbeReport): Promise<void> {
    this.log.push(`probe ${name} ${probe.consecutiveFailures}`);
  }

  // --- internals ----------------------------------------------------------------------------------

  private next(): string {
    return String(++this.rv);
  }

  /**
   * A Service the test put is patched in place (spec and status merged) and watched; one it did
   * not put comes back as the bare object the patch describes, as the reconciler tests expect.
   */
  private patchService(
    namespace: string,
    name: string,
    patch: { spec: Record<string, unknown>; status?: Record<string, unknown> },
  ): unknown {
    const key = `${namespace}/${name}`;
    const cur = this.services.get(key) as { metadata: Record<string, unknown>; spec?: object; status?: object } | undefined;
    if (!cur) return { metadata: { name, namespace, resourceVersion: this.next(), uid: 'u' }, ...patch };
    const { type: _type, ...spec } = patch.spec;
    const stored = {
      ...cur,
      metadata: { ...cur.metadata, resourceVersion: this.next() },
      spec: { ...cur.spec, ...spec },
      status: { ...cur.status, ...patch.status },
    };
    this.services.set(key, stored);
    this.changed('services', 'MODIFIED', stored);
    return clone(stored);
  }

  private storeClaim(claim: IpClaim, type: WatchType): IpClaim {
    this.claims.set(claim.metadata.name ?? '', claim);
    this.changed('ipclaims', type, claim);
    return claim;
  }

  private storePool(pool: IpClaimPool): IpClaimPool {
    this.pools.set(pool.metadata.name ?? '', pool);
    this.changed('ipclaimpools', 'MODIFIED', pool);
    return pool;
  }

  private rawMap(what: Raw): Map<string, unknown> {
    switch (what) {
      case 'services':
        return this.services;
      case 'nodes':
        return this.nodes;
      case 'endpointslices':
        return this.slices;
      case 'ipnodes':
        return this.ipNodes;
    }
  }

  private listed(what: Watched): unknown[] {
    if (what === 'ipclaims') return [...this.claims.values()];
    if (what === 'ipclaimpools') return [...this.pools.values()];
    return [...this.rawMap(what).values()];
  }

  /** Tells every watch of the resource, after the write has returned (a macrotask later). */
  private changed(what: Watched, type: WatchType, raw: unknown): void {
    const copy = clone(raw);
    setImmediate(() => {
      for (const w of this.watchers) if (w.what === what) w.deliver(type, copy);
    });
  }

  private async listWatch<T>(what: Watched, sink: WatchSink<T>, signal: AbortSignal): Promise<void> {
    await Promise.resolve();
    if (signal.aborted) return;
    const items = this.listed(what)
      .map((raw) => sink.parse(clone(raw)))
      .filter((p): p is Parsed<T> => p !== null);
    if (sink.store.replaceAll(items) || items.length === 0) sink.onChange();
    const watcher: Watcher = {
      what,
      deliver: (type, raw) => {
        const p = sink.parse(raw);
        if (!p) return;
        const changed = type === 'DELETED' ? sink.store.remove(p.key, p.rv) : sink.store.upsert(p.key, p.value, p.rv);
        if (changed) sink.onChange();
      },
    };
    this.watchers.add(watcher);
    await hangUntil(signal).catch(() => undefined);
    this.watchers.delete(watcher);
  }

  private leaseFor(identity: string, key: string): LeaseStore {
    const lease = this.leases.get(key) ?? new MemoryLease();
    this.leases.set(key, lease);
    const reachable = async (signal: AbortSignal): Promise<void> => {
      if (this.cut.has(identity)) await hangUntil(signal);
    };
    return {
      get: async (signal) => (await reachable(signal), lease.get(signal)),
      create: async (record, signal) => (await reachable(signal), lease.create(record)),
      update: async (record, signal) => (await reachable(signal), lease.update(record)),
    };
  }

  /** The KubeWrites of one replica: each call recorded with its identity, then made. */
  private recorded(identity: string): KubeWrites {
    return new Proxy<KubeWrites>(this, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]): unknown => {
          this.calls.push({ by: identity, method: String(prop) });
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }
}
