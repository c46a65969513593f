// The agent's Kubernetes port and its client-node implementation. Claims come from a
// list+watch loop (lib/listwatch.ts, shared with the scheduler: relisted every --resync, and
// after any watch error with backoff). Every object is parsed once here. Requests go over the
// shared keep-alive client (lib/keepalive.ts): a deadline on each, the pool reset after one passes.
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Clock } from '../lib/clock.js';
import { keepAliveApis, withTimeout } from '../lib/keepalive.js';
import { ListWatch, Store, type Listed, type ListWatchOptions, type PageRequest, type Parsed } from '../lib/listwatch.js';
import type { Logger } from '../lib/logger.js';
import { ResourceClient, hasStatus } from '../api/client.js';
import { parseIpClaim, parseIpNode } from '../api/parse.js';
import { GROUP, PLURAL, VERSION, type IpClaim, type IpClaimStatus, type IpNode, type IpNodeSpec, type IpNodeStatus } from '../api/types.js';
import { ClaimNotOnThisNode, RefusedStatusWrites } from './refusals.js';

export { ClaimNotOnThisNode };

export type ClaimEntry = { ok: true; claim: IpClaim } | { ok: false; name: string; nodeName?: string; reason: string };

export interface ClaimSource {
  /** Starts list+watch; onChange runs after every change to the set. */
  run(onChange: () => void, signal: AbortSignal): void;
  synced(): boolean;
  entries(): ClaimEntry[];
  /** When the claims were last listed in full (ms since epoch; 0 before the first list). */
  listedAt(): number;
  /** Ends the current watch so the claims are listed again at once. */
  relist(): void;
}

export interface KubePort {
  claims: ClaimSource;
  /**
   * Rejects with ClaimNotOnThisNode when the apiserver refused the write because the claim has
   * moved to another node; such a write is not sent again until the agent sees the claim change.
   */
  patchClaimStatus(name: string, status: IpClaimStatus): Promise<void>;
  getIpNode(name: string): Promise<IpNode | null>;
  createIpNode(node: IpNode): Promise<void>;
  patchIpNodeSpec(name: string, spec: IpNodeSpec): Promise<void>;
  patchIpNodeStatus(name: string, status: IpNodeStatus): Promise<void>;
  /** The Node's InternalIP, or null when the Node or the address is missing. */
  nodeInternalIp(name: string): Promise<string | null>;
}

export { withTimeout };

/** The claim as the agent keeps it: parsed, or the reason it is not (with its name and node, to report on). */
export function toEntry(raw: unknown): ClaimEntry {
  const parsed = parseIpClaim(raw);
  if (parsed.ok) return { ok: true, claim: parsed.value };
  const obj = raw as { metadata?: { name?: unknown }; spec?: { nodeName?: unknown } } | null;
  const name = typeof obj?.metadata?.name === 'string' ? obj.metadata.name : '<unnamed>';
  const nodeName = typeof obj?.spec?.nodeName === 'string' ? obj.spec.nodeName : undefined;
  return { ok: false, name, reason: parsed.reason, ...(nodeName !== undefined ? { nodeName } : {}) };
}

