// The desired set of IpClaims, computed from every Service, the pools and the claims that
// exist now. Pure: the same input gives the same output, so the reconcile is a diff of this
// against the API, and a restart converges to the same addresses instead of new ones.
//
// Order of decisions, so existing users keep their addresses:
//   1. every spec.externalIPs address becomes (or joins) a claim;
//   2. every pool address a Service already holds (its claim lists it, or its
//      status.loadBalancer.ingress shows it) is kept while still valid;
//   3. then missing addresses are allocated, older Services first.
// The apiserver allows status.loadBalancer.ingress only on LoadBalancer Services, so a
// Service of another type asking with `external-ip: auto` gets its address added to its
// spec.externalIPs instead (as the original project did), which is also what makes
// kube-proxy route it; the address is taken out again when it is released.
import { claimName } from '../api/names.js';
import type { IpClaim } from '../api/types.js';
import { canonicalAddress, familyOf, nextFree, parsePool, poolContains, poolOrder, type Pool } from './allocator.js';
import type { IpFamily } from '../api/ip.js';
import type { PoolEntry } from './kube.js';
import { poolMeta } from './pools.js';
import type { Exclusion, Exclusions } from './exclusions.js';
import { portsClash, serviceIntent, type LoadBalancerIntent, type Problem, type ServiceView } from './service.js';

export interface DesiredClaim {
  name: string;
  cidr: string;
  address: string;
  family: IpFamily;
  /** "namespace/name", sorted. */
  services: string[];
  pool?: string;
}

export interface ServiceOutcome {
  key: string;
  /** The ingress to write; null leaves status alone. */
  ingress: string[] | null;
  /** spec.externalIPs to write (Services other than LoadBalancer using external-ip: auto); null leaves it alone. */
  externalIPs: string[] | null;
  /** Pool addresses held by the Service after this decision, by family. */
  held: Array<{ address: string; pool: string }>;
  problems: Problem[];
  /** Addresses the Service held that are now excluded (a conflict on the wire, a Node's address): it gets another. */
  dropped?: Problem[];
}

export interface Desired {
  claims: Map<string, DesiredClaim>;
  services: Map<string, ServiceOutcome>;
  /** Pool name -> address -> claim name: the IpClaimPool.status.allocations to write. */
  poolAllocations: Map<string, Map<string, string>>;
}

export interface PoolSet {
  valid: Pool[];
  /** Pools that exist but cannot be used, with the reason. */
  invalid: Map<string, string>;
  /** Addresses never handed out, with the reason (exclusions.ts). */
  excluded?: Exclusions;
}

/** The pools as the scheduler uses them: parsed, or with the reason they cannot be. */
/**
 * Pools to allocate from, from the cached IpClaimPools: a pool being deleted keeps its holders
 * (terminating, pools.ts) unless the user asked to release them on delete.
 */
export function poolSetOf(entries: PoolEntry[]): PoolSet {
  const valid: Pool[] = [];
  const invalid = new Map<string, string>();
  for (const entry of entries) {
    const meta = poolMeta(entry);
    if (meta.deleting && meta.releaseOnDelete) continue;
    if (!entry.ok) {
      invalid.set(entry.name, entry.reason);
      continue;
    }
    const parsed = parsePool(entry.pool);
    if (parsed.ok) valid.push(meta.deleting ? { ...parsed.pool, terminating: true } : parsed.pool);
    else invalid.set(entry.pool.metadata.name ?? '', parsed.reason);
  }
  return { valid, invalid };
}

export interface DesiredConfig {
  lbClass: string;
  mask: Record<IpFamily, number>;
}

interface Holder {
  key: string;
  shareKey?: string;
  svc: ServiceView;
}

interface Taken {
  pool?: string;
  holders: Holder[];
}

/** Working state of one computation. */
class Book {
  readonly claims = new Map<string, DesiredClaim>();
  readonly taken = new Map<string, Taken>();
  /** Addresses held under a sharing key, for Services that want to join them. */
  readonly shared = new Map<string, string[]>();

  /** taken or excluded: what nextFree must skip. */
  readonly unusable: { has(address: string): boolean };

  constructor(
    private readonly cfg: DesiredConfig,
    readonly excluded: Exclusions = new Map(),
  ) {
    this.unusable = { has: (address) => this.taken.has(address) || this.excluded.has(address) };
  }

  add(address: string, family: IpFamily, holder: Holder, pool?: string): void {
    const cidr = `${address}/${pool ? (family === 'ipv4' ? 32 : 128) : this.cfg.mask[family]}`;
    const name = claimName(cidr);
    const claim = this.claims.get(name) ?? { name, cidr, address, family, services: [] };
    if (!claim.services.includes(holder.key)) claim.services.push(holder.key);
    if (pool) claim.pool = pool;
    this.claims.set(name, claim);
    const taken = this.taken.get(address) ?? { holders: [] };
    if (pool) taken.pool = pool;
    taken.holders.push(holder);
    this.taken.set(address, taken);
    if (pool && holder.shareKey) {
      const list = this.shared.get(holder.shareKey) ?? [];
      if (!list.includes(address)) list.push(address);
      this.shared.set(holder.shareKey, list);
    }
  }

