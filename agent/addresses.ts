// Pure decisions about addresses on the node: what the host has (parsed from `ip -j addr`),
// which of those the agent owns, which interface a claim goes on, and the plan that turns what
// is there into what the claims want. Nothing here touches the system.
import ipaddr from 'ipaddr.js';
import { parseCidr } from '../api/names.js';
import { specialPurpose, type IpFamily } from '../api/ip.js';
import { asStrings, isRecord } from '../lib/json.js';

/** An address family as iproute2 names it (`ip -j addr` "family"); the API's IpFamily is 'ipv4' | 'ipv6'. */
export type InetFamily = 'inet' | 'inet6';

export interface HostAddress {
  ip: string;
  prefixLength: number;
  family: InetFamily;
  /** The IFA_RT_PRIORITY ("metric") the address was added with, if any. */
  metric?: number;
  dadFailed: boolean;
  tentative: boolean;
}

export interface HostLink {
  name: string;
  ifindex: number;
  /** null for links without an Ethernet address (loopback, tunnels). */
  mac: string | null;
  up: boolean;
  noArp: boolean;
  addresses: HostAddress[];
}

/**
 * Ownership mark. iproute2 6.1 (Debian 12) cannot set the kernel's address protocol field
 * (`ip addr add ... proto N` needs iproute2 >= 6.3), and address labels exist for IPv4 only and
 * must fit in 15 characters. Every address the agent adds therefore carries this metric
 * (IFA_RT_PRIORITY), which works for both families, survives an agent restart and shows in
 * `ip addr` as "metric 4242". It only sets the priority of the prefix route the kernel adds for
 * the address (none for an IPv4 /32; a /128 host route for IPv6), so it changes no forwarding.
 * An address without this mark is never changed or removed by the agent.
 */
export const OWNER_METRIC = 4242;

export function isOwned(address: HostAddress): boolean {
  return address.metric === OWNER_METRIC;
}

/** RFC 5952 text of an address (as ipaddr.js prints it), so addresses compare as strings. */
function canonicalIp(text: string): string {
  try {
    return ipaddr.parse(text).toString();
  } catch {
    return text;
  }
}

/** One entry of a link's `addr_info`, or null when it is not an inet / inet6 address. */
function hostAddressOf(a: unknown): HostAddress | null {
  if (!isRecord(a) || (a.family !== 'inet' && a.family !== 'inet6')) return null;
  if (typeof a.local !== 'string' || typeof a.prefixlen !== 'number') return null;
  return {
    ip: canonicalIp(a.local),
    prefixLength: a.prefixlen,
    family: a.family,
    ...(typeof a.metric === 'number' ? { metric: a.metric } : {}),
    dadFailed: a.dadfailed === true,
    tentative: a.tentative === true,
  };
}

/** One link of `ip -j addr show`, or null when it lacks a name or index. */
function hostLinkOf(entry: unknown): HostLink | null {
  if (!isRecord(entry) || typeof entry.ifname !== 'string' || typeof entry.ifindex !== 'number') return null;
  const flags = asStrings(entry.flags);
  const addrInfo: unknown[] = Array.isArray(entry.addr_info) ? entry.addr_info : [];
  return {
    name: entry.ifname,
    ifindex: entry.ifindex,
    mac: entry.link_type === 'ether' && typeof entry.address === 'string' ? entry.address : null,
    up: flags.includes('UP'),
    noArp: flags.includes('NOARP'),
    addresses: addrInfo.map(hostAddressOf).filter((a): a is HostAddress => a !== null),
  };
}

/** Parses `ip -j addr show` output; entries that do not fit are skipped. */
export function parseIpAddrJson(json: unknown): HostLink[] {
  if (!Array.isArray(json)) return [];
  return json.map(hostLinkOf).filter((l): l is HostLink => l !== null);
}

/** A claim assigned to this node, reduced to what the host needs. */
export interface WantedAddress {
  claim: string;
  ip: string;
  prefixLength: number;
  family: InetFamily;
  /** The claim's spec.link. */
  link?: string;
}

export type WantResult = { ok: true; value: WantedAddress } | { ok: false; reason: 'InvalidAddress'; message: string };

