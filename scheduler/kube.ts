// The Kubernetes side of the scheduler: what it lists and watches, and the few writes it
// makes, behind one small port so the reconcile can run against an in-memory one.
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  HttpMethod,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1ObjectMeta,
} from '@kubernetes/client-node';
import { isNotFound, ResourceClient, type IpClients } from '../api/client.js';
import { parseIpClaim, parseIpClaimPool, parseIpNode } from '../api/parse.js';
import {
  GROUP,
  PLURAL,
  VERSION,
  type Condition,
  type ProbeReport,
  type IpClaim,
  type IpClaimPool,
  type IpClaimPoolStatus,
  type IpClaimStatus,
  type IpNode,
} from '../api/types.js';
import { ANNOTATION, parseService, type ServiceView } from './service.js';
import type { Listed, PageRequest, Parsed } from './watch.js';
import { keepAliveClient, type JsonCall } from './kubeclient.js';
import { canonicalAddress } from './allocator.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
// Service status.conditions merge by type under a strategic merge patch, so other
// controllers' conditions on the same Service stay.
const strategicPatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

/** An IpClaimPool as stored: parsed, or the reason it could not be (with its metadata, for the finalizer). */
export type PoolEntry =
  { ok: true; pool: IpClaimPool } | { ok: false; name: string; reason: string; status?: IpClaimPoolStatus; metadata: V1ObjectMeta };

export interface NodeView {
  name: string;
  labels: Record<string, string>;
  /** status.addresses that are IPs (InternalIP, ExternalIP), canonical: never handed out (issue 12). */
  addresses?: Array<{ address: string; type: string }>;
}

export interface SliceView {
  key: string;
  /** "namespace/name" of the Service (label kubernetes.io/service-name). */
  service: string;
  /** Nodes with an endpoint whose serving condition is not false. */
  servingNodes: string[];
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const rvOf = (raw: unknown): string => str(obj(obj(raw).metadata).resourceVersion) ?? '';
const nameOf = (raw: unknown): string => str(obj(obj(raw).metadata).name) ?? '';

const OUR_ANNOTATIONS = new Set<string>(Object.values(ANNOTATION));

/** The Service as the cache keeps it: only the annotations the scheduler reads (a kubectl-applied
 *  Service carries its whole last-applied configuration in one). */
export function parseServiceEntry(raw: unknown): Parsed<ServiceView> | null {
  const view = parseService(raw);
  if (!view) return null;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(view.annotations)) if (OUR_ANNOTATIONS.has(k)) annotations[k] = v;
  return { key: view.key, value: { ...view, annotations }, rv: view.resourceVersion };
}

/**
 * The object without metadata.managedFields, which is most of a small object's size and which
 * nothing here reads; the caches hold thousands of claims. An update (PUT) that carries no
 * managedFields leaves the server's as they are.
 */
export function withoutManagedFields<T extends { metadata: V1ObjectMeta }>(o: T): T {
  if (o.metadata.managedFields === undefined) return o;
  const { managedFields: _dropped, ...metadata } = o.metadata;
  return { ...o, metadata };
}

export function parseNodeEntry(raw: unknown): Parsed<NodeView> | null {
  const name = nameOf(raw);
  if (!name) return null;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(obj(obj(raw).metadata).labels))) if (typeof v === 'string') labels[k] = v;
  const addresses: Array<{ address: string; type: string }> = [];
  const list = obj(obj(raw).status).addresses;
  for (const a of Array.isArray(list) ? list : []) {
    const type = str(obj(a).type) ?? '';
    // Hostname and InternalDNS entries are names; only IP entries parse.
    const address = canonicalAddress(str(obj(a).address) ?? '');
    if (address && !addresses.some((x) => x.address === address)) addresses.push({ address, type });
  }
  return { key: name, value: { name, labels, addresses }, rv: rvOf(raw) };
}

