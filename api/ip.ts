// IP address and prefix text read from users, parsed exactly as strictly as Kubernetes'
// current rule (apimachinery validation.IsValidIP / IsValidCIDR with strict validation, and
// the CEL isIP() / isCIDR() the CRDs use, both built on Go's netip.ParseAddr):
//   - IPv4 is four decimal numbers 0-255 with no leading 0s. ipaddr.js (and libc's
//     inet_aton) also read "192.0.2.010" as octal (192.0.2.8), "3221226001" as one 32-bit
//     number and "192.0.2" as 192.0.0.2; Kubernetes' legacy parser reads "010" as decimal 10.
//     Two readings of one string is how an address ends up on the wrong host, so these are
//     refused with the form to write instead.
//   - IPv6 is RFC 4291 text: groups of 1-4 hex digits, one "::" standing for at least one
//     group, an optional dotted IPv4 tail. No zone ("%eth0": a zone names a link, not an
//     address a Service can have), no IPv4-mapped form (::ffff:192.0.2.1 is IPv4 to some
//     software and IPv6 to other). Non-canonical but unambiguous text (upper case, zeros
//     not compressed) is accepted, as the apiserver accepts it, and turned canonical (RFC 5952).
// ipaddr.js is used only after this check, for the value and the canonical text.
import ipaddr from 'ipaddr.js';
import type { ParseResult } from '../lib/json.js';
import { memoized } from '../lib/memo.js';

export type IpFamily = 'ipv4' | 'ipv6';

export interface StrictIp {
  address: ipaddr.IPv4 | ipaddr.IPv6;
  family: IpFamily;
  /** Canonical text: dotted quad, or RFC 5952. */
  text: string;
}

export interface StrictCidr extends StrictIp {
  prefixLength: number;
}

const fail = <T>(reason: string): ParseResult<T> => ({ ok: false, reason });
const DECIMAL = /^[0-9]+$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const EXAMPLE = 'such as 192.0.2.10 or 2001:db8::10';

/** Why an IPv4 text is not four plain decimal numbers, or null when it is. */
function ipv4Problem(text: string): string | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => DECIMAL.test(p))) {
    return `is not an IP address: IPv4 is written as four decimal numbers 0-255 separated by dots, ${EXAMPLE}`;
  }
  if (parts.some((p) => Number(p) > 255)) return 'is not an IP address: each IPv4 number must be 0-255';
  if (parts.some((p) => p.length > 1 && p.startsWith('0'))) {
    const decimal = parts.map((p) => String(Number(p))).join('.');
    return `must not have leading 0s (some software reads them as octal, Kubernetes as decimal): write ${decimal}`;
  }
  return null;
}

/** Why an IPv6 text breaks RFC 4291 as Go's netip reads it, or null. */
function ipv6Problem(text: string): string | null {
  const bad = `is not an IP address: IPv6 is written as groups of 1-4 hex digits separated by colons, ${EXAMPLE}`;
  const halves = text.split('::');
  if (halves.length > 2) return `${bad} (only one "::" is allowed)`;
  const groupsOf = (half: string): string[] => (half === '' ? [] : half.split(':'));
  const head = groupsOf(halves[0] ?? '');
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '') : [];
  const all = [...head, ...tail];
  let count = 0;
  // A dotted IPv4 tail may only end the text (not stand before a trailing "::").
  const endsText = halves.length === 1 || tail.length > 0;
  for (const [i, group] of all.entries()) {
    if (i === all.length - 1 && endsText && group.includes('.')) {
      const v4 = ipv4Problem(group);
      if (v4) return `has an IPv4 tail that ${v4}`;
      count += 2;
    } else if (HEX_GROUP.test(group)) {
      count += 1;
    } else {
      return bad;
    }
  }
  if (halves.length === 2 ? count > 7 : count !== 8) return `${bad} (eight groups, or fewer with one "::")`;
  return null;
}

