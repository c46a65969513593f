// Invariants 2, 3 and 4, read from the API and from each node's `ip -j addr`: pure functions
// from one snapshot to the discrepancies in it. Written apart from the scheduler's own code
// (scheduler/service.ts, desired.ts) on purpose, so a mistake there is not repeated here.
// A discrepancy is not yet a violation: the system needs a moment to converge after a change
// (persistence.ts decides when one has lasted too long).
import ipaddr from 'ipaddr.js';
import type { V1Service } from '@kubernetes/client-node';
import type { IpFamily } from '../../api/ip.js';
import type { IpClaim, IpClaimPool } from '../../api/types.js';

/** The agent's ownership mark on an address (agent/README.md, "Ownership"). */
export const AGENT_MARK_METRIC = 4242;
export const OUR_LB_CLASS = 'ipcontroller.ext/l2';

export type Invariant =
  | 'service-address' // 2: a Service lacks an address of a family it asked for, or has two
  | 'ingress-mismatch' // 2: status.loadBalancer.ingress differs from its claims
  | 'double-claim' // 3: one address in two claims
  | 'double-allocation' // 3: one pool address in the ingress of two Services that do not share
  | 'orphan-claim' // 3: a claim names no Service that exists and asks for its address
  | 'pool-count' // 3: pool status differs from the claims
  | 'leaked-address' // 4: a marked address on a node with no claim assigning it there
  | 'address-not-up' // a claim assigned to a node whose interface lacks the address
  | 'address-changed'; // a live Service's pool address of one family was replaced by another

export interface Discrepancy {
  invariant: Invariant;
  /** What it is about, stable across snapshots (the key persistence tracks). */
  subject: string;
  detail: string;
}

export interface NodeAddress {
  ip: string;
  metric?: number;
}

export interface Snapshot {
  services: V1Service[];
  claims: IpClaim[];
  pools: IpClaimPool[];
  /** Agent node name -> addresses on its claim interface; absent when it could not be read. */
  nodeAddresses: Record<string, NodeAddress[]>;
}

export function canonical(text: string): string | null {
  try {
    const parsed = ipaddr.parse(text.trim());
    return parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()
      ? (parsed as ipaddr.IPv6).toIPv4Address().toString()
      : parsed.toString();
  } catch {
    return null;
  }
}

const familyOf = (ip: string): IpFamily => (ip.includes(':') ? 'ipv6' : 'ipv4');
const claimIp = (c: IpClaim): string => canonical(c.spec.cidr.split('/')[0] ?? '') ?? c.spec.cidr;
const keyOf = (s: V1Service): string => `${s.metadata?.namespace}/${s.metadata?.name}`;

/** Parses `ip -j addr show dev X` into addresses with their metric. */
export function parseAddresses(json: string): NodeAddress[] {
  const links = JSON.parse(json || '[]') as { addr_info?: { local?: string; metric?: number }[] }[];
  return links.flatMap((l) =>
    (l.addr_info ?? []).flatMap((a) =>
      a.local ? [{ ip: canonical(a.local) ?? a.local, ...(typeof a.metric === 'number' ? { metric: a.metric } : {}) }] : [],
    ),
  );
}

/** What one Service asks of us, read from the Service alone. */
export interface Ask {
  externalIPs: string[];
  /** Families it must get one pool address each for; empty when it wants no pool address. */
  required: IpFamily[];
  /** Families it may get (PreferDualStack adds the other one). */
  allowed: IpFamily[];
}

export function asks(svc: V1Service): Ask {
  const spec = svc.spec ?? {};
  const none: Ask = { externalIPs: [], required: [], allowed: [] };
  if (spec.loadBalancerClass && spec.loadBalancerClass !== OUR_LB_CLASS) return none;
  const externalIPs = (spec.externalIPs ?? []).map(canonical).filter((ip): ip is string => ip !== null);
  const annotations = svc.metadata?.annotations ?? {};
  const wantsPool = spec.type === 'LoadBalancer' || annotations['external-ip'] === 'auto';
  if (!wantsPool) return { ...none, externalIPs };
  const primary: IpFamily = spec.ipFamilies?.[0] === 'IPv6' ? 'ipv6' : 'ipv4';
  const other: IpFamily = primary === 'ipv4' ? 'ipv6' : 'ipv4';
  const requested = (annotations['ipcontroller.ext/loadBalancerIPs'] ?? spec.loadBalancerIP ?? '')
    .split(',')
    .map(canonical)
    .filter((ip): ip is string => ip !== null)
    .map(familyOf);
  const policy = spec.ipFamilyPolicy;
  if (policy === 'RequireDualStack') return { externalIPs, required: [primary, other], allowed: [primary, other] };
  if (policy === 'PreferDualStack') return { externalIPs, required: requested.length ? requested : [primary], allowed: [primary, other] };
  const families = requested.length ? [...new Set(requested)] : [primary];
  return { externalIPs, required: families, allowed: families };
}