  /** Why the holder may not use the address, or null when it may (free, or shareable). */
  conflict(address: string, holder: Holder): string | null {
    const taken = this.taken.get(address);
    if (!taken) return null;
    if (!taken.pool) return `it is listed in spec.externalIPs of ${taken.holders.map((h) => h.key).join(', ')}`;
    for (const other of taken.holders) {
      if (other.key === holder.key) continue;
      if (!holder.shareKey || other.shareKey !== holder.shareKey)
        return `it is in use by ${other.key} (share it by giving both Services the same ipcontroller.ext/allow-shared-ip key)`;
      if (portsClash(other.svc.ports, holder.svc.ports)) return `it is shared with ${other.key}, whose ports clash with this Service's`;
    }
    return null;
  }
}

function byAge(a: ServiceView, b: ServiceView): number {
  return a.created - b.created || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

export function computeDesired(services: ServiceView[], pools: PoolSet, existing: IpClaim[], cfg: DesiredConfig): Desired {
  const book = new Book(cfg, pools.excluded);
  const outcomes = new Map<string, ServiceOutcome>();
  const sorted = [...services].sort(byAge);
  const lbServices: Entry[] = [];
  const sortedPools = [...pools.valid].sort(poolOrder);

  const holdings = existingHoldings(existing);
  /** Service key -> pool addresses it holds that we put into its spec.externalIPs. */
  const addedToSpec = new Map<string, string[]>();
  for (const svc of sorted) {
    const intent = serviceIntent(svc, cfg.lbClass);
    if (!intent.handled) continue;
    const outcome: ServiceOutcome = { key: svc.key, ingress: null, externalIPs: null, held: [], problems: [...intent.problems] };
    outcomes.set(svc.key, outcome);
    const ours = (holdings.get(svc.key) ?? [])
      .map((h) => h.address)
      .filter((ip) => svc.type !== 'LoadBalancer' && intent.externalIPs.includes(ip));
    addedToSpec.set(svc.key, ours);
    bookExternalIPs(book, { svc, outcome }, intent.externalIPs, ours);
    if (intent.loadBalancer) lbServices.push({ svc, lb: intent.loadBalancer, outcome });
    else withoutLoadBalancer(svc, outcome, ours);
  }

  for (const entry of lbServices) keepHeld(book, { valid: sortedPools, invalid: pools.invalid }, entry, holdings.get(entry.svc.key) ?? []);
  const cursors = new Map<string, bigint>();
  for (const entry of lbServices) allocateMissing(book, pools, entry, cursors);
  for (const entry of lbServices) publishHeld(entry, addedToSpec.get(entry.svc.key) ?? []);
  for (const claim of book.claims.values()) claim.services.sort();
  return { claims: book.claims, services: outcomes, poolAllocations: poolUsage(pools.valid, book.claims.values()) };
}

/** Books the Service's spec.externalIPs (except the pool addresses we put there); excluded ones become problems. */
function bookExternalIPs(book: Book, at: Pick<Entry, 'svc' | 'outcome'>, externalIPs: string[], ours: string[]): void {
  const { svc, outcome } = at;
  for (const ip of externalIPs) {
    const family = familyOf(ip);
    if (!family || ours.includes(ip)) continue;
    const excluded = book.excluded.get(ip);
    // A Node's own address is never announced; a conflict on an externalIPs address stays on
    // its claim (the agent retries it), as there is no pool to record it in.
    if (excluded && excluded.reason !== 'AddressConflict')
      outcome.problems.push({ reason: excluded.reason, message: `spec.externalIPs address ${ip} is not announced: ${excluded.message}` });
    else book.add(ip, family, { key: svc.key, svc });
  }
}

/** A Service that asks for no pool address (any more): take back what we wrote for it. */
function withoutLoadBalancer(svc: ServiceView, outcome: ServiceOutcome, ours: string[]): void {
  if (ours.length > 0)
    outcome.externalIPs = svc.externalIPs.filter((ip) => !ours.includes(canonicalAddress(ip) ?? ip)); // it lost the annotation
  else if (svc.type !== 'LoadBalancer' && svc.ingress.length > 0) outcome.ingress = []; // no longer a LoadBalancer
}

/** The held addresses, in the Service's family order, as its ingress (LoadBalancer) or in its spec.externalIPs. */
function publishHeld(entry: Entry, ours: string[]): void {
  const { svc, lb, outcome } = entry;
  const rank = (address: string): number => lb.families.indexOf(familyOf(address) ?? 'ipv4');
  outcome.held.sort((a, b) => rank(a.address) - rank(b.address));
  const addresses = outcome.held.map((h) => h.address);
  if (svc.type === 'LoadBalancer') {
    outcome.ingress = addresses;
    return;
  }
  const user = svc.externalIPs.filter((ip) => !ours.includes(canonicalAddress(ip) ?? ip));
  const want = [...user, ...addresses.filter((a) => !user.some((u) => canonicalAddress(u) === a))];
  if (JSON.stringify(want) !== JSON.stringify(svc.externalIPs)) outcome.externalIPs = want;
}

/**
 * Pool name -> address -> claim name. Pools may overlap: every claimed address is counted
 * once in each pool that could hand it out, whichever pool it came from (and also when
 * spec.externalIPs took it), so each pool's used + free is the truth about that pool: an
 * address counted as used in one is never counted as free in another.
 */
export function poolUsage(pools: Pool[], claims: Iterable<DesiredClaim>): Map<string, Map<string, string>> {
  const usage = new Map<string, Map<string, string>>();
  for (const pool of pools) usage.set(pool.name, new Map());
  for (const claim of claims) {
    for (const pool of pools) if (poolContains(pool, claim.address)) usage.get(pool.name)?.set(claim.address, claim.name);
  }
  return usage;
}

interface Holding {
  address: string;
  /** The pool the claim records; absent for an address seen only in status.loadBalancer.ingress. */
  pool?: string;
}

/** Service key -> pool addresses its claims hold now. */
function existingHoldings(existing: IpClaim[]): Map<string, Holding[]> {
  const out = new Map<string, Holding[]>();
  for (const claim of existing) {
    if (!claim.spec.pool) continue;
    const address = claim.spec.cidr.split('/')[0] ?? '';
    for (const key of claim.spec.services ?? []) {
      const list = out.get(key) ?? [];
      list.push({ address, pool: claim.spec.pool });
      out.set(key, list);
    }
  }
  return out;
}

interface Entry {
  svc: ServiceView;
  lb: LoadBalancerIntent;
  outcome: ServiceOutcome;
}

/** Which pool a held address stays in, or null when it is not kept. */
function keptIn(pools: PoolSet, lb: LoadBalancerIntent, address: string, recorded: string | undefined): string | null {
  // The pool the claim records wins over an overlapping one, so deleting that pool knows
  // who still uses it; a terminating pool keeps what it gave out.
  const usable = (p: Pool): boolean => (!lb.pool || p.name === lb.pool) && poolContains(p, address);
  const pool = pools.valid.find((p) => p.name === recorded && usable(p)) ?? pools.valid.find((p) => usable(p) && !p.terminating);
  if (pool) return pool.name;
  // A pool edited into an invalid spec keeps what it gave out (a typo must not drop every
  // Service's address at once); it gives out nothing new until it is fixed.
  if (recorded && pools.invalid.has(recorded) && (!lb.pool || lb.pool === recorded)) return recorded;
  return null;
}

function holderOf(entry: Entry): Holder {
  return { key: entry.svc.key, svc: entry.svc, ...(entry.lb.shareKey ? { shareKey: entry.lb.shareKey } : {}) };
}

function keepHeld(book: Book, pools: PoolSet, entry: Entry, fromClaims: Holding[]): void {
  const candidates: Holding[] = [...fromClaims, ...entry.svc.ingress.map((address) => ({ address }))];
  const ctx: KeepContext = { pools, entry, holder: holderOf(entry) };
  for (const family of entry.lb.families) keepInFamily(book, ctx, family, candidates);
}

interface KeepContext {
  pools: PoolSet;
  entry: Entry;
  holder: Holder;
}

/** Keeps the first held address of the family the Service may go on using; an excluded one is dropped and said so. */
function keepInFamily(book: Book, ctx: KeepContext, family: IpFamily, candidates: Holding[]): void {
  const { lb, outcome } = ctx.entry;
  const want = lb.requested[family];
  for (const { address, pool: recorded } of candidates) {
    if (familyOf(address) !== family || (want && want !== address)) continue;
    const pool = keptIn(ctx.pools, lb, address, recorded);
    const excluded = book.excluded.get(address);
    if (pool && excluded && !want) {
      noteDropped(outcome, address, excluded);
      continue;
    }
    if (!pool || excluded || book.conflict(address, ctx.holder) !== null) continue;
    book.add(address, family, ctx.holder, pool);
    outcome.held.push({ address, pool });
    return;
  }
}

function noteDropped(outcome: ServiceOutcome, address: string, excluded: Exclusion): void {
  const message = `${address} is given up: ${excluded.message}`;
  if (!outcome.dropped?.some((d) => d.message === message)) (outcome.dropped ??= []).push({ reason: excluded.reason, message });
}

function allocateMissing(book: Book, pools: PoolSet, entry: Entry, cursors: Map<string, bigint>): void {
  const { lb, outcome } = entry;
  const holder = holderOf(entry);
  for (const family of lb.families) {
    if (outcome.held.some((h) => familyOf(h.address) === family)) continue;
    const required = lb.required.includes(family);
    const result = pickAddress(book, { pools, lb, holder, cursors }, family);
    if ('problem' in result) {
      if (required) outcome.problems.push(result.problem);
      continue;
    }
    book.add(result.address, family, holder, result.pool);
    outcome.held.push({ address: result.address, pool: result.pool });
  }
}

type Picked = { address: string; pool: string } | { problem: Problem };

function familyName(f: IpFamily): string {
  return f === 'ipv4' ? 'IPv4' : 'IPv6';
}

/** The pools this Service may draw from in one family, or why there is none. */
function eligiblePools(pools: PoolSet, lb: LoadBalancerIntent, family: IpFamily): Pool[] | { problem: Problem } {
  if (lb.pool) {
    const reason = pools.invalid.get(lb.pool);
    if (reason)
      return { problem: { reason: 'PoolInvalid', message: `IpClaimPool ${lb.pool} named in ipcontroller.ext/pool is invalid: ${reason}` } };
    const pool = pools.valid.find((p) => p.name === lb.pool);
    if (!pool)
      return { problem: { reason: 'PoolNotFound', message: `IpClaimPool ${lb.pool} named in ipcontroller.ext/pool does not exist` } };
    if (pool.terminating)
      return {
        problem: {
          reason: 'PoolTerminating',
          message: `IpClaimPool ${lb.pool} named in ipcontroller.ext/pool is being deleted and gives out no new address`,
        },
      };
    if (pool.family !== family)
      return { problem: { reason: 'NoPoolForFamily', message: `IpClaimPool ${lb.pool} holds no ${familyName(family)} addresses` } };
    return [pool];
  }
  const list = pools.valid.filter((p) => p.family === family && !p.terminating).sort(poolOrder);
  if (list.length === 0)
    return { problem: { reason: 'NoPoolForFamily', message: `no valid IpClaimPool holds ${familyName(family)} addresses` } };
  return list;
}

interface PickContext {
  pools: PoolSet;
  lb: LoadBalancerIntent;
  holder: Holder;
  /** Pool name -> where the next search for a free address starts. */
  cursors: Map<string, bigint>;
}

function pickAddress(book: Book, ctx: PickContext, family: IpFamily): Picked {
  const eligible = eligiblePools(ctx.pools, ctx.lb, family);
  if ('problem' in eligible) return eligible;
  const want = ctx.lb.requested[family];
  if (want) return requestedAddress(book, ctx, eligible, want);
  const shared = sharedAddress(book, ctx.holder, eligible, family);
  if (shared) return shared;
  for (const pool of eligible) {
    const found = nextFree(pool, book.unusable, ctx.cursors.get(pool.name) ?? 0n);
    if (found) {
      ctx.cursors.set(pool.name, found.value + 1n);
      return { address: found.address, pool: pool.name };
    }
  }
  const names = eligible.map((p) => p.name).join(', ');
  return { problem: { reason: 'PoolExhausted', message: `no free ${familyName(family)} address left in ${names}` } };
}

/** The address the Service asked for by name, or why it cannot have it. */
function requestedAddress(book: Book, ctx: PickContext, eligible: Pool[], want: string): Picked {
  const pool = eligible.find((p) => poolContains(p, want));
  if (!pool) {
    const where = ctx.lb.pool ? `IpClaimPool ${ctx.lb.pool}` : 'any IpClaimPool';
    return { problem: { reason: 'AddressOutsidePool', message: `requested address ${want} is not in ${where}` } };
  }
  const excluded = book.excluded.get(want);
  if (excluded) return { problem: { reason: excluded.reason, message: `requested address ${want} cannot be used: ${excluded.message}` } };
  const conflict = book.conflict(want, ctx.holder);
  if (conflict) return { problem: { reason: 'AddressInUse', message: `requested address ${want} cannot be used: ${conflict}` } };
  return { address: want, pool: pool.name };
}

/** An address already held under the Service's sharing key that it may join, if any. */
function sharedAddress(book: Book, holder: Holder, eligible: Pool[], family: IpFamily): Picked | null {
  if (!holder.shareKey) return null;
  for (const address of book.shared.get(holder.shareKey) ?? []) {
    const pool = book.taken.get(address)?.pool;
    if (familyOf(address) !== family || !pool || !eligible.some((p) => p.name === pool)) continue;
    if (book.conflict(address, holder) === null) return { address, pool };
  }
  return null;
}
