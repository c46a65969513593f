import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gratuitousArp, icmpv6Checksum, parseMac, unsolicitedNeighborAdvertisement } from './packets.js';
import { arpProbe, dadSolicitation, parseSighting, probeFrame, solicitedNodeGroup } from './probes.js';

// Golden frames for 02:00:5e:00:53:01 (RFC 7042 documentation MAC). The NS checksum was computed
// apart (Python over the pseudo-header) and both frames decoded by tcpdump from a pcap:
// "Request who-has 192.0.2.10 tell 0.0.0.0" and "[icmp6 sum ok] ... :: > ff02::1:ff00:10:
// neighbor solicitation, who has 2001:db8::10" with "hlim 255".
const MAC = parseMac('02:00:5e:00:53:01');
const PAD = '00'.repeat(18);
const GOLDEN_ARP_PROBE =
  'ffffffffffff' +
  '02005e005301' +
  '0806' +
  '0001' +
  '0800' +
  '06' +
  '04' +
  '0001' +
  '02005e005301' +
  '00000000' +
  '000000000000' +
  'c000020a' +
  PAD;
const GOLDEN_NS_DAD =
  '3333ff000010' +
  '02005e005301' +
  '86dd' +
  '60000000' +
  '0018' +
  '3a' +
  'ff' +
  '00000000000000000000000000000000' +
  'ff0200000000000000000001ff000010' +
  '87' +
  '00' +
  '4ccf' +
  '00000000' +
  '20010db8000000000000000000000010';

test('ARP probe: broadcast request, sender IP 0.0.0.0, zero target MAC, target IP the address (RFC 5227 2.1.1)', () => {
  const frame = arpProbe(MAC, '192.0.2.10');
  assert.is(frame.bytes.toString('hex'), GOLDEN_ARP_PROBE);
  assert.is(frame.kind, 'arp_probe');
  assert.is(frame.ethertype, 0x0806);
  assert.is(probeFrame(MAC, '192.0.2.10').bytes.toString('hex'), GOLDEN_ARP_PROBE);
});

test('DAD solicitation: from :: to the solicited-node group, hop limit 255, no link-layer option (RFC 4862 5.4.2)', () => {
  const frame = dadSolicitation(MAC, '2001:db8::10');
  assert.is(frame.bytes.toString('hex'), GOLDEN_NS_DAD);
  assert.is(frame.bytes.length, 78);
  assert.equal(Array.from(frame.destination), [0x33, 0x33, 0xff, 0, 0, 0x10]);
  assert.equal(solicitedNodeGroup('2001:db8::aa:bbcc:ddee'), [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xcc, 0xdd, 0xee]);
  const src = Array.from(frame.bytes.subarray(22, 38));
  const dst = Array.from(frame.bytes.subarray(38, 54));
  assert.is(icmpv6Checksum(src, dst, frame.bytes.subarray(54)), 0, 'checksum verifies');
});

const OTHER = parseMac('02:00:5e:00:53:99');

test('parsing: an ARP reply or request from a host using the address claims it, naming its MAC', () => {
  const reply = gratuitousArp('reply', OTHER, '192.0.2.10').bytes;
  assert.equal(parseSighting(reply), { kind: 'claims', address: '192.0.2.10', mac: '02:00:5e:00:53:99' });
  // A plain "who-has 192.0.2.1 tell 192.0.2.10" from that host also says it uses .10.
  const whoHas = Buffer.from(gratuitousArp('request', OTHER, '192.0.2.10').bytes);
  whoHas.set([192, 0, 2, 1], 14 + 24);
  assert.equal(parseSighting(whoHas), { kind: 'claims', address: '192.0.2.10', mac: '02:00:5e:00:53:99' });
});

test('parsing: another host probing for the address at the same time', () => {
  assert.equal(parseSighting(arpProbe(OTHER, '192.0.2.10').bytes), { kind: 'probes', address: '192.0.2.10', mac: '02:00:5e:00:53:99' });
  assert.equal(parseSighting(dadSolicitation(OTHER, '2001:db8::10').bytes), {
    kind: 'probes',
    address: '2001:db8::10',
    mac: '02:00:5e:00:53:99',
  });
});

test('parsing: a neighbour advertisement for the target, the MAC from its target link-layer option', () => {
  const na = Buffer.from(unsolicitedNeighborAdvertisement(OTHER, '2001:db8::10').bytes);
  na.set(MAC, 6); // a bridge or proxy may rewrite the Ethernet source: the option names the owner
  assert.equal(parseSighting(na), { kind: 'claims', address: '2001:db8::10', mac: '02:00:5e:00:53:99' });
});

test('parsing: anything else is not a sighting', () => {
  const na = Buffer.from(unsolicitedNeighborAdvertisement(OTHER, '2001:db8::10').bytes);
  na[21] = 64; // hop limit not 255: not from the link
  assert.is(parseSighting(na), null);
  const ipv4 = Buffer.alloc(60);
  ipv4.writeUInt16BE(0x0800, 12);
  assert.is(parseSighting(ipv4), null);
  assert.is(parseSighting(Buffer.alloc(10)), null);
});

test.run();
