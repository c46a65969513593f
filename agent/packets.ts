// Wire formats the agent sends: gratuitous ARP (request and reply forms) and the IPv6
// unsolicited neighbour advertisement. Pure functions from (MAC, address) to frame bytes,
// Ethernet header included, as an AF_PACKET SOCK_RAW socket expects them.
import ipaddr from 'ipaddr.js';

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETH_HEADER = 14;
/** Ethernet minimum frame without FCS; shorter frames are padded (some NICs drop runts). */
export const ETH_MIN_FRAME = 60;

export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
/** ff02::1 (all-nodes) maps to 33:33:00:00:00:01 (RFC 2464 section 7). */
export const ALL_NODES_MAC = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);
export const ALL_NODES_IPV6 = 'ff02::1';

/** One frame to send: the bytes, and the EtherType and destination MAC for sockaddr_ll. */
export interface Frame {
  kind: AnnouncementKind;
  bytes: Buffer;
  ethertype: number;
  destination: Uint8Array;
}

export type AnnouncementKind = 'garp_request' | 'garp_reply' | 'na';

/** "aa:bb:cc:dd:ee:ff" -> 6 bytes; throws on anything else. */
export function parseMac(text: string): Uint8Array {
  const parts = text.trim().split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

function ipv4Bytes(address: string): number[] {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() !== 'ipv4') throw new Error(`not an IPv4 address: ${address}`);
  return parsed.toByteArray();
}

function ipv6Bytes(address: string): number[] {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() !== 'ipv6') throw new Error(`not an IPv6 address: ${address}`);
  return parsed.toByteArray();
}

export function ethernetHeader(destination: Uint8Array, source: Uint8Array, ethertype: number): Buffer {
  const header = Buffer.alloc(ETH_HEADER);
  header.set(destination, 0);
  header.set(source, 6);
  header.writeUInt16BE(ethertype, 12);
  return header;
}

/** Pads a frame to Ethernet's 60-byte minimum (before the FCS). */
export function pad(frame: Buffer): Buffer {
  return frame.length >= ETH_MIN_FRAME ? frame : Buffer.concat([frame, Buffer.alloc(ETH_MIN_FRAME - frame.length)]);
}

/**
 * Gratuitous ARP for `address` from `mac`, broadcast. Both forms carry the address as sender
 * and target protocol address. The request form (RFC 5227 section 2.3 "ARP Announcement") has a
 * zero target hardware address; the reply form (RFC 5944 section 4.6) repeats the sender's MAC
 * there. Some hosts and switches honour only one of the two, so the agent sends both.
 */
export function gratuitousArp(form: 'request' | 'reply', mac: Uint8Array, address: string): Frame {
  const ip = ipv4Bytes(address);
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // hardware type: Ethernet
  arp.writeUInt16BE(0x0800, 2); // protocol type: IPv4
  arp.writeUInt8(6, 4); // hardware address length
  arp.writeUInt8(4, 5); // protocol address length
  arp.writeUInt16BE(form === 'request' ? 1 : 2, 6);
  arp.set(mac, 8); // sender hardware address
  arp.set(ip, 14); // sender protocol address
  if (form === 'reply') arp.set(mac, 18); // target hardware address (zero in the request form)
  arp.set(ip, 24); // target protocol address
  return {
    kind: form === 'request' ? 'garp_request' : 'garp_reply',
    bytes: pad(Buffer.concat([ethernetHeader(BROADCAST_MAC, mac, ETHERTYPE_ARP), arp])),
    ethertype: ETHERTYPE_ARP,
    destination: BROADCAST_MAC,
  };
}

/** RFC 1071 one's-complement sum over the IPv6 pseudo-header (RFC 8200 section 8.1) and the message. */
export function icmpv6Checksum(source: number[], destination: number[], message: Buffer): number {
  const pseudo = Buffer.alloc(40);
  pseudo.set(source, 0);
  pseudo.set(destination, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo.writeUInt8(58, 39); // next header: ICMPv6
  const data = Buffer.concat([pseudo, message, Buffer.alloc(message.length % 2)]);
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) sum += data.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Unsolicited neighbour advertisement (RFC 4861 section 7.2.6) for `address` from `mac`: to
 * ff02::1, hop limit 255 (receivers drop anything else, section 7.1.2), Override flag set so
 * existing cache entries are replaced, Solicited and Router flags clear, with the target
 * link-layer address option. The source is the address itself, which is on the interface.
 */
export function unsolicitedNeighborAdvertisement(mac: Uint8Array, address: string): Frame {
  const target = ipv6Bytes(address);
  const allNodes = ipv6Bytes(ALL_NODES_IPV6);
  const icmp = Buffer.alloc(32);
  icmp.writeUInt8(136, 0); // type: neighbour advertisement
  icmp.writeUInt8(0, 1); // code
  icmp.writeUInt32BE(0x20000000, 4); // flags: R=0 S=0 O=1
  icmp.set(target, 8);
  icmp.writeUInt8(2, 24); // option: target link-layer address
  icmp.writeUInt8(1, 25); // option length in units of 8 bytes
  icmp.set(mac, 26);
  icmp.writeUInt16BE(icmpv6Checksum(target, allNodes, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0); // version 6, traffic class 0, flow label 0
  ip6.writeUInt16BE(icmp.length, 4);
  ip6.writeUInt8(58, 6); // next header: ICMPv6
  ip6.writeUInt8(255, 7); // hop limit
  ip6.set(target, 8);
  ip6.set(allNodes, 24);
  return {
    kind: 'na',
    bytes: pad(Buffer.concat([ethernetHeader(ALL_NODES_MAC, mac, ETHERTYPE_IPV6), ip6, icmp])),
    ethertype: ETHERTYPE_IPV6,
    destination: ALL_NODES_MAC,
  };
}

/** The frames of one announcement round for an address: both ARP forms for IPv4, one NA for IPv6. */
export function announcementFrames(mac: Uint8Array, address: string): Frame[] {
  return ipaddr.parse(address).kind() === 'ipv4'
    ? [gratuitousArp('request', mac, address), gratuitousArp('reply', mac, address)]
    : [unsolicitedNeighborAdvertisement(mac, address)];
}

/**
 * struct sockaddr_ll (linux/if_packet.h) for sendto: family AF_PACKET and ifindex in host
 * byte order, protocol in network byte order, halen 6 and the destination MAC.
 */
export function sockaddrLl(ifindex: number, ethertype: number, destination: Uint8Array, littleEndian = true): Buffer {
  const sa = Buffer.alloc(20);
  if (littleEndian) {
    sa.writeUInt16LE(17, 0); // AF_PACKET
    sa.writeInt32LE(ifindex, 4);
  } else {
    sa.writeUInt16BE(17, 0);
    sa.writeInt32BE(ifindex, 4);
  }
  sa.writeUInt16BE(ethertype, 2);
  sa.writeUInt8(6, 11); // sll_halen
  sa.set(destination, 12);
  return sa;
}
