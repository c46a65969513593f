import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arpRequest, neighbourSolicitation, probeFrame, solicitedNode } from './probe-frames.js';

// Cross-checked once with `tcpdump -r -vv -e`: "Request who-has 192.0.2.50 tell 192.0.2.2" and
// "2001:db8::2 > ff02::1:ff00:100: [icmp6 sum ok] ... neighbor solicitation, who has 2001:db8::100,
// source link-address option 02:00:00:00:00:02", hlim 255.
const GOLDEN_ARP =
  'ffffffffffff' +
  '020000000002' +
  '0806' +
  '0001080006040001' +
  '020000000002' +
  'c0000202' +
  '000000000000' +
  'c0000232' +
  '00'.repeat(18);
const GOLDEN_NS =
  '3333ff000100' +
  '020000000002' +
  '86dd' +
  '60000000' +
  '0020' +
  '3a' +
  'ff' +
  '20010db8000000000000000000000002' +
  'ff0200000000000000000001ff000100' +
  '87' +
  '00' +
  '1a29' +
  '00000000' +
  '20010db8000000000000000000000100' +
  '01' +
  '01' +
  '020000000002';

test('ARP request from the client for an external IP: broadcast, opcode 1, golden bytes', () => {
  const f = arpRequest('02:00:00:00:00:02', '192.0.2.2', '192.0.2.50');
  assert.is(f.bytes.toString('hex'), GOLDEN_ARP);
  assert.is(f.ethertype, 0x0806);
});

test('neighbour solicitation to the solicited-node group, with checksum and source link-layer option', () => {
  const f = neighbourSolicitation('02:00:00:00:00:02', '2001:db8::2', '2001:db8::100');
  assert.is(f.bytes.toString('hex'), GOLDEN_NS);
  assert.equal([...solicitedNode('2001:db8::1:2:3').mac], [0x33, 0x33, 0xff, 0x02, 0x00, 0x03]);
});

test('probeFrame picks the family from the address', () => {
  const client = { mac: '02:00:00:00:00:02', ip4: '192.0.2.2', ip6: '2001:db8::2' };
  assert.is(probeFrame(client, '192.0.2.50').ethertype, 0x0806);
  assert.is(probeFrame(client, '2001:db8::100').ethertype, 0x86dd);
  assert.throws(() => arpRequest('02:00:00:00:00:02', '192.0.2.2', '2001:db8::1'));
});

test.run();