/** Claim name and cidr -> the address to hold; `mask` is the prefix length for a bare IP. */
export function wantedAddress(claim: string, cidr: string, link: string | undefined, mask?: number): WantResult {
  const parsed = parseCidr(cidr);
  if (!parsed) return { ok: false, reason: 'InvalidAddress', message: `spec.cidr ${JSON.stringify(cidr)} is not an IP prefix` };
  // Defence in depth: the scheduler never hands these out, but a claim written by hand could name one,
  // and loopback or multicast on the node's interface would break the node, not serve a Service.
  const special = specialPurpose({ address: parsed.address, family: parsed.address.kind() as IpFamily, text: parsed.address.toString() });
  if (special)
    return {
      ok: false,
      reason: 'InvalidAddress',
      message: `spec.cidr ${JSON.stringify(cidr)} is a ${special.kind} address (${special.cidr}), which no node puts on its interface`,
    };
  const family: InetFamily = parsed.address.kind() === 'ipv4' ? 'inet' : 'inet6';
  const max = family === 'inet' ? 32 : 128;
  const prefixLength = cidr.includes('/') ? parsed.prefixLength : Math.min(mask ?? max, max);
  return { ok: true, value: { claim, ip: parsed.address.toString(), prefixLength, family, ...(link ? { link } : {}) } };
}

export type InterfaceChoice =
  | { ok: true; iface: string; why: 'claim-link' | 'flag' | 'subnet' | 'default-route' }
  | { ok: false; reason: 'InterfaceNotFound' | 'NoInterface'; message: string };

export interface InterfaceContext {
  links: HostLink[];
  /** Precomputed subnetsOf(links); computed on demand when absent. */
  subnets?: Subnet[];
  /** --iface, if given. */
  flagIface?: string;
  /** Interface of the default route, per family. */
  defaultRoute: Partial<Record<InetFamily, string>>;
}

interface Subnet {
  link: string;
  network: ipaddr.IPv4 | ipaddr.IPv6;
  prefixLength: number;
  family: InetFamily;
}

/** Subnets of the addresses we did not add (no host prefixes, no link-local), parsed once. */
function subnetsOf(links: HostLink[]): Subnet[] {
  const out: Subnet[] = [];
  for (const link of links) {
    for (const a of link.addresses) {
      const max = a.family === 'inet' ? 32 : 128;
      if (isOwned(a) || a.prefixLength >= max || a.prefixLength === 0) continue;
      const network = ipaddr.parse(a.ip);
      if (network.range() === 'linkLocal') continue;
      out.push({ link: link.name, network, prefixLength: a.prefixLength, family: a.family });
    }
  }
  return out;
}

/** Link holding a subnet that contains ip, the longest prefix winning. */
function subnetLink(ip: string, family: InetFamily, subnets: Subnet[]): string | undefined {
  const addr = ipaddr.parse(ip);
  let best: Subnet | undefined;
  for (const s of subnets) {
    if (s.family === family && addr.match(s.network, s.prefixLength) && (!best || s.prefixLength > best.prefixLength)) best = s;
  }
  return best?.link;
}

/**
 * Where an address goes: the claim's link, else --iface, else the interface whose subnet
 * holds the address (kube-vip#903: users expect this, not the default-route NIC), else the
 * interface of the default route for the address family.
 */
export function chooseInterface(want: WantedAddress, ctx: InterfaceContext): InterfaceChoice {
  const exists = (name: string): boolean => ctx.links.some((l) => l.name === name);
  const named = want.link
    ? { name: want.link, why: 'claim-link' as const }
    : ctx.flagIface
      ? { name: ctx.flagIface, why: 'flag' as const }
      : undefined;
  if (named) {
    return exists(named.name)
      ? { ok: true, iface: named.name, why: named.why }
      : {
          ok: false,
          reason: 'InterfaceNotFound',
          message: `interface ${named.name} (${named.why === 'claim-link' ? 'spec.link' : '--iface'}) does not exist on this node`,
        };
  }
  const bySubnet = subnetLink(want.ip, want.family, ctx.subnets ?? subnetsOf(ctx.links));
  if (bySubnet) return { ok: true, iface: bySubnet, why: 'subnet' };
  const byRoute = ctx.defaultRoute[want.family];
  if (byRoute && exists(byRoute)) return { ok: true, iface: byRoute, why: 'default-route' };
  return {
    ok: false,
    reason: 'NoInterface',
    message: `no interface given, none has a subnet holding ${want.ip} and there is no ${want.family === 'inet' ? 'IPv4' : 'IPv6'} default route`,
  };
}

export interface AddressOp {
  op: 'add' | 'remove';
  ip: string;
  prefixLength: number;
  family: InetFamily;
  iface: string;
  /** Only for op "add": a claim this address is for. */
  claim?: string;
}

export type FailReason = 'InterfaceNotFound' | 'NoInterface' | 'InvalidAddress' | 'DuplicateClaim';

export interface Plan {
  /** Run in this order: removals first (they free an address that moves between interfaces). */
  ops: AddressOp[];
  /** Claim -> interface for every claim that should be up after the ops. */
  placement: Map<string, { iface: string; want: WantedAddress }>;
  failed: { claim: string; reason: FailReason; message: string }[];
  /** Our own addresses stuck in DAD-failed state, removed and added back without DAD. */
  recovered: AddressOp[];
}

