// Addresses the scheduler must never hand out, and why (issue 12). Pure: from the Nodes, the
// pools, the claims and the pools' own status, at a given time.
//
//   NodeAddress     a Node's status.addresses (InternalIP, ExternalIP): announcing it from
//                   another node would steal that node's traffic.
//   NodeSubnet      the network (and IPv4 broadcast) address of a pool's cidr that holds a
//                   Node address. The scheduler does not know node subnets (Node objects carry
//                   no prefix length), so it takes the cidr of a pool holding a node address as
//                   that node's subnet: a pool without ranges skips these anyway, a pool with
//                   ranges that reach them would otherwise offer them.
//   AddressConflict an agent probed the address before bringing it up (RFC 5227 / RFC 4862
//                   DAD) and a host that is not ours answered, or claimed it while we held it.
//                   Recorded in IpClaimPool.status.excluded with when it was seen and retried
//                   (forgotten) after --conflict-retry, in case that host went away.
import type { Condition, IpClaim, IpClaimPool } from '../api/types.js';
import { fromBigInt, parseAddress, type Pool } from './allocator.js';
import { CLAIM_CONDITION } from '../api/conditions.js';
import { ADDRESS_CONFLICT, type ExclusionReason } from '../api/reasons.js';

export type { ExclusionReason };

export interface Exclusion {
  address: string;
  reason: ExclusionReason;
  message: string;
  /** RFC 3339: when the conflict was (last) seen; absent for node addresses. */
  seenAt?: string;
}

export type Exclusions = Map<string, Exclusion>;

export interface NodeAddresses {
  name: string;
  /** Canonical addresses from status.addresses, with their type (InternalIP, ExternalIP). */
  addresses: Array<{ address: string; type: string }>;
}

// Re-exported while scheduler/reconciler.ts imports them from here (their home is api/).
export { CLAIM_CONDITION as ANNOUNCED, ADDRESS_CONFLICT };

/** Node addresses, and the network / broadcast address of every pool cidr holding one. */
export function nodeExclusions(nodes: NodeAddresses[], pools: Pool[]): Exclusions {
  const out: Exclusions = new Map();
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const node of sorted) {
    for (const { address, type } of node.addresses) {
      if (!out.has(address)) out.set(address, { address, reason: 'NodeAddress', message: `${type} of Node ${node.name}` });
    }
  }
  for (const pool of pools) {
    const [network, prefixText] = pool.cidr.split('/');
    const net = parseAddress(network ?? '');
    const prefix = Number(prefixText);
    if (!net) continue;
    const bits = pool.family === 'ipv4' ? 32 : 128;
    const hostBits = BigInt(bits - prefix);
    const holder = sorted.find((n) =>
      n.addresses.some((a) => {
        const p = parseAddress(a.address);
        return p !== null && p.family === pool.family && p.value >> hostBits === net.value >> hostBits;
      }),
    );
    if (!holder || prefix >= bits - 1) continue; // /31, /32, /127, /128 have no network address to spare
    const first = net.value;
    const edges: Array<[bigint, string]> = [[first, 'network']];
    if (pool.family === 'ipv4') edges.push([first + (1n << hostBits) - 1n, 'broadcast']);
    for (const [value, what] of edges) {
      const address = fromBigInt(value, pool.family);
      if (!out.has(address))
        out.set(address, {
          address,
          reason: 'NodeSubnet',
          message: `${what} address of ${pool.cidr}, taken as the subnet of Node ${holder.name}`,
        });
    }
  }
  return out;
}

function conflictCondition(claim: IpClaim): Condition | undefined {
  return claim.status?.conditions?.find((c) => c.type === CLAIM_CONDITION && c.status === 'False' && c.reason === ADDRESS_CONFLICT);
}

/** When conflicts are judged, and which MACs are our own agents'. */
export interface ConflictWindow {
  now: number;
  /** A conflict is kept this long after it was seen, then forgotten so the address is probed again. */
  retryMs: number;
  /** MACs of our agents (IpNode.status.macs): a "conflict" with one of them is not one. */
  ourMacs?: ReadonlySet<string>;
}