export function parseSliceEntry(raw: unknown): Parsed<SliceView> | null {
  const meta = obj(obj(raw).metadata);
  const name = str(meta.name);
  const namespace = str(meta.namespace);
  const service = str(obj(meta.labels)['kubernetes.io/service-name']);
  if (!name || !namespace || !service) return null;
  const nodes = new Set<string>();
  for (const ep of Array.isArray(obj(raw).endpoints) ? (obj(raw).endpoints as unknown[]) : []) {
    const e = obj(ep);
    const node = str(e.nodeName);
    // serving is nil when unknown; like kube-proxy, only an explicit false excludes.
    if (node && obj(e.conditions).serving !== false) nodes.add(node);
  }
  return {
    key: `${namespace}/${name}`,
    value: { key: `${namespace}/${name}`, service: `${namespace}/${service}`, servingNodes: [...nodes].sort() },
    rv: rvOf(raw),
  };
}

export function parseClaimEntry(raw: unknown): Parsed<IpClaim> | null {
  const r = parseIpClaim(raw);
  return r.ok ? { key: r.value.metadata.name ?? '', value: withoutManagedFields(r.value), rv: rvOf(raw) } : null;
}

export function parseIpNodeEntry(raw: unknown): Parsed<IpNode> | null {
  const r = parseIpNode(raw);
  return r.ok ? { key: r.value.metadata.name ?? '', value: withoutManagedFields(r.value), rv: rvOf(raw) } : null;
}

export function parsePoolEntry(raw: unknown): Parsed<PoolEntry> | null {
  const name = nameOf(raw);
  if (!name) return null;
  const r = parseIpClaimPool(raw);
  if (r.ok) return { key: name, value: { ok: true, pool: withoutManagedFields(r.value) }, rv: rvOf(raw) };
  const status = obj(obj(raw).status) as IpClaimPoolStatus;
  const { managedFields: _dropped, ...metadata } = obj(obj(raw).metadata) as V1ObjectMeta;
  return { key: name, value: { ok: false, name, reason: r.reason.replace(/^IpClaimPool \S+: /, ''), status, metadata }, rv: rvOf(raw) };
}