function findAddress(links: HostLink[], iface: string, ip: string): HostAddress | undefined {
  return links.find((l) => l.name === iface)?.addresses.find((a) => a.ip === ip);
}

const addressIndex = (links: HostLink[]): Map<string, HostAddress> =>
  new Map(links.flatMap((l) => l.addresses.map((a) => [`${l.name} ${a.ip}`, a] as const)));

/**
 * The diff: every wanted address that is missing on its interface is added (marked as ours);
 * our own addresses nobody wants (or on the wrong interface) are removed; addresses we did not
 * add are left alone, and when one already holds a wanted IP it serves the claim as it is.
 */
export function planReconcile(wanted: WantedAddress[], ctx: InterfaceContext): Plan {
  const plan: Plan = { ops: [], placement: new Map(), failed: [], recovered: [] };
  const adds: AddressOp[] = [];
  const index = addressIndex(ctx.links);
  const withSubnets = { ...ctx, subnets: ctx.subnets ?? subnetsOf(ctx.links) };
  const byIp = new Map<string, string>();
  for (const want of [...wanted].sort((a, b) => a.claim.localeCompare(b.claim))) {
    const taken = byIp.get(want.ip);
    if (taken !== undefined) {
      plan.failed.push({ claim: want.claim, reason: 'DuplicateClaim', message: `${want.ip} is already held for claim ${taken}` });
      continue;
    }
    const choice = chooseInterface(want, withSubnets);
    if (!choice.ok) {
      plan.failed.push({ claim: want.claim, reason: choice.reason, message: choice.message });
      continue;
    }
    byIp.set(want.ip, want.claim);
    plan.placement.set(want.claim, { iface: choice.iface, want });
    const present = index.get(`${choice.iface} ${want.ip}`);
    const op: AddressOp = {
      op: 'add',
      ip: want.ip,
      prefixLength: want.prefixLength,
      family: want.family,
      iface: choice.iface,
      claim: want.claim,
    };
    if (!present) adds.push(op);
    else if (isOwned(present) && present.dadFailed) {
      plan.ops.push({ ...op, op: 'remove', prefixLength: present.prefixLength });
      adds.push(op);
      plan.recovered.push(op);
    }
  }
  for (const link of ctx.links) {
    for (const a of link.addresses) {
      if (!isOwned(a)) continue;
      const claim = byIp.get(a.ip);
      const keep = claim !== undefined && plan.placement.get(claim)?.iface === link.name;
      if (!keep) plan.ops.push({ op: 'remove', ip: a.ip, prefixLength: a.prefixLength, family: a.family, iface: link.name });
    }
  }
  plan.ops.push(...adds);
  return plan;
}

/** `ip -batch` lines for the ops. Adds use `replace` so a retry after a partial batch is harmless. */
export function batchLines(ops: AddressOp[]): string[] {
  return ops.map((o) =>
    o.op === 'remove'
      ? `addr del ${o.ip}/${o.prefixLength} dev ${o.iface}`
      : `addr replace ${o.ip}/${o.prefixLength} dev ${o.iface} metric ${OWNER_METRIC}${o.family === 'inet6' ? ' nodad' : ''}`,
  );
}

/**
 * Errors of `ip -force -batch -`: it prints the error text and then "Command failed -:N" for
 * the N-th line (1-based). Returns line index (0-based) -> message.
 */
export function parseBatchErrors(stderr: string): Map<number, string> {
  const errors = new Map<number, string>();
  let pending: string[] = [];
  for (const line of stderr.split('\n')) {
    const failed = /^Command failed -:(\d+)\s*$/.exec(line.trim());
    if (failed) {
      errors.set(Number(failed[1]) - 1, pending.join('; ') || 'failed');
      pending = [];
    } else if (line.trim()) pending.push(line.trim());
  }
  return errors;
}

/** Whether a wanted address is up on its interface (present, and not stuck in DAD failure). */
export function isUp(links: HostLink[], iface: string, ip: string): boolean {
  const a = findAddress(links, iface, ip);
  return a !== undefined && !a.dadFailed;
}

/** The address to be probed at: the first global address we did not add on iface, IPv4 first. */
export function primaryAddress(links: HostLink[], iface: string | undefined): string | undefined {
  const link = iface ? links.find((l) => l.name === iface) : undefined;
  if (!link) return undefined;
  const candidates = link.addresses.filter(
    (a) => !isOwned(a) && !a.dadFailed && ipaddr.parse(a.ip).range() !== 'linkLocal' && ipaddr.parse(a.ip).range() !== 'loopback',
  );
  return (candidates.find((a) => a.family === 'inet') ?? candidates.find((a) => a.family === 'inet6'))?.ip;
}
