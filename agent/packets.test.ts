import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  announcementFrames,
  formatMac,
  gratuitousArp,
  icmpv6Checksum,
  parseMac,
  sockaddrLl,
  unsolicitedNeighborAdvertisement,
} from './packets.js';

// Golden frames for 02:00:5e:00:53:01 (RFC 7042 documentation MAC). Cross-checked once by writing
// them to a pcap file: `tcpdump -r -vv -e` decodes "Request who-has 192.0.2.10 tell 192.0.2.10",
// "Reply 192.0.2.10 is-at 02:00:5e:00:53:01" and "[icmp6 sum ok] ... neighbor advertisement,
// tgt is 2001:db8::10, Flags [override]" with "hlim 255".
const MAC = parseMac('02:00:5e:00:53:01');
const PAD = '00'.repeat(18);
const GOLDEN_ARP_REQUEST =
  'ffffffffffff' +
  '02005e005301' +
  '0806' +
  '0001' +
  '0800' +
  '06' +
  '04' +
  '0001' +
  '02005e005301' +
  'c000020a' +
  '000000000000' +
  'c000020a' +
  PAD;
const GOLDEN_ARP_REPLY =
  'ffffffffffff' +
  '02005e005301' +
  '0806' +
  '0001' +
  '0800' +
  '06' +
  '04' +
  '0002' +
  '02005e005301' +
  'c000020a' +
  '02005e005301' +
  'c000020a' +
  PAD;
const GOLDEN_NA =
  '333300000001' +
  '02005e005301' +
  '86dd' +
  '60000000' +
  '0020' +
  '3a' +
  'ff' +
  '20010db8000000000000000000000010' +
  'ff020000000000000000000000000001' +
  '88' +
  '00' +
  '480c' +
  '20000000' +
  '20010db8000000000000000000000010' +
  '02' +
  '01' +
  '02005e005301';

test('gratuitous ARP request: broadcast, opcode 1, sender = target = the address, zero target MAC', () => {
  const frame = gratuitousArp('request', MAC, '192.0.2.10');
  assert.is(frame.bytes.toString('hex'), GOLDEN_ARP_REQUEST);
  assert.is(frame.bytes.length, 60);
  assert.is(frame.kind, 'garp_request');
  assert.is(frame.ethertype, 0x0806);
  assert.is(formatMac(frame.destination), 'ff:ff:ff:ff:ff:ff');
});

test('gratuitous ARP reply: opcode 2 with the sender MAC also as target MAC', () => {
  const frame = gratuitousArp('reply', MAC, '192.0.2.10');
  assert.is(frame.bytes.toString('hex'), GOLDEN_ARP_REPLY);
  assert.is(frame.kind, 'garp_reply');
});

test('unsolicited NA: to ff02::1 / 33:33:00:00:00:01, hop limit 255, Override flag, correct checksum', () => {
  const frame = unsolicitedNeighborAdvertisement(MAC, '2001:db8::10');
  assert.is(frame.bytes.toString('hex'), GOLDEN_NA);
  assert.is(frame.bytes.length, 86);
  assert.is(frame.bytes[21], 255, 'hop limit');
  assert.is(formatMac(frame.destination), '33:33:00:00:00:01');
});

test('the NA checksum verifies: summing the message with its checksum gives zero', () => {
  const frame = unsolicitedNeighborAdvertisement(MAC, '2001:db8:1::abcd');
  const src = Array.from(frame.bytes.subarray(22, 38));
  const dst = Array.from(frame.bytes.subarray(38, 54));
  assert.is(icmpv6Checksum(src, dst, frame.bytes.subarray(54)), 0);
});

test('an announcement round is both ARP forms for IPv4 and one NA for IPv6', () => {
  assert.equal(
    announcementFrames(MAC, '198.51.100.1').map((f) => f.kind),
    ['garp_request', 'garp_reply'],
  );
  assert.equal(
    announcementFrames(MAC, '2001:db8::1').map((f) => f.kind),
    ['na'],
  );
});

test('wrong families and malformed MACs are refused', () => {
  assert.throws(() => gratuitousArp('request', MAC, '2001:db8::1'), /not an IPv4 address/);
  assert.throws(() => unsolicitedNeighborAdvertisement(MAC, '192.0.2.1'), /not an IPv6 address/);
  assert.throws(() => parseMac('02:00:5e:00:53'), /not a MAC address/);
  assert.throws(() => parseMac('zz:00:5e:00:53:01'), /not a MAC address/);
  assert.is(formatMac(parseMac('02:00:5E:00:53:0A')), '02:00:5e:00:53:0a');
});

test('sockaddr_ll: AF_PACKET and ifindex in host order, protocol big-endian, halen 6, MAC', () => {
  assert.is(sockaddrLl(7, 0x0806, MAC).toString('hex'), '1100' + '0806' + '07000000' + '0000' + '00' + '06' + '02005e005301' + '0000');
  assert.is(
    sockaddrLl(7, 0x86dd, MAC, false).toString('hex'),
    '0011' + '86dd' + '00000007' + '0000' + '00' + '06' + '02005e005301' + '0000',
  );
});

test.run();