/** A claim event or list item as a Store entry, keyed by name and versioned by resourceVersion. */
export function claimEntry(raw: unknown): Parsed<ClaimEntry> {
  const entry = toEntry(raw);
  const meta = (raw as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
  const rv = typeof meta?.resourceVersion === 'string' ? meta.resourceVersion : '';
  return { key: entry.ok ? (entry.claim.metadata.name ?? '') : entry.name, value: entry, rv };
}

/**
 * The agent's claims: a thin adapter over the shared list+watch loop (lib/listwatch.ts). The
 * watch lasts --resync and the claims are then listed again (the resync; it also recovers a
 * silently dead connection); the Store keeps a late event from rolling a claim back.
 */
class ListWatchClaims implements ClaimSource {
  private readonly store = new Store<ClaimEntry>();
  private loop: ListWatch<ClaimEntry> | undefined;
  /** How to list, the kubeconfig to watch with, the clock, the log and resyncMs (--resync). */
  constructor(private readonly how: Pick<ListWatchOptions<ClaimEntry>, 'list' | 'kubeConfig' | 'clock' | 'log' | 'resyncMs'>) {}

  synced(): boolean {
    return this.store.synced;
  }
  entries(): ClaimEntry[] {
    return this.store.values();
  }
  listedAt(): number {
    return this.loop?.listedAt() ?? 0;
  }
  relist(): void {
    this.loop?.relist();
  }
  /** The resourceVersion of this agent's copy of a claim, if it has one. */
  resourceVersionOf(name: string): string | undefined {
    const entry = this.store.get(name);
    return entry?.ok ? entry.claim.metadata.resourceVersion : undefined;
  }
  has(name: string): boolean {
    return this.store.has(name);
  }

  run(onChange: () => void, signal: AbortSignal): void {
    this.loop = new ListWatch<ClaimEntry>({
      what: 'claims',
      path: `/apis/${GROUP}/${VERSION}/${PLURAL.IpClaim}`,
      parse: claimEntry,
      store: this.store,
      onChange,
      // listedAt() moved: the agent's gate looks at it even when no claim changed.
      onListed: onChange,
      ...this.how,
    });
    void this.loop.run(signal);
  }
}

/** Deadline of the agent's writes and reads (its loops must not stall behind a hung request). */
const API_TIMEOUT_MS = 5000;
/** Deadline of the claim list, which grows with the cluster's claims. */
const LIST_TIMEOUT_MS = 30_000;

export function kubePort(kc: KubeConfig, options: { clock: Clock; logger: Logger; relistMs: number; nodeName: string }): KubePort {
  // Every request has a deadline, after which the pool is reset (lib/keepalive.ts).
  const api = keepAliveApis(kc, { requestTimeoutMs: API_TIMEOUT_MS });
  const custom = api(CustomObjectsApi);
  const clients = {
    claims: new ResourceClient(custom, PLURAL.IpClaim, parseIpClaim),
    nodes: new ResourceClient(custom, PLURAL.IpNode, parseIpNode),
  };
  const core = api(CoreV1Api);
  const lister = keepAliveApis(kc, { requestTimeoutMs: LIST_TIMEOUT_MS, maxSockets: 1 })(CustomObjectsApi);
  // In pages (lib/listwatch.ts): the agent lists every claim in the cluster, not only its own.
  const listClaims = async (page: PageRequest): Promise<Listed> => {
    const body = (await lister.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL.IpClaim,
      limit: page.limit,
      ...(page.continue ? { _continue: page.continue } : {}),
    })) as { items?: unknown[]; metadata?: { resourceVersion?: string; continue?: string } };
    const token = body.metadata?.continue;
    return { items: body.items ?? [], resourceVersion: body.metadata?.resourceVersion ?? '', ...(token ? { continue: token } : {}) };
  };
  const claims = new ListWatchClaims({
    list: listClaims,
    kubeConfig: kc,
    clock: options.clock,
    log: options.logger.child({ port: 'claims' }),
    resyncMs: options.relistMs,
  });
  const refusals = new RefusedStatusWrites();
  /** After a 403: where the claim is now, if that is not this node (else the 403 is a real fault). */
  const movedTo = async (name: string): Promise<string | undefined> => {
    const now = await clients.claims.get(name).catch(() => undefined);
    if (now === undefined) return undefined; // cannot tell: report the refusal as it is
    const nodeName = now?.spec.nodeName ?? '';
    return nodeName === options.nodeName ? undefined : nodeName;
  };
  return {
    claims,
    async patchClaimStatus(name, status) {
      const seen = claims.resourceVersionOf(name);
      const earlier = refusals.refused(name, seen);
      if (earlier) throw new ClaimNotOnThisNode(name, earlier.nodeName);
      try {
        await clients.claims.patchStatus(name, { status });
      } catch (err) {
        const nodeName = hasStatus(err, 403) ? await movedTo(name) : undefined;
        if (nodeName === undefined) throw err;
        if (seen !== undefined) refusals.remember(name, { resourceVersion: seen, nodeName }, (claim) => claims.has(claim));
        throw new ClaimNotOnThisNode(name, nodeName, { cause: err });
      }
    },
    getIpNode: (name) => clients.nodes.get(name),
    async createIpNode(node) {
      await clients.nodes.create(node);
    },
    async patchIpNodeSpec(name, spec) {
      // null removes a field in a merge patch: an agent started without --iface clears it.
      await clients.nodes.patch(name, { spec: { ...spec, iface: spec.iface ?? null } });
    },
    async patchIpNodeStatus(name, status) {
      await clients.nodes.patchStatus(name, { status });
    },
    async nodeInternalIp(name) {
      try {
        const node = await core.readNode({ name });
        return node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? null;
      } catch {
        return null;
      }
    },
  };
}