/**
 * Conflicts still in force at `now`: those recorded in pool status, and those agents just
 * reported on pool claims (condition Announced=False, reason AddressConflict). Each is kept
 * for retryMs after it was seen, then forgotten so the address is probed again.
 */
export function activeConflicts(claims: IpClaim[], pools: IpClaimPool[], window: ConflictWindow): Exclusions {
  const out: Exclusions = new Map();
  const fresh = (seenAt: string | undefined): boolean => {
    const t = seenAt ? Date.parse(seenAt) : NaN;
    return !Number.isNaN(t) && window.now - t < window.retryMs;
  };
  const keep = (e: Exclusion): void => {
    const old = out.get(e.address);
    if (!old || Date.parse(old.seenAt ?? '') < Date.parse(e.seenAt ?? '')) out.set(e.address, e);
  };
  for (const e of recordedConflicts(pools)) if (fresh(e.seenAt)) keep(e);
  for (const e of reportedConflicts(claims, window.ourMacs ?? new Set())) if (fresh(e.seenAt)) keep(e);
  return out;
}

/** Conflicts the pools' status records. */
function recordedConflicts(pools: IpClaimPool[]): Exclusion[] {
  return pools.flatMap((pool) =>
    (pool.status?.excluded ?? [])
      .filter((e) => e.reason === ADDRESS_CONFLICT)
      .map((e): Exclusion => ({
        address: e.address,
        reason: ADDRESS_CONFLICT,
        message: e.message,
        ...(e.seenAt ? { seenAt: e.seenAt } : {}),
      })),
  );
}

/** Conflicts agents reported on pool claims, except those naming one of our own MACs. */
function reportedConflicts(claims: IpClaim[], ourMacs: ReadonlySet<string>): Exclusion[] {
  const out: Exclusion[] = [];
  for (const claim of claims) {
    const c = conflictCondition(claim);
    const address = parseAddress(claim.spec.cidr.split('/')[0] ?? '')?.text;
    if (!c || !address || !claim.spec.pool || namesOurMac(c.message, ourMacs)) continue;
    out.push({ address, reason: ADDRESS_CONFLICT, message: c.message, seenAt: c.lastTransitionTime });
  }
  return out;
}

/**
 * Whether a conflict message names one of our agents' MACs (IpNode.status.macs): the agent
 * that probed did not know that agent yet (it reads other agents' MACs every --resync), so it
 * is one of ours answering, not a foreign host.
 */
export function namesOurMac(message: string, ourMacs: ReadonlySet<string>): boolean {
  const found = message.toLowerCase().match(/\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b/g) ?? [];
  return found.some((mac) => ourMacs.has(mac));
}

/** Both sets; a node address wins over a conflict seen on it (it is the reason). */
export function mergeExclusions(nodes: Exclusions, conflicts: Exclusions): Exclusions {
  const out: Exclusions = new Map(conflicts);
  for (const [k, v] of nodes) out.set(k, v);
  return out;
}

/** The exclusions inside a pool, sorted by address value, for its status. */
export function exclusionsIn(pool: Pool, exclusions: Exclusions): Exclusion[] {
  const list: Array<{ value: bigint; e: Exclusion }> = [];
  for (const e of exclusions.values()) {
    const p = parseAddress(e.address);
    if (!p || p.family !== pool.family) continue;
    if (pool.intervals.some(([a, b]) => p.value >= a && p.value <= b)) list.push({ value: p.value, e });
  }
  list.sort((x, y) => (x.value < y.value ? -1 : x.value > y.value ? 1 : 0));
  return list.map((x) => x.e);
}

/** One line for the pool's AddressesExcluded condition. */
export function exclusionSummary(list: Exclusion[]): string {
  if (list.length === 0) return 'no address of the pool is excluded';
  const shown = list.slice(0, 8).map((e) => `${e.address} (${e.reason}: ${e.message})`);
  return `${list.length} address${list.length === 1 ? '' : 'es'} never allocated: ${shown.join('; ')}${list.length > 8 ? '; ...' : ''}`;
}
