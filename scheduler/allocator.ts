// Which address comes next from a pool: pure address math over ipaddr.js. Addresses are
// handled as bigints so a /64 (or a /8 of IPv6) is never enumerated: a pool is a sorted list
// of inclusive [first, last] intervals, and "next free" walks them skipping used addresses.
import ipaddr from 'ipaddr.js';
import type { IpClaimPool } from '../api/types.js';
import { memoized } from '../lib/memo.js';
import { parseStrictCidr, parseStrictIp, SPECIAL_RANGES, toBigInt, type IpFamily } from '../api/ip.js';

export { toBigInt };

export interface Pool {
  name: string;
  cidr: string;
  family: IpFamily;
  /** Sorted, merged, inclusive intervals of allocatable addresses. */
  intervals: Array<[bigint, bigint]>;
  /** Number of allocatable addresses. */
  size: bigint;
  /** Addresses inside cidr/ranges that are never handed out, and why (for the pool's status). */
  withheld: string[];
  /** Set while the pool is being deleted: it keeps what it gave out but gives out nothing new. */
  terminating?: boolean;
}

export type PoolResult = { ok: true; pool: Pool } | { ok: false; reason: string };

const BITS: Record<IpFamily, number> = { ipv4: 32, ipv6: 128 };

/** The canonical text of an integer address of the given family. */
export function fromBigInt(value: bigint, family: IpFamily): string {
  const bytes: number[] = [];
  let rest = value;
  for (let i = 0; i < BITS[family] / 8; i++) {
    bytes.unshift(Number(rest & 0xffn));
    rest >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

export interface ParsedAddress {
  readonly family: IpFamily;
  readonly value: bigint;
  /** Canonical text. */
  readonly text: string;
}

/**
 * Parses a bare address as strictly as Kubernetes (api/ip.ts); null when it is not one. A pass
 * asks about each claim's address several times (placement, families, pools, exclusions): the
 * answers are kept (0.3 s of the scheduler's CPU in a 5,000-Service cold start without).
 */
export const parseAddress: (text: string) => ParsedAddress | null = memoized(parseAddressOnce, 20_000);

function parseAddressOnce(text: string): ParsedAddress | null {
  const parsed = parseStrictIp(text);
  if (!parsed.ok) return null;
  return { family: parsed.value.family, value: toBigInt(parsed.value.address), text: parsed.value.text };
}

/** Canonical text of an address, or null. */
export function canonicalAddress(text: string): string | null {
  return parseAddress(text)?.text ?? null;
}

export function familyOf(text: string): IpFamily | null {
  return parseAddress(text)?.family ?? null;
}

/**
 * Checks an IpClaimPool and turns it into intervals. Without ranges the whole cidr is
 * allocatable, with ranges exactly the ranges (which must lie inside the cidr); from either,
 * what is never handed out is taken away: the cidr's own network and IPv4 broadcast
 * address (when the prefix leaves room for hosts; also when ranges name them) and every
 * special-purpose address (api/ip.ts SPECIAL_RANGES). A pool left with nothing is invalid.
 */
export function parsePool(resource: IpClaimPool): PoolResult {
  const name = resource.metadata.name ?? '';
  const net = parseStrictCidr(resource.spec.cidr);
  if (!net.ok) return { ok: false, reason: `cidr ${JSON.stringify(resource.spec.cidr)} ${net.reason}` };
  const family = net.value.family;
  const prefix = net.value.prefixLength;
  const hostBits = BigInt(BITS[family] - prefix);
  const first = (toBigInt(net.value.address) >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  const cidr = `${fromBigInt(first, family)}/${prefix}`;
  let intervals: Array<[bigint, bigint]>;
  if (resource.spec.ranges && resource.spec.ranges.length > 0) {
    const checked = checkRanges(resource.spec.ranges, { family, first, last, cidr });
    if (!checked.ok) return checked;
    intervals = checked.intervals;
  } else {
    intervals = [[first, last]];
  }
  const withheld: string[] = [];
  for (const [a, b, why] of neverHandedOut(family, prefix, first, last)) {
    const before = intervals;
    intervals = subtract(intervals, a, b);
    if (!sameIntervals(before, intervals)) withheld.push(why);
  }
  const size = intervals.reduce((sum, [a, b]) => sum + (b - a + 1n), 0n);
  if (size === 0n) {
    const what = withheld.length ? `only addresses that are never handed out (${withheld.join(', ')})` : 'no allocatable address';
    return { ok: false, reason: `cidr ${cidr}${resource.spec.ranges?.length ? ' with its ranges' : ''} holds ${what}` };
  }
  return { ok: true, pool: { name, cidr, family, intervals, size, withheld } };
}

/** [first, last, why] of what a pool with this cidr never hands out. */
function neverHandedOut(family: IpFamily, prefix: number, first: bigint, last: bigint): Array<[bigint, bigint, string]> {
  const out: Array<[bigint, bigint, string]> = [];
  // /31 and /32 (RFC 3021) and /127, /128 have no network or broadcast address to skip.
  if (family === 'ipv4' && prefix <= 30) {
    out.push([first, first, `network address ${fromBigInt(first, family)}`], [last, last, `broadcast address ${fromBigInt(last, family)}`]);
  }
  if (family === 'ipv6' && prefix <= 126) out.push([first, first, `subnet-router anycast address ${fromBigInt(first, family)}`]);
  for (const r of SPECIAL_RANGES) if (r.family === family) out.push([r.first, r.last, `${r.kind} ${r.cidr}`]);
  return out;
}

/** The intervals less [a, b]. */
function subtract(intervals: Array<[bigint, bigint]>, a: bigint, b: bigint): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  for (const [x, y] of intervals) {
    if (y < a || x > b) {
      out.push([x, y]);
      continue;
    }
    if (x < a) out.push([x, a - 1n]);
    if (y > b) out.push([b + 1n, y]);
  }
  return out;
}

function sameIntervals(a: Array<[bigint, bigint]>, b: Array<[bigint, bigint]>): boolean {
  return a.length === b.length && a.every(([x, y], i) => b[i]?.[0] === x && b[i]?.[1] === y);
}

type RangesResult = { ok: true; intervals: Array<[bigint, bigint]> } | { ok: false; reason: string };

/** A pool's cidr as numbers: its family, first and last address, and canonical text. */
interface Network {
  family: IpFamily;
  first: bigint;
  last: bigint;
  cidr: string;
}

function checkRanges(ranges: Array<[string, string]>, net: Network): RangesResult {
  const raw: Array<[bigint, bigint]> = [];
  for (const [i, range] of ranges.entries()) {
    const checked = checkRange(range, i, net);
    if (typeof checked === 'string') return { ok: false, reason: checked };
    raw.push(checked);
  }
  return { ok: true, intervals: mergeIntervals(raw) };
}

/** One [first, last] range as numbers, or why it is not a range inside the cidr. */
function checkRange(range: [string, string], i: number, net: Network): [bigint, bigint] | string {
  const label = `range ${i} [${range[0]}, ${range[1]}]`;
  const bad = range.map((text) => ({ text, r: parseStrictIp(text) })).find((x) => !x.r.ok);
  if (bad && !bad.r.ok) return `${label}: ${JSON.stringify(bad.text)} ${bad.r.reason}`;
  const a = parseAddress(range[0]);
  const b = parseAddress(range[1]);
  if (!a || !b) return `${label} does not hold two IP addresses`;
  if (a.family !== net.family || b.family !== net.family)
    return `${label} is not ${net.family === 'ipv4' ? 'IPv4' : 'IPv6'} like cidr ${net.cidr}`;
  if (a.value > b.value) return `${label} ends before it starts`;
  if (a.value < net.first || b.value > net.last) return `${label} is not inside cidr ${net.cidr}`;
  return [a.value, b.value];
}

/** Sorted, with overlapping and adjacent intervals joined. */
function mergeIntervals(raw: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  const sorted = [...raw].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const merged: Array<[bigint, bigint]> = [];
  for (const [a, b] of sorted) {
    const top = merged[merged.length - 1];
    if (top && a <= top[1] + 1n) top[1] = b > top[1] ? b : top[1];
    else merged.push([a, b]);
  }
  return merged;
}

/** Whether an address (canonical text) is allocatable from the pool. */
export function poolContains(pool: Pool, address: string): boolean {
  const parsed = parseAddress(address);
  if (!parsed || parsed.family !== pool.family) return false;
  return pool.intervals.some(([a, b]) => parsed.value >= a && parsed.value <= b);
}

/**
 * The first allocatable address not in `used` (canonical texts), searching from `from` on.
 * Each step either returns or skips one used address, so the walk is at most used.size + 1
 * steps even in a /64.
 */
export function nextFree(pool: Pool, used: { has(address: string): boolean }, from = 0n): { address: string; value: bigint } | null {
  for (const [a, b] of pool.intervals) {
    if (b < from) continue;
    for (let v = a > from ? a : from; v <= b; v++) {
      const address = fromBigInt(v, pool.family);
      if (!used.has(address)) return { address, value: v };
    }
  }
  return null;
}

/** Free addresses as a number for status and metrics, capped at MAX_SAFE_INTEGER. */
export function capped(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value < 0n ? 0n : value);
}

/** A stable, documented pool order: by name. */
export function poolOrder(a: Pool, b: Pool): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
