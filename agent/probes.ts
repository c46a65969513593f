// Wire formats for address conflict detection (issue 12): the probes the agent sends before
// an address goes on the wire for the first time, and the parsing of what it receives. Pure,
// like packets.ts: bytes in, bytes or a small record out, Ethernet header included (what an
// AF_PACKET SOCK_RAW socket hands over).
//   - ARP probe, RFC 5227 section 2.1.1: an ARP request with sender IP 0.0.0.0 (so no
//     neighbour caches the probing host) and target IP the address, target MAC zero.
//   - IPv6: a neighbour solicitation from :: to the solicited-node multicast group of the
//     address (RFC 4862 section 5.4.2, duplicate address detection), without the source
//     link-layer address option (RFC 4861 7.2.2 forbids it when the source is ::).
import ipaddr from 'ipaddr.js';
import { BROADCAST_MAC, ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV6, ethernetHeader, icmpv6Checksum, pad, type Frame } from './packets.js';

/** Frames used for probing; 'arp_probe' and 'ns_dad' extend the announcement kinds. */
export interface ProbeFrame extends Omit<Frame, 'kind'> {
  kind: 'arp_probe' | 'ns_dad';
}

/** RFC 5227 2.1.1 ARP probe for `address` from `mac`, broadcast. */
export function arpProbe(mac: Uint8Array, address: string): ProbeFrame {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() !== 'ipv4') throw new Error(`not an IPv4 address: ${address}`);
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // Ethernet
  arp.writeUInt16BE(0x0800, 2); // IPv4
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(1, 6); // request
  arp.set(mac, 8); // sender MAC: ours
  // sender IP (14..17) stays 0.0.0.0, target MAC (18..23) stays zero
  arp.set(parsed.toByteArray(), 24);
  return {
    kind: 'arp_probe',
    bytes: pad(Buffer.concat([ethernetHeader(BROADCAST_MAC, mac, ETHERTYPE_ARP), arp])),
    ethertype: ETHERTYPE_ARP,
    destination: BROADCAST_MAC,
  };
}

/** ff02::1:ffXX:XXXX, the solicited-node multicast group of an address (RFC 4291 2.7.1). */
export function solicitedNodeGroup(address: string): number[] {
  const bytes = ipaddr.parse(address).toByteArray();
  return [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, bytes[13] ?? 0, bytes[14] ?? 0, bytes[15] ?? 0];
}

/** RFC 4862 5.4.2 DAD neighbour solicitation for `address`, from :: and `mac`. */
export function dadSolicitation(mac: Uint8Array, address: string): ProbeFrame {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() !== 'ipv6') throw new Error(`not an IPv6 address: ${address}`);
  const target = parsed.toByteArray();
  const group = solicitedNodeGroup(address);
  const unspecified = new Array<number>(16).fill(0);
  const icmp = Buffer.alloc(24);
  icmp.writeUInt8(135, 0); // neighbour solicitation
  icmp.set(target, 8);
  icmp.writeUInt16BE(icmpv6Checksum(unspecified, group, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6.writeUInt8(58, 6);
  ip6.writeUInt8(255, 7); // hop limit 255 (RFC 4861 7.1.1)
  ip6.set(group, 24); // source :: (8..23 stay zero)
  const destination = Uint8Array.of(0x33, 0x33, ...group.slice(12));
  return {
    kind: 'ns_dad',
    bytes: pad(Buffer.concat([ethernetHeader(destination, mac, ETHERTYPE_IPV6), ip6, icmp])),
    ethertype: ETHERTYPE_IPV6,
    destination,
  };
}

export function probeFrame(mac: Uint8Array, address: string): ProbeFrame {
  return ipaddr.parse(address).kind() === 'ipv4' ? arpProbe(mac, address) : dadSolicitation(mac, address);
}

/**
 * What a received frame says about who uses an address:
 *  - 'claims': the sender says it has `address` (ARP request or reply with sender IP = address,
 *    or a neighbour advertisement for target = address); `mac` is who.
 *  - 'probes': another host is probing for `address` right now (ARP probe with sender IP 0,
 *    or DAD solicitation from ::); RFC 5227 2.1.1 and RFC 4862 5.4.3 count it as a conflict
 *    while we probe too.
 */
export interface Sighting {
  kind: 'claims' | 'probes';
  address: string;
  /** The MAC that sent it, "aa:bb:cc:dd:ee:ff" (the ARP sender MAC, or the NA's target link-layer option, else the Ethernet source). */
  mac: string;
}

const macText = (b: Buffer | Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Parses an Ethernet frame holding ARP, a neighbour solicitation or advertisement; null for anything else. */
export function parseSighting(frame: Buffer): Sighting | null {
  if (frame.length < ETH_HEADER + 28) return null;
  const ethertype = frame.readUInt16BE(12);
  if (ethertype === ETHERTYPE_ARP) return parseArp(frame.subarray(ETH_HEADER));
  if (ethertype === ETHERTYPE_IPV6) return parseNeighbor(frame, frame.subarray(ETH_HEADER));
  return null;
}

function parseArp(arp: Buffer): Sighting | null {
  if (arp.readUInt16BE(0) !== 1 || arp.readUInt16BE(2) !== 0x0800 || arp[4] !== 6 || arp[5] !== 4) return null;
  const op = arp.readUInt16BE(6);
  if (op !== 1 && op !== 2) return null;
  const mac = arp.subarray(8, 14);
  const sender = arp.subarray(14, 18);
  const target = arp.subarray(24, 28);
  if (sameBytes(sender, new Uint8Array(4))) {
    return op === 1 ? { kind: 'probes', address: ipaddr.fromByteArray(Array.from(target)).toString(), mac: macText(mac) } : null;
  }
  return { kind: 'claims', address: ipaddr.fromByteArray(Array.from(sender)).toString(), mac: macText(mac) };
}

function parseNeighbor(frame: Buffer, ip6: Buffer): Sighting | null {
  if (ip6.length < 40 + 24 || (ip6[0] ?? 0) >> 4 !== 6) return null;
  if (ip6[6] !== 58 || ip6[7] !== 255) return null; // ICMPv6 only, and only from the link (hop limit 255)
  const icmp = ip6.subarray(40, 40 + ip6.readUInt16BE(4));
  if (icmp.length < 24) return null;
  const type = icmp[0];
  const target = ipaddr.fromByteArray(Array.from(icmp.subarray(8, 24))).toString();
  const source = ip6.subarray(8, 24);
  if (type === 135) {
    return sameBytes(source, new Uint8Array(16)) ? { kind: 'probes', address: target, mac: macText(frame.subarray(6, 12)) } : null;
  }
  if (type !== 136) return null;
  let mac = macText(frame.subarray(6, 12));
  for (let at = 24; at + 8 <= icmp.length;) {
    const optType = icmp[at];
    const len = (icmp[at + 1] ?? 0) * 8;
    if (len === 0) break;
    if (optType === 2 && len >= 8) mac = macText(icmp.subarray(at + 2, at + 8));
    at += len;
  }
  return { kind: 'claims', address: target, mac };
}
