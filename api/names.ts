// Object names derived from addresses. The original project named a claim after its IP
// with dots turned into dashes (192-0-2-10-32); IPv6 needs the same to yield a valid
// DNS-1123 name, so the address is first put in its canonical (RFC 5952) form, which
// keeps the mapping one-to-one.
import type ipaddr from 'ipaddr.js';
import { memoized } from '../lib/memo.js';
import { parseStrictCidr, parseStrictIp } from './ip.js';

export interface ParsedCidr {
  address: ipaddr.IPv4 | ipaddr.IPv6;
  prefixLength: number;
}

/**
 * Parses "ip/len" or a bare ip (taken as a host prefix), as strictly as Kubernetes (see
 * ip.ts: no leading 0s, no zones, no IPv4-mapped IPv6). Returns null when it is not one.
 */
export function parseCidr(text: string): ParsedCidr | null {
  const value = text.trim();
  if (value.includes('/')) {
    const r = parseStrictCidr(value);
    return r.ok ? { address: r.value.address, prefixLength: r.value.prefixLength } : null;
  }
  const r = parseStrictIp(value);
  return r.ok ? { address: r.value.address, prefixLength: r.value.family === 'ipv4' ? 32 : 128 } : null;
}

/** Canonical text of a CIDR: RFC 5952 address and its prefix length. */
export function canonicalCidr(parsed: ParsedCidr): string {
  return `${parsed.address.toString()}/${parsed.prefixLength}`;
}

/**
 * The IpClaim name for an address, e.g. 192.0.2.10/32 -> 192-0-2-10-32, 2001:db8::a/128 ->
 * 2001-db8--a-128. Kept by argument: planning asks it for every claim of every pass.
 */
export const claimName: (cidr: string) => string = memoized(claimNameOnce, 20_000);

function claimNameOnce(cidr: string): string {
  const parsed = parseCidr(cidr);
  if (!parsed) throw new Error(`not an IP prefix: ${JSON.stringify(cidr)}`);
  const name = canonicalCidr(parsed).replace(/[.:/]/g, '-');
  // "::1" compresses to a leading colon; a name must start with an alphanumeric.
  return name.startsWith('-') ? `0${name}` : name;
}