export interface CoreEvent {
  namespace: string;
  serviceName: string;
  serviceUid: string;
  /** The object the Event is about when it is not the Service (a cluster-scoped IpClaimPool). */
  object?: { apiVersion: string; kind: string; name: string; uid: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** The writes the reconcile makes. */
export interface KubeWrites {
  createClaim(claim: IpClaim): Promise<IpClaim>;
  replaceClaim(claim: IpClaim): Promise<IpClaim>;
  /** Deletes with preconditions: a claim whose uid or resourceVersion changed fails with 409. */
  deleteClaim(name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void>;
  getClaim(name: string): Promise<IpClaim | null>;
  /** Merge-patches status; fails with 409 if the claim changed since resourceVersion. */
  patchClaimStatus(name: string, status: IpClaimStatus, resourceVersion: string): Promise<IpClaim>;
  /** The Service as the apiserver has it now (raw), or null. */
  getService(namespace: string, name: string): Promise<unknown>;
  getPool(name: string): Promise<IpClaimPool | null>;
  replacePoolStatus(pool: IpClaimPool): Promise<IpClaimPool>;
  /** Merge-patches status of a pool that does not parse (to say why). */
  patchPoolStatusRaw(name: string, status: IpClaimPoolStatus): Promise<void>;
  /** Sets a pool's metadata.finalizers, failing with 409 if the pool changed since resourceVersion; returns the pool as written. */
  setPoolFinalizers(name: string, resourceVersion: string, finalizers: string[]): Promise<unknown>;
  /** Writes status.loadBalancer.ingress unless the Service changed since resourceVersion (409); returns it as written. */
  patchServiceIngress(
    namespace: string,
    name: string,
    resourceVersion: string,
    ingress: Array<{ ip: string; ipMode?: string }>,
  ): Promise<unknown>;
  /** Replaces spec.externalIPs, failing with 409 if the Service changed since resourceVersion. */
  patchServiceExternalIPs(namespace: string, name: string, resourceVersion: string, externalIPs: string[]): Promise<unknown>;
  createEvent(event: CoreEvent): Promise<void>;
  /** Sets our condition in the Service's status.conditions (others stay); returns the Service as written. */
  patchServiceCondition(namespace: string, name: string, condition: Condition): Promise<unknown>;
  /** Merge-patches status.probe of an IpNode (the scheduler's probe view of it). */
  patchIpNodeProbe(name: string, probe: ProbeReport): Promise<void>;
}

/** The lists the caches start from: one page when page is given (limit, continue), else everything in one response. */
export interface KubeLists {
  services(page?: PageRequest): Promise<Listed>;
  nodes(page?: PageRequest): Promise<Listed>;
  slices(page?: PageRequest): Promise<Listed>;
  custom(plural: string, page?: PageRequest): Promise<Listed>;
}

export interface Kube {
  lists: KubeLists;
  writes: KubeWrites;
  clients: IpClients;
  coordination: CoordinationV1Api;
}

/** A list response as the store loop takes it. client-node's typed lists name the next page's token `_continue`; raw JSON (custom objects) names it `continue`. */
export function listed(body: unknown): Listed {
  const b = obj(body);
  const meta = obj(b.metadata);
  const token = str(meta.continue) ?? str(meta._continue);
  return {
    items: Array.isArray(b.items) ? b.items : [],
    resourceVersion: str(meta.resourceVersion) ?? '',
    ...(token ? { continue: token } : {}),
  };
}

/** A list's path with one page's limit and continue (none for a whole list). */
export function pagePath(path: string, page: PageRequest | undefined): string {
  if (!page) return path;
  const query = new URLSearchParams({ limit: String(page.limit) });
  if (page.continue) query.set('continue', page.continue);
  return `${path}?${query.toString()}`;
}

type ClaimWrites = Pick<KubeWrites, 'createClaim' | 'replaceClaim' | 'deleteClaim' | 'getClaim' | 'patchClaimStatus'>;
type ServiceWrites = Pick<
  KubeWrites,
  'getService' | 'patchServiceIngress' | 'patchServiceExternalIPs' | 'patchServiceCondition' | 'createEvent'
>;
type PoolWrites = Pick<KubeWrites, 'getPool' | 'replacePoolStatus' | 'patchPoolStatusRaw' | 'setPoolFinalizers' | 'patchIpNodeProbe'>;

/**
 * Claim writes; what they return goes into the claims cache (write-through), slimmed as the
 * watch's are. The create, one per Service in a cold start, is a raw JSON call (jsonCall).
 */
function claimWrites(clients: IpClients, json: JsonCall): ClaimWrites {
  return {
    createClaim: async (claim) =>
      withoutManagedFields(
        clients.claims.parsed(await json({ method: HttpMethod.POST, path: `/apis/${GROUP}/${VERSION}/${PLURAL.IpClaim}`, body: claim })),
      ),
    replaceClaim: async (claim) => withoutManagedFields(await clients.claims.replace(claim)),
    deleteClaim: async (name, preconditions) => {
      await clients.claims.delete(name, preconditions);
    },
    getClaim: async (name) => {
      const claim = await clients.claims.get(name);
      return claim && withoutManagedFields(claim);
    },
    patchClaimStatus: async (name, status, resourceVersion) =>
      withoutManagedFields(await clients.claims.patchStatus(name, { metadata: { resourceVersion }, status })),
  };
}

/** A Service's path under /api/v1. */
const servicePath = (namespace: string, name: string): string =>
  `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}`;

function serviceWrites(core: CoreV1Api, json: JsonCall, component: string): ServiceWrites {
  return {
    getService: async (namespace, name) => {
      try {
        return await core.readNamespacedService({ namespace, name });
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },
    // One per Service in a cold start: a raw JSON call (jsonCall); its answer is the Service as JSON, as a watch gives it.
    patchServiceIngress: (namespace, name, resourceVersion, ingress) =>
      json({
        method: HttpMethod.PATCH,
        path: `${servicePath(namespace, name)}/status`,
        body: { metadata: { resourceVersion }, status: { loadBalancer: { ingress: ingress.length ? ingress : null } } },
        contentType: PatchStrategy.MergePatch,
      }),
    patchServiceExternalIPs: (namespace, name, resourceVersion, externalIPs) =>
      core.patchNamespacedService(
        { namespace, name, body: { metadata: { resourceVersion }, spec: { externalIPs: externalIPs.length ? externalIPs : null } } },
        mergePatch,
      ),
    patchServiceCondition: (namespace, name, condition) =>
      core.patchNamespacedServiceStatus({ namespace, name, body: { status: { conditions: [condition] } } }, strategicPatch),
    // Two per Service after a cold start's writes (10,000 at 5,000 Services): a raw JSON call too,
    // so the typed client's model objects are not garbage the process holds after the burst.
    createEvent: async (e) => {
      const now = new Date().toISOString();
      await json({
        method: HttpMethod.POST,
        path: `/api/v1/namespaces/${encodeURIComponent(e.namespace)}/events`,
        body: {
          metadata: { generateName: `${e.object?.name ?? e.serviceName}.`, namespace: e.namespace },
          involvedObject: e.object ?? { apiVersion: 'v1', kind: 'Service', namespace: e.namespace, name: e.serviceName, uid: e.serviceUid },
          type: e.type,
          reason: e.reason,
          message: e.message,
          source: { component },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    },
  };
}

function poolWrites(custom: CustomObjectsApi, clients: IpClients): PoolWrites {
  return {
    getPool: (name) => clients.pools.get(name),
    replacePoolStatus: async (pool) => withoutManagedFields(await clients.pools.replaceStatus(pool)),
    patchPoolStatusRaw: async (name, status) => {
      await custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL.IpClaimPool, name, body: { status } },
        mergePatch,
      );
    },
    setPoolFinalizers: (name, resourceVersion, finalizers) =>
      custom.patchClusterCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL.IpClaimPool,
          name,
          body: { metadata: { resourceVersion, finalizers: finalizers.length ? finalizers : null } },
        },
        mergePatch,
      ),
    patchIpNodeProbe: async (name, probe) => {
      await custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL.IpNode, name, body: { status: { probe } } },
        mergePatch,
      );
    },
  };
}

/** maxSockets: the keep-alive pool's size (default 32); the writes in flight, Events and the Lease renewal share it. */
export function kubeFor(kc: KubeConfig, component: string, maxSockets?: number): Kube {
  const { apis: make, json } = keepAliveClient(kc, maxSockets ? { maxSockets } : {});
  const core = make(CoreV1Api);
  const custom = make(CustomObjectsApi);
  const clients: IpClients = {
    claims: new ResourceClient<IpClaim>(custom, PLURAL.IpClaim, parseIpClaim),
    nodes: new ResourceClient<IpNode>(custom, PLURAL.IpNode, parseIpNode),
    pools: new ResourceClient<IpClaimPool>(custom, PLURAL.IpClaimPool, parseIpClaimPool),
  };
  // Raw JSON lists (jsonCall): the caches take only a few fields of each object, so a typed copy of every listed Service was garbage.
  const list = async (path: string, page: PageRequest | undefined): Promise<Listed> =>
    listed(await json({ method: HttpMethod.GET, path: pagePath(path, page) }));
  const lists: KubeLists = {
    services: (page) => list('/api/v1/services', page),
    nodes: (page) => list('/api/v1/nodes', page),
    slices: (page) => list('/apis/discovery.k8s.io/v1/endpointslices', page),
    custom: (plural, page) => list(`/apis/${GROUP}/${VERSION}/${plural}`, page),
  };
  const writes: KubeWrites = { ...claimWrites(clients, json), ...serviceWrites(core, json, component), ...poolWrites(custom, clients) };
  return { lists, writes, clients, coordination: make(CoordinationV1Api) };
}