function serviceDiscrepancies(svc: V1Service, claimsByService: Map<string, IpClaim[]>, claimedIps: Set<string>): Discrepancy[] {
  const key = keyOf(svc);
  const ask = asks(svc);
  const out: Discrepancy[] = [];
  for (const ip of ask.externalIPs) {
    const listed = (claimsByService.get(key) ?? []).some((c) => claimIp(c) === ip);
    if (!listed)
      out.push({
        invariant: 'service-address',
        subject: `${key} ${ip}`,
        detail: `${key} lists externalIP ${ip} but no claim names it${claimedIps.has(ip) ? ' (a claim for the address exists without it)' : ''}`,
      });
  }
  if (ask.required.length === 0) return out;
  const ingress = (svc.status?.loadBalancer?.ingress ?? []).map((i) => canonical(i.ip ?? '')).filter((ip): ip is string => ip !== null);
  for (const family of ask.allowed) {
    const have = ingress.filter((ip) => familyOf(ip) === family);
    if (have.length > 1)
      out.push({
        invariant: 'service-address',
        subject: `${key} ${family}`,
        detail: `${key} has ${have.length} ${family} ingress addresses: ${have.join(', ')}`,
      });
    if (have.length === 0 && ask.required.includes(family))
      out.push({
        invariant: 'service-address',
        subject: `${key} ${family}`,
        detail: `${key} asked for an ${family} address and has none in status.loadBalancer.ingress`,
      });
  }
  const pooled = (claimsByService.get(key) ?? [])
    .filter((c) => c.spec.pool !== undefined && !ask.externalIPs.includes(claimIp(c)))
    .map(claimIp)
    .sort();
  const shown = [...new Set(ingress)].sort();
  if (pooled.join() !== shown.join())
    out.push({
      invariant: 'ingress-mismatch',
      subject: key,
      detail: `${key}: ingress [${shown.join(', ')}] but pool claims naming it [${pooled.join(', ')}]`,
    });
  return out;
}

function claimDiscrepancies(claims: IpClaim[], services: Map<string, V1Service>): Discrepancy[] {
  const out: Discrepancy[] = [];
  const byIp = new Map<string, IpClaim[]>();
  for (const c of claims) byIp.set(claimIp(c), [...(byIp.get(claimIp(c)) ?? []), c]);
  for (const [ip, list] of byIp) {
    if (list.length > 1)
      out.push({
        invariant: 'double-claim',
        subject: ip,
        detail: `${ip} is in ${list.length} claims: ${list.map((c) => c.metadata.name).join(', ')}`,
      });
  }
  for (const c of claims) {
    if (c.metadata.deletionTimestamp) continue;
    const ip = claimIp(c);
    const askers = (c.spec.services ?? []).filter((key) => {
      const svc = services.get(key);
      if (!svc || svc.metadata?.deletionTimestamp) return false;
      const ask = asks(svc);
      return ask.externalIPs.includes(ip) || (c.spec.pool !== undefined && ask.allowed.includes(familyOf(ip)));
    });
    if (askers.length === 0)
      out.push({
        invariant: 'orphan-claim',
        subject: c.metadata.name ?? ip,
        detail: `claim ${c.metadata.name} (${c.spec.cidr}) names [${(c.spec.services ?? []).join(', ')}], none of which exists and asks for it`,
      });
  }
  return out;
}

function allocationDiscrepancies(services: V1Service[]): Discrepancy[] {
  const holders = new Map<string, V1Service[]>();
  for (const svc of services) {
    if (asks(svc).required.length === 0) continue;
    for (const i of svc.status?.loadBalancer?.ingress ?? []) {
      const ip = canonical(i.ip ?? '');
      if (ip) holders.set(ip, [...(holders.get(ip) ?? []), svc]);
    }
  }
  const out: Discrepancy[] = [];
  for (const [ip, list] of holders) {
    if (list.length < 2) continue;
    const keys = new Set(list.map((s) => s.metadata?.annotations?.['ipcontroller.ext/allow-shared-ip'] ?? `unshared:${keyOf(s)}`));
    if (keys.size > 1)
      out.push({
        invariant: 'double-allocation',
        subject: ip,
        detail: `${ip} is in the ingress of ${list.map(keyOf).join(' and ')}, which do not share a key`,
      });
  }
  return out;
}

function poolDiscrepancies(pools: IpClaimPool[], claims: IpClaim[]): Discrepancy[] {
  const out: Discrepancy[] = [];
  for (const pool of pools) {
    const name = pool.metadata.name ?? '';
    const mine = claims
      .filter((c) => c.spec.pool === name && !c.metadata.deletionTimestamp)
      .map(claimIp)
      .sort();
    const allocations = Object.keys(pool.status?.allocations ?? {})
      .map((ip) => canonical(ip) ?? ip)
      .sort();
    const used = pool.status?.used ?? 0;
    if (used !== mine.length || allocations.join() !== mine.join()) {
      out.push({
        invariant: 'pool-count',
        subject: name,
        detail: `pool ${name}: status used=${used} allocations [${allocations.join(', ')}] but claims from it [${mine.join(', ')}]`,
      });
    }
  }
  return out;
}