/** Parses an IP address as Kubernetes' strict validation does; the reason says what to write instead. */
export function parseStrictIp(input: string): ParseResult<StrictIp> {
  if (input === '') return fail('is empty');
  if (input.includes('%'))
    return fail(`must not have an IPv6 zone ("${input.slice(input.indexOf('%'))}"): a zone names a link, not an address`);
  const family: IpFamily = input.includes(':') ? 'ipv6' : 'ipv4';
  const problem = family === 'ipv4' ? ipv4Problem(input) : ipv6Problem(input);
  if (problem) return fail(problem);
  const address = family === 'ipv4' ? ipaddr.IPv4.parse(input) : ipaddr.IPv6.parse(input);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return fail(`must not be an IPv4-mapped IPv6 address: write ${(address as ipaddr.IPv6).toIPv4Address().toString()}`);
  }
  return { ok: true, value: { address, family, text: address.toString() } };
}

/**
 * Parses "address/length" as Go's netip.ParsePrefix does (the CRDs' isCIDR()): a strict
 * address, a decimal length with no leading 0s within the family's bits. Host bits may be
 * set (an interface address such as 192.0.2.10/24 is a valid claim cidr); callers that want
 * a network mask the value.
 */
export function parseStrictCidr(input: string): ParseResult<StrictCidr> {
  const slash = input.indexOf('/');
  if (slash < 0) return fail(`is not an IP prefix: it needs a prefix length, such as 192.0.2.0/24 or 2001:db8::/64`);
  const ip = parseStrictIp(input.slice(0, slash));
  if (!ip.ok) return ip;
  const bits = input.slice(slash + 1);
  const max = ip.value.family === 'ipv4' ? 32 : 128;
  if (!DECIMAL.test(bits) || (bits.length > 1 && bits.startsWith('0')) || Number(bits) > max) {
    return fail(`is not an IP prefix: the length after "/" must be a decimal number 0-${max} without leading 0s`);
  }
  return { ok: true, value: { ...ip.value, prefixLength: Number(bits) } };
}

/**
 * Why a prefix text is not one (parseStrictCidr's reason), or null. Kept by argument: every
 * IpClaim read is checked, and a cold start reads each claim twice (the create's answer and
 * its watch event), so the parse was 9% of what the scheduler allocated in it.
 */
export const strictCidrProblem: (input: string) => string | null = memoized((input: string) => {
  const r = parseStrictCidr(input);
  return r.ok ? null : r.reason;
}, 20_000);

/** The message a user reads: where the value came from, the value, and what is wrong with it. */
export function describeBadIp(source: string, input: string, reason: string): string {
  return `${source} ${JSON.stringify(input)} ${reason}`;
}

/** The address as an unsigned integer. */
export function toBigInt(address: ipaddr.IPv4 | ipaddr.IPv6): bigint {
  let value = 0n;
  for (const byte of address.toByteArray()) value = (value << 8n) | BigInt(byte);
  return value;
}

export type SpecialKind = 'unspecified' | 'loopback' | 'link-local' | 'multicast' | 'broadcast' | 'IPv4-mapped';

export interface SpecialRange {
  cidr: string;
  kind: SpecialKind;
  family: IpFamily;
  first: bigint;
  last: bigint;
}

function range(cidr: string, kind: SpecialKind): SpecialRange {
  const [address, length] = ipaddr.parseCIDR(cidr);
  const bits = address.kind() === 'ipv4' ? 32 : 128;
  const host = BigInt(bits - length);
  const first = (toBigInt(address) >> host) << host;
  return { cidr, kind, family: address.kind() as IpFamily, first, last: first + (1n << host) - 1n };
}

/**
 * Addresses no Service may be given, because a host treats them as something other than
 * one unicast address on the LAN (RFC 6890): putting one on a node's interface breaks that
 * node (loopback, unspecified) or answers for a whole group (multicast, broadcast).
 * 0.0.0.0/8 is "this network" (RFC 1122 3.2.1.3: never a destination). IPv4-mapped IPv6
 * is refused as input anyway and cannot name a claim.
 */
export const SPECIAL_RANGES: readonly SpecialRange[] = [
  range('0.0.0.0/8', 'unspecified'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'),
  range('224.0.0.0/4', 'multicast'),
  range('255.255.255.255/32', 'broadcast'),
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('::ffff:0:0/96', 'IPv4-mapped'),
  range('fe80::/10', 'link-local'),
  range('ff00::/8', 'multicast'),
];

/** The special-purpose range an address lies in, or null for an ordinary unicast address. */
export function specialPurpose(ip: StrictIp): SpecialRange | null {
  const value = toBigInt(ip.address);
  return SPECIAL_RANGES.find((r) => r.family === ip.family && value >= r.first && value <= r.last) ?? null;
}
