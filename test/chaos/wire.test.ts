import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gratuitousArp, parseMac, unsolicitedNeighborAdvertisement } from '../../agent/packets.js';
import { decodeFrame, PcapReader, type CapturedFrame } from '../lab/capture.js';
import { arpRequest } from './probe-frames.js';
import { WireJudge, wireClaim } from './wire.js';

const A = '02:00:00:00:00:11';
const B = '02:00:00:00:00:12';
const CLIENT = '02:00:00:00:00:02';
const VIP = '192.0.2.50';

/** An ARP reply as a node's kernel sends it to the client's request: unicast, sender = VIP. */
function kernelReply(mac: string, ip: string, t: number): CapturedFrame {
  const bytes = Buffer.from(
    CLIENT.replace(/:/g, '') +
      mac.replace(/:/g, '') +
      '0806' +
      '0001080006040002' +
      mac.replace(/:/g, '') +
      Buffer.from(ip.split('.').map(Number)).toString('hex') +
      CLIENT.replace(/:/g, '') +
      'c0000202' +
      '00'.repeat(18),
    'hex',
  );
  return decodeFrame(bytes, t);
}
const garp = (mac: string, ip: string, t: number): CapturedFrame => decodeFrame(gratuitousArp('request', parseMac(mac), ip).bytes, t);

/** A node answering the checker's probe every 100 ms over [from, to). */
function answers(mac: string, from: number, to: number): CapturedFrame[] {
  const out: CapturedFrame[] = [];
  for (let t = from; t < to; t += 100) out.push(kernelReply(mac, VIP, t));
  return out;
}

/** Feeds frames in capture (time) order, as tcpdump delivers them. */
function judged(frames: CapturedFrame[], judge = new WireJudge()): WireJudge {
  for (const f of [...frames].sort((a, b) => a.time - b.time)) judge.push(f);
  judge.finish();
  return judge;
}

test('frames are read as claims: kernel replies answer, GARP and unsolicited NA announce, probes and RFC 5227 probes say nothing about the VIP', () => {
  assert.equal(wireClaim(kernelReply(A, VIP, 1)), { t: 1, ip: VIP, mac: A, kind: 'answer', what: `arp reply ${VIP} is-at ${A}` });
  assert.is(wireClaim(garp(A, VIP, 2))?.kind, 'announce');
  assert.is(wireClaim(decodeFrame(gratuitousArp('reply', parseMac(A), VIP).bytes, 3))?.kind, 'announce');
  const na = wireClaim(decodeFrame(unsolicitedNeighborAdvertisement(parseMac(B), '2001:db8::100').bytes, 4));
  assert.equal([na?.ip, na?.mac, na?.kind], ['2001:db8::100', B, 'announce']);
  // The checker's own question names the client as sender, never the VIP.
  assert.is(wireClaim(decodeFrame(arpRequest(CLIENT, '192.0.2.2', VIP).bytes, 5))?.ip, '192.0.2.2');
  const rfc5227Probe = decodeFrame(
    Buffer.from(
      'ffffffffffff' +
        A.replace(/:/g, '') +
        '0806' +
        '0001080006040001' +
        A.replace(/:/g, '') +
        '00000000' +
        '000000000000' +
        'c0000232' +
        '00'.repeat(18),
      'hex',
    ),
    6,
  );
  assert.is(wireClaim(rfc5227Probe), null);
});

test('a hard failover: the old node falls silent, the new one announces and answers; one move, no violation', () => {
  const judge = judged([...answers(A, 0, 1000), garp(B, VIP, 1700), ...answers(B, 1750, 3000)]);
  assert.equal(judge.violations(), []);
  assert.equal(
    judge.moves.map((m) => [m.from, m.to, m.t]),
    [
      [null, A, 0],
      [A, B, 1700],
    ],
  );
});

test('the frozen node comes back and its kernel answers beside the new owner: one episode with both MACs and the frames', () => {
  const judge = judged([
    ...answers(A, 0, 1000),
    garp(B, VIP, 1700),
    ...answers(B, 1750, 4000),
    ...[2501, 2601, 2701].map((t) => kernelReply(A, VIP, t)),
  ]);
  const [episode, ...rest] = judge.violations();
  assert.equal(rest, []);
  assert.equal(episode?.macs, [B, A]);
  assert.equal([episode?.start, episode?.end, episode?.frames], [2501, 2701, 3]);
  assert.ok(episode?.evidence.some((line) => line.includes(`arp reply ${VIP} is-at ${A}`)));
  assert.ok(episode?.evidence.some((line) => line.includes(`arp reply ${VIP} is-at ${B}`)));
});