function nodeDiscrepancies(claims: IpClaim[], nodeAddresses: Record<string, NodeAddress[]>): Discrepancy[] {
  const out: Discrepancy[] = [];
  for (const [node, addresses] of Object.entries(nodeAddresses)) {
    for (const a of addresses) {
      if (a.metric !== AGENT_MARK_METRIC) continue;
      const ok = claims.some((c) => claimIp(c) === a.ip && (c.spec.nodeName === node || c.status?.node === node));
      if (!ok)
        out.push({
          invariant: 'leaked-address',
          subject: `${node} ${a.ip}`,
          detail: `${node} holds marked address ${a.ip} (metric ${AGENT_MARK_METRIC}) and no claim assigns it there`,
        });
    }
  }
  for (const c of claims) {
    const node = c.spec.nodeName;
    const addresses = node ? nodeAddresses[node] : undefined;
    if (!node || !addresses || c.metadata.deletionTimestamp) continue;
    if (!addresses.some((a) => a.ip === claimIp(c)))
      out.push({
        invariant: 'address-not-up',
        subject: `${node} ${claimIp(c)}`,
        detail: `claim ${c.metadata.name} assigns ${claimIp(c)} to ${node}, whose interface lacks it`,
      });
  }
  return out;
}

/** Every discrepancy in one snapshot. */
export function checkSnapshot(snap: Snapshot): Discrepancy[] {
  const services = new Map(snap.services.map((s) => [keyOf(s), s]));
  const claimsByService = new Map<string, IpClaim[]>();
  for (const c of snap.claims) for (const key of c.spec.services ?? []) claimsByService.set(key, [...(claimsByService.get(key) ?? []), c]);
  const claimedIps = new Set(snap.claims.map(claimIp));
  return [
    ...snap.services.filter((s) => !s.metadata?.deletionTimestamp).flatMap((s) => serviceDiscrepancies(s, claimsByService, claimedIps)),
    ...claimDiscrepancies(snap.claims, services),
    ...allocationDiscrepancies(snap.services),
    ...poolDiscrepancies(snap.pools, snap.claims),
    ...nodeDiscrepancies(snap.claims, snap.nodeAddresses),
  ];
}

/**
 * Whether deleting this claim took an address from a Service that still asks for it (the
 * check on the claim watch: a stale leader's delete landing on a live claim).
 */
export function deletedLiveClaim(claim: IpClaim, servicesNow: (V1Service | null)[]): string | null {
  const ip = claimIp(claim);
  for (const svc of servicesNow) {
    if (!svc || svc.metadata?.deletionTimestamp) continue;
    const ask = asks(svc);
    const ingress = (svc.status?.loadBalancer?.ingress ?? []).map((i) => canonical(i.ip ?? ''));
    // A pool claim counts while the Service still wants an address of that family: a stale writer
    // may have cleared the ingress too before this read.
    const wantsFamily = claim.spec.pool !== undefined && (ingress.includes(ip) || ask.allowed.includes(familyOf(ip)));
    if (ask.externalIPs.includes(ip) || wantsFamily) {
      return `claim ${claim.metadata.name} (${claim.spec.cidr}, rv ${claim.metadata.resourceVersion}, node ${claim.spec.nodeName ?? '-'}) was deleted while ${keyOf(svc)} (uid ${svc.metadata?.uid}) still asks for ${ip}`;
    }
  }
  return null;
}

/** Pool addresses by Service uid and family, as seen in status.loadBalancer.ingress. */
export type IngressMemory = Map<string, Partial<Record<IpFamily, string>>>;

/**
 * A live Service's address must never change once given (no churn, issue 9): compares each
 * Service's ingress with the last one seen and remembers the new one. A family that went
 * empty is left to the other checks; a different address is a change.
 */
export function addressChanges(memory: IngressMemory, services: V1Service[]): Discrepancy[] {
  const out: Discrepancy[] = [];
  const live = new Set<string>();
  for (const svc of services) {
    const uid = svc.metadata?.uid;
    if (!uid || asks(svc).required.length === 0) continue;
    live.add(uid);
    const seen = memory.get(uid) ?? {};
    for (const i of svc.status?.loadBalancer?.ingress ?? []) {
      const ip = canonical(i.ip ?? '');
      if (!ip) continue;
      const before = seen[familyOf(ip)];
      if (before && before !== ip)
        out.push({
          invariant: 'address-changed',
          subject: `${keyOf(svc)} ${before}`,
          detail: `${keyOf(svc)} (uid ${uid}) had ${before} and now has ${ip}`,
        });
      seen[familyOf(ip)] = ip;
    }
    memory.set(uid, seen);
  }
  for (const uid of memory.keys()) if (!live.has(uid)) memory.delete(uid);
  return out;
}
