// What `kubectl ipcontroller` reads from the cluster, once per command (or per refresh with -w):
// the same objects the scheduler lists, parsed by the scheduler's own edge parsers, plus the
// leader Lease and a Service's Events. The only module of the plugin that does I/O.
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { PLURAL, type IpClaim, type IpNode } from '../api/types.js';
import {
  kubeFor,
  parseClaimEntry,
  parseIpNodeEntry,
  parseNodeEntry,
  parsePoolEntry,
  parseServiceEntry,
  parseSliceEntry,
  type NodeView,
  type PoolEntry,
  type SliceView,
} from '../scheduler/kube.js';
import type { ServiceView } from '../scheduler/service.js';
import type { Parsed } from '../scheduler/watch.js';

export interface LeaderView {
  holder: string;
  /** Last renewal, ms since the epoch. */
  renewedAt?: number;
  leaseMs?: number;
}

export interface Snapshot {
  /** When it was read (ms since the epoch). */
  readAt: number;
  services: ServiceView[];
  nodes: NodeView[];
  slices: SliceView[];
  ipNodes: IpNode[];
  claims: IpClaim[];
  pools: PoolEntry[];
  /** null when the Lease does not exist or cannot be read (reason says which). */
  leader: LeaderView | null;
  leaderProblem?: string;
}

/** One Event about a Service, as history shows it. */
export interface ServiceEvent {
  /** ms since the epoch of the last occurrence. */
  at: number;
  firstAt: number;
  count: number;
  type: string;
  reason: string;
  message: string;
  source: string;
}

export interface LeaseRef {
  /** Tried in order; the first that holds the Lease wins. */
  namespaces: string[];
  name: string;
}

const values = <T>(items: unknown[], parse: (raw: unknown) => Parsed<T> | null): T[] =>
  items.map(parse).flatMap((p) => (p ? [p.value] : []));

function timeOf(v: unknown): number | undefined {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

const statusOf = (err: unknown): number | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? err.code : undefined;

async function readLeader(coordination: CoordinationV1Api, lease: LeaseRef): Promise<{ leader: LeaderView | null; problem?: string }> {
  let result: { leader: LeaderView | null; problem?: string } = { leader: null, problem: 'no Lease namespace given' };
  for (const namespace of lease.namespaces) {
    result = await readLease(coordination, namespace, lease.name);
    if (result.leader) return result;
  }
  return lease.namespaces.length > 1
    ? { leader: null, problem: `no Lease ${lease.name} in ${lease.namespaces.join(' or ')} (give --lease-namespace)` }
    : result;
}

async function readLease(
  coordination: CoordinationV1Api,
  namespace: string,
  name: string,
): Promise<{ leader: LeaderView | null; problem?: string }> {
  const lease = { namespace, name };
  try {
    const l = await coordination.readNamespacedLease({ namespace: lease.namespace, name: lease.name });
    const holder = l.spec?.holderIdentity;
    if (!holder) return { leader: null, problem: `Lease ${lease.namespace}/${lease.name} has no holder` };
    const renewedAt = timeOf(l.spec?.renewTime);
    const leaseMs = l.spec?.leaseDurationSeconds !== undefined ? l.spec.leaseDurationSeconds * 1000 : undefined;
    return { leader: { holder, ...(renewedAt !== undefined ? { renewedAt } : {}), ...(leaseMs !== undefined ? { leaseMs } : {}) } };
  } catch (err) {
    const code = statusOf(err);
    const why =
      code === 404 ? 'does not exist' : code === 403 ? 'cannot be read with your credentials' : `could not be read: ${String(err)}`;
    return { leader: null, problem: `Lease ${lease.namespace}/${lease.name} ${why}` };
  }
}

export async function readSnapshot(kc: KubeConfig, lease: LeaseRef, now: () => number = Date.now): Promise<Snapshot> {
  const kube = kubeFor(kc, 'kubectl-ipcontroller');
  const [services, nodes, slices, ipNodes, claims, pools, leader] = await Promise.all([
    kube.lists.services(),
    kube.lists.nodes(),
    kube.lists.slices(),
    kube.lists.custom(PLURAL.IpNode),
    kube.lists.custom(PLURAL.IpClaim),
    kube.lists.custom(PLURAL.IpClaimPool),
    readLeader(kc.makeApiClient(CoordinationV1Api), lease),
  ]);
  return {
    readAt: now(),
    services: values(services.items, parseServiceEntry),
    nodes: values(nodes.items, parseNodeEntry),
    slices: values(slices.items, parseSliceEntry),
    ipNodes: values(ipNodes.items, parseIpNodeEntry),
    claims: values(claims.items, parseClaimEntry),
    pools: values(pools.items, parsePoolEntry),
    leader: leader.leader,
    ...(leader.problem ? { leaderProblem: leader.problem } : {}),
  };
}

/** Events whose involvedObject is the Service (the apiserver keeps them for --event-ttl, 1 hour by default). */
export async function readServiceEvents(kc: KubeConfig, namespace: string, name: string): Promise<ServiceEvent[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Service,involvedObject.name=${name}` });
  return list.items.map((e) => {
    const at = timeOf(e.lastTimestamp) ?? timeOf(e.eventTime) ?? timeOf(e.metadata.creationTimestamp) ?? 0;
    return {
      at,
      firstAt: timeOf(e.firstTimestamp) ?? at,
      count: e.count ?? 1,
      type: e.type ?? 'Normal',
      reason: e.reason ?? '',
      message: e.message ?? '',
      source: e.source?.component ?? e.reportingComponent ?? '',
    };
  });
}
