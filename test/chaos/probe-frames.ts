// The checker's own questions on the wire: an ARP request ("who has X, tell <client>") and an
// IPv6 neighbour solicitation for X, sent from the client's link every ~100 ms, so that every
// node whose kernel still holds X answers and the capture sees it (the agent's own
// announcements alone miss a kernel that answers after its agent stopped announcing).
// Pure encoders, golden-byte tested; prober.ts sends them.
import ipaddr from 'ipaddr.js';
import { icmpv6Checksum, parseMac } from '../../agent/packets.js';

const ETH_MIN_FRAME = 60;
const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export interface ProbeFrame {
  bytes: Buffer;
  ethertype: number;
  destination: Uint8Array;
}

function ethernet(destination: Uint8Array, source: Uint8Array, ethertype: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(14);
  header.set(destination, 0);
  header.set(source, 6);
  header.writeUInt16BE(ethertype, 12);
  const frame = Buffer.concat([header, payload]);
  return frame.length >= ETH_MIN_FRAME ? frame : Buffer.concat([frame, Buffer.alloc(ETH_MIN_FRAME - frame.length)]);
}

function bytesOf(address: string, kind: 'ipv4' | 'ipv6'): number[] {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() !== kind) throw new Error(`not an ${kind} address: ${address}`);
  return parsed.toByteArray();
}

/** ARP request (RFC 826) for target from (mac, senderIp), to broadcast. */
export function arpRequest(mac: string, senderIp: string, target: string): ProbeFrame {
  const own = parseMac(mac);
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0);
  arp.writeUInt16BE(0x0800, 2);
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(1, 6);
  arp.set(own, 8);
  arp.set(bytesOf(senderIp, 'ipv4'), 14);
  arp.set(bytesOf(target, 'ipv4'), 24);
  return { bytes: ethernet(BROADCAST, own, 0x0806, arp), ethertype: 0x0806, destination: BROADCAST };
}

/** Solicited-node multicast address of target (RFC 4291 2.7.1) and its MAC (RFC 2464 7). */
export function solicitedNode(target: string): { address: number[]; mac: Uint8Array } {
  const t = bytesOf(target, 'ipv6');
  const address = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13] ?? 0, t[14] ?? 0, t[15] ?? 0];
  return { address, mac: Uint8Array.of(0x33, 0x33, 0xff, t[13] ?? 0, t[14] ?? 0, t[15] ?? 0) };
}

/** Neighbour solicitation (RFC 4861 4.3) for target from (mac, source), hop limit 255, with the source link-layer option. */
export function neighbourSolicitation(mac: string, source: string, target: string): ProbeFrame {
  const own = parseMac(mac);
  const src = bytesOf(source, 'ipv6');
  const dst = solicitedNode(target);
  const icmp = Buffer.alloc(32);
  icmp.writeUInt8(135, 0);
  icmp.set(bytesOf(target, 'ipv6'), 8);
  icmp.writeUInt8(1, 24); // option: source link-layer address
  icmp.writeUInt8(1, 25);
  icmp.set(own, 26);
  icmp.writeUInt16BE(icmpv6Checksum(src, dst.address, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6.writeUInt8(58, 6);
  ip6.writeUInt8(255, 7);
  ip6.set(src, 8);
  ip6.set(dst.address, 24);
  return { bytes: ethernet(dst.mac, own, 0x86dd, Buffer.concat([ip6, icmp])), ethertype: 0x86dd, destination: dst.mac };
}

/** The question to ask for one address, by family. */
export function probeFrame(client: { mac: string; ip4: string; ip6: string }, target: string): ProbeFrame {
  return target.includes(':') ? neighbourSolicitation(client.mac, client.ip6, target) : arpRequest(client.mac, client.ip4, target);
}