test('a stale announcement from a node that resumed, while the new owner answers, is a violation', () => {
  const judge = judged([...answers(A, 0, 500), garp(B, VIP, 1200), ...answers(B, 1250, 3000), garp(A, VIP, 2010)]);
  assert.is(judge.violations().length, 1);
  assert.equal(judge.violations()[0]?.macs, [A, B]);
});

test('make-before-break inside an allowed window is an overlap with its length, not a violation', () => {
  const judge = new WireJudge();
  judge.allowOverlap({ mac: A, from: 900, to: 1500 });
  judged([...answers(A, 0, 1200), garp(B, VIP, 1000), ...answers(B, 1010, 2000)], judge);
  assert.equal(judge.violations(), []);
  assert.equal(judge.overlaps(), [{ ip: VIP, start: 1000, lengthMs: 100 }]);
});

test('the same overlap outside a drain is a violation', () => {
  const judge = judged([...answers(A, 0, 1200), garp(B, VIP, 1000), ...answers(B, 1010, 2000)]);
  assert.is(judge.violations().length, 1);
});

test("the new node's kernel answering just before its agent announces is not a violation", () => {
  const judge = judged([...answers(A, 0, 1000), kernelReply(B, VIP, 950), garp(B, VIP, 960), ...answers(B, 1050, 2000)]);
  assert.equal(judge.violations(), []);
});

test('a node answering beside the owner without ever announcing is a violation from its first answer', () => {
  const judge = judged([...answers(A, 0, 2000), ...answers(B, 1001, 2000)], new WireJudge({ announceGraceMs: 300 }));
  const [episode, ...rest] = judge.violations();
  assert.equal(rest, []);
  assert.equal([episode?.start, episode?.frames, episode?.macs], [1001, 10, [A, B]]);
});

test('a former owner taking the address back (a second handover) may answer just before it announces', () => {
  const judge = judged([
    ...answers(A, 0, 1000),
    garp(B, VIP, 950),
    ...answers(B, 1000, 4001),
    kernelReply(A, VIP, 4001),
    garp(A, VIP, 4020),
    ...answers(A, 4101, 6000),
  ]);
  assert.equal(
    judge.violations().filter((v) => v.start > 3000),
    [],
  );
  assert.equal(
    judge.moves.map((m) => m.to),
    [A, B, A],
  );
});

test('one answer from the old node after it came back, never followed by its announcement, is a violation', () => {
  const judge = judged([...answers(A, 0, 1000), garp(B, VIP, 1700), ...answers(B, 1750, 4000), kernelReply(A, VIP, 2501)]);
  assert.equal(
    judge.violations().map((v) => [v.start, v.frames, v.macs]),
    [[2501, 1, [B, A]]],
  );
});

// Recorded in a lab of three namespaces (fixtures/two-macs.pcap, 232 frames, tcpdump on the
// client's link): node A (02:..:11) holds 192.0.2.50 and 2001:db8::50 and sends a GARP; the
// prober starts asking every 100 ms; node B (02:..:12) adds both addresses and sends a GARP for
// the IPv4 one; both kernels answer every question until the end of the recording.
test("recorded: two kernels answering after the new node's announcement are caught for both families", () => {
  const frames = new PcapReader().push(readFileSync(new URL('./fixtures/two-macs.pcap', import.meta.url)));
  assert.is(frames.length, 232);
  const judge = judged(frames);
  const v4 = judge.violations().find((v) => v.ip === VIP);
  const v6 = judge.violations().find((v) => v.ip === '2001:db8::50');
  assert.equal(v4?.macs, [B, A], 'B announced, then A answered');
  const bAnnounced = judge.moves.find((m) => m.ip === VIP && m.to === B)?.t ?? 0;
  assert.ok(bAnnounced > 0 && (v4?.start ?? 0) > bAnnounced);
  assert.ok((v4?.frames ?? 0) >= 10, `A answered ${v4?.frames} times after B's announcement`);
  // No announcement for the IPv6 address: both answered from the first question on, so the
  // second MAC counts once it has answered beside the first for longer than the newcomer grace.
  assert.equal(v6?.macs, [B, A]);
  assert.equal(
    judge
      .violations()
      .map((v) => v.ip)
      .sort(),
    ['192.0.2.50', '2001:db8::50'],
  );
});

test.run();
