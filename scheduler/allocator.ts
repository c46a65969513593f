// Which address comes next from a pool: pure address math over ipaddr.js. Addresses are
// handled as bigints so a /64 (or a /8 of IPv6) is never enumerated: a pool is a sorted list
// of inclusive [first, last] intervals, and "next free" walks them skipping used addresses.
import ipaddr from 'ipaddr.js';
import type { IpClaimPool } from '../api/types.js';
import { parseCidr } from '../api/names.js';

export type Family = 'ipv4' | 'ipv6';

export interface Pool {
  name: string;
  cidr: string;
  family: Family;
  /** Sorted, merged, inclusive intervals of allocatable addresses. */
  intervals: Array<[bigint, bigint]>;
  /** Number of allocatable addresses. */
  size: bigint;
}

export type PoolResult = { ok: true; pool: Pool } | { ok: false; reason: string };

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

/** The address as an unsigned integer. */
export function toBigInt(address: ipaddr.IPv4 | ipaddr.IPv6): bigint {
  let value = 0n;
  for (const byte of address.toByteArray()) value = (value << 8n) | BigInt(byte);
  return value;
}

/** The canonical text of an integer address of the given family. */
export function fromBigInt(value: bigint, family: Family): string {
  const bytes: number[] = [];
  let rest = value;
  for (let i = 0; i < BITS[family] / 8; i++) {
    bytes.unshift(Number(rest & 0xffn));
    rest >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Parses a bare address (IPv4-mapped IPv6 becomes IPv4); null when it is not one. */
export function parseAddress(text: string): { family: Family; value: bigint; text: string } | null {
  const parsed = parseCidr(text);
  if (!parsed || text.includes('/')) return null;
  const family = parsed.address.kind() as Family;
  return { family, value: toBigInt(parsed.address), text: parsed.address.toString() };
}

/** Canonical text of an address, or null. */
export function canonicalAddress(text: string): string | null {
  return parseAddress(text)?.text ?? null;
}

export function familyOf(text: string): Family | null {
  return parseAddress(text)?.family ?? null;
}

/**
 * Checks an IpClaimPool and turns it into intervals. Without ranges the whole cidr is
 * allocatable less the network address (and for IPv4 the broadcast address) when the prefix
 * leaves room for hosts; with ranges, exactly the ranges, which must lie inside the cidr.
 */
export function parsePool(resource: IpClaimPool): PoolResult {
  const name = resource.metadata.name ?? '';
  const net = parseCidr(resource.spec.cidr);
  if (!net || !resource.spec.cidr.includes('/')) return { ok: false, reason: `cidr ${JSON.stringify(resource.spec.cidr)} is not an IP prefix` };
  const family = net.address.kind() as Family;
  const bits = BITS[family];
  if (net.prefixLength < 0 || net.prefixLength > bits) return { ok: false, reason: `cidr ${resource.spec.cidr} has a bad prefix length` };
  const hostBits = BigInt(bits - net.prefixLength);
  const first = (toBigInt(net.address) >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  const cidr = `${fromBigInt(first, family)}/${net.prefixLength}`;
  let intervals: Array<[bigint, bigint]>;
  if (resource.spec.ranges && resource.spec.ranges.length > 0) {
    const checked = checkRanges(resource.spec.ranges, family, first, last, cidr);
    if (!checked.ok) return checked;
    intervals = checked.intervals;
  } else {
    intervals = [wholeNetwork(family, net.prefixLength, first, last)];
  }
  const size = intervals.reduce((sum, [a, b]) => sum + (b - a + 1n), 0n);
  if (size === 0n) return { ok: false, reason: `cidr ${cidr} leaves no allocatable address` };
  return { ok: true, pool: { name, cidr, family, intervals, size } };
}

function wholeNetwork(family: Family, prefix: number, first: bigint, last: bigint): [bigint, bigint] {
  // /31 and /32 (RFC 3021) and /127, /128 have no network or broadcast address to skip.
  if (family === 'ipv4' && prefix <= 30) return [first + 1n, last - 1n];
  if (family === 'ipv6' && prefix <= 126) return [first + 1n, last]; // skip the subnet-router anycast address
  return [first, last];
}

type RangesResult = { ok: true; intervals: Array<[bigint, bigint]> } | { ok: false; reason: string };

function checkRanges(ranges: Array<[string, string]>, family: Family, first: bigint, last: bigint, cidr: string): RangesResult {
  const raw: Array<[bigint, bigint]> = [];
  for (const [i, range] of ranges.entries()) {
    const a = parseAddress(range[0]);
    const b = parseAddress(range[1]);
    const label = `range ${i} [${range[0]}, ${range[1]}]`;
    if (!a || !b) return { ok: false, reason: `${label} does not hold two IP addresses` };
    if (a.family !== family || b.family !== family) return { ok: false, reason: `${label} is not ${family === 'ipv4' ? 'IPv4' : 'IPv6'} like cidr ${cidr}` };
    if (a.value > b.value) return { ok: false, reason: `${label} ends before it starts` };
    if (a.value < first || b.value > last) return { ok: false, reason: `${label} is not inside cidr ${cidr}` };
    raw.push([a.value, b.value]);
  }
  raw.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const merged: Array<[bigint, bigint]> = [];
  for (const [a, b] of raw) {
    const top = merged[merged.length - 1];
    if (top && a <= top[1] + 1n) top[1] = b > top[1] ? b : top[1];
    else merged.push([a, b]);
  }
  return { ok: true, intervals: merged };
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
