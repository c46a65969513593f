// The scheduler's one port to Kubernetes: what it lists and watches into its caches, the writes
// it makes, and the Lease it elects its leader on. main builds the real one from the kubeconfig;
// unit tests pass an in-memory one (test/support/memorykube.ts), so the whole scheduler,
// failover and leadership included, runs without an apiserver.
import type { KubeConfig } from '@kubernetes/client-node';
import { PLURAL } from '../api/types.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { kubeFor, type KubeWrites } from './kube.js';
import { kubeLeaseStore, type LeaseStore } from './leader.js';
import { listWatch, type Listed, type PageRequest, type Parsed, type Store } from './watch.js';

/** The resources the scheduler caches. */
export type Watched = 'services' | 'nodes' | 'endpointslices' | 'ipnodes' | 'ipclaims' | 'ipclaimpools';

/** Where one list+watch puts what it sees. */
export interface WatchSink<T> {
  store: Store<T>;
  /** Raw object -> store entry; null leaves it out. */
  parse(raw: unknown): Parsed<T> | null;
  /** After any change to the store from the API. */
  onChange(): void;
  onError(err: unknown): void;
}

export interface SchedulerKube {
  /** Lists the resource into the sink's store, then keeps it current from a watch, until signal aborts. */
  listWatch<T>(what: Watched, sink: WatchSink<T>, signal: AbortSignal): Promise<void>;
  writes: KubeWrites;
  /** The Lease named namespace/name. */
  lease(namespace: string, name: string): LeaseStore;
}

/**
 * The real port: keep-alive clients from the kubeconfig, list+watch restarted with backoff
 * (watch.ts). writesInFlight (the reconcile's concurrency) sizes the connection pool so the
 * Lease renewal and the Events never queue behind a pass's writes for a socket.
 */
export function kubePort(kc: KubeConfig, opts: { clock: Clock; log: Logger; writesInFlight?: number }): SchedulerKube {
  const kube = kubeFor(kc, 'ipcontroller-scheduler', Math.max(32, (opts.writesInFlight ?? 0) + 16));
  const custom = (plural: string) => (page: PageRequest) => kube.lists.custom(plural, page);
  const sources: Record<Watched, { path: string; list(page: PageRequest): Promise<Listed> }> = {
    services: { path: '/api/v1/services', list: kube.lists.services },
    nodes: { path: '/api/v1/nodes', list: kube.lists.nodes },
    endpointslices: { path: '/apis/discovery.k8s.io/v1/endpointslices', list: kube.lists.slices },
    ipnodes: { path: kube.clients.nodes.watchPath, list: custom(PLURAL.IpNode) },
    ipclaims: { path: kube.clients.claims.watchPath, list: custom(PLURAL.IpClaim) },
    ipclaimpools: { path: kube.clients.pools.watchPath, list: custom(PLURAL.IpClaimPool) },
  };
  return {
    listWatch: (what, sink, signal) =>
      listWatch({ what, ...sources[what], ...sink, kubeConfig: kc, clock: opts.clock, log: opts.log }, signal),
    writes: kube.writes,
    lease: (namespace, name) => kubeLeaseStore(kube.coordination, namespace, name),
  };
}
