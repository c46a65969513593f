import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import { startProbeResponder } from '../agent/proberesponder.js';
import { encodeAnswer, encodeProbe } from '../api/probewire.js';
import type { ProbeResult } from './health.js';
import {
  expiryWaits,
  InFlight,
  judgeAnswer,
  LATE_KEPT,
  LateAnswers,
  literalLookup,
  MAX_EXPIRY_DEFERRALS,
  probeDatagram,
  READS_PER_TURN,
  udpProber,
  type Pending,
} from './probeudp.js';

const target = { node: 'n1', address: '127.0.0.1', port: 9 };
const answer = { seq: 1, ok: true, draining: false, node: 'n1' };

test('an answer counts from the probed address only, for the probed node, when it says ok', () => {
  const pending = { target, from: '127.0.0.1' };
  assert.equal(judgeAnswer(pending, answer, '127.0.0.1', 0.2), { ok: true, draining: false, rttMs: 0.2 });
  assert.equal(judgeAnswer(pending, { ...answer, draining: true }, '127.0.0.1', 0.2), { ok: true, draining: true, rttMs: 0.2 });
  assert.is(judgeAnswer(pending, answer, '127.0.0.2', 0.2), null, 'from elsewhere: ignored, the probe may still be answered');
  assert.equal(judgeAnswer(pending, { ...answer, node: 'n2' }, '127.0.0.1', 0.2), { ok: false, error: 'answered as node n2' });
  assert.equal(judgeAnswer(pending, { ...answer, ok: false }, '127.0.0.1', 0.2), { ok: false, error: 'answer says ok: false' });
});

test('over loopback: the agent responder answers, draining is carried, another node name fails', async () => {
  let draining = false;
  const seen: string[] = [];
  const responder = await startProbeResponder({
    host: '127.0.0.1',
    port: 0,
    answer: (identity) => {
      seen.push(identity);
      return { ok: true, node: 'n1', draining };
    },
  });
  try {
    const probe = udpProber('sched-a');
    const t = { ...target, port: responder.port };
    const first = await probe(t, 5_000);
    assert.ok(first.ok, JSON.stringify(first));
    draining = true;
    assert.equal({ ...(await probe(t, 5_000)), rttMs: 0 }, { ok: true, draining: true, rttMs: 0 });
    assert.equal(await probe({ ...t, node: 'n2' }, 5_000), { ok: false, error: 'answered as node n1' });
    assert.equal(seen, ['sched-a', 'sched-a', 'sched-a']);
  } finally {
    await responder.close();
  }
});

test('no answer: the probe fails at its timeout; many probes in flight are told apart', async () => {
  const silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  const responder = await startProbeResponder({ host: '127.0.0.1', port: 0, answer: () => ({ ok: true, node: 'n1', draining: false }) });
  try {
    const probe = udpProber('s');
    const dead = probe({ ...target, port: silent.address().port }, 50);
    const alive = await Promise.all(Array.from({ length: 50 }, () => probe({ ...target, port: responder.port }, 5_000)));
    assert.ok(alive.every((r) => r.ok));
    const result = await dead;
    assert.is(result.ok, false);
    assert.match(result.ok ? '' : result.error, /no UDP answer within 50ms/);
  } finally {
    silent.close();
    await responder.close();
  }
});

test('each probe datagram is the encoded probe with its own sequence number, and a copy', () => {
  const template = encodeProbe({ seq: 0, identity: 'sched-a' });
  for (const seq of [1, 0x01020304, 2 ** 32 - 1, 2 ** 32 + 7]) {
    assert.equal(probeDatagram(template, seq), encodeProbe({ seq, identity: 'sched-a' }), `seq ${seq}`);
  }
  const a = probeDatagram(template, 5);
  probeDatagram(template, 6);
  assert.is(a.readUInt32BE(6), 5, 'an earlier datagram (maybe still being sent) is not changed');
  assert.is(template.readUInt32BE(6), 0);
});

test('an answer waiting unread when the timeout comes (the scheduler did not run) still counts', async () => {
  const agent = createSocket('udp4');
  await new Promise<void>((r) => agent.bind(0, '127.0.0.1', () => r()));
  try {
    const probe = udpProber('s');
    const started = performance.now();
    const timeoutMs = 1_000;
    const received = new Promise<{ seq: number; port: number }>((resolve) =>
      agent.once('message', (msg, from) => resolve({ seq: msg.readUInt32BE(6), port: from.port })),
    );
    const result = probe({ ...target, port: agent.address().port }, timeoutMs);
    const { seq, port } = await received;
    await new Promise<void>((r) => agent.send(encodeAnswer({ seq, ok: true, draining: false, node: 'n1' }), port, '127.0.0.1', () => r()));
    // Blocks this process past the deadline with the answer in its socket, as a starved scheduler is.
    while (performance.now() < started + timeoutMs + 50) {
      /* busy */
    }
    const r = await result;
    assert.ok(r.ok, JSON.stringify(r));
  } finally {
    agent.close();
  }
});

function pendingProbe(startedAt: number, timeoutMs: number, results: Array<[number, ProbeResult]>, n: number): Pending {
  return { target, from: '127.0.0.1', startedAt, deadline: startedAt + timeoutMs, timeoutMs, resolve: (r) => results.push([n, r]) };
}

test('timeouts: each queue is read from its front to the first probe in time; the next deadline is returned', () => {
  const results: Array<[number, ProbeResult]> = [];
  const f = new InFlight();
  f.add(1, pendingProbe(0, 80, results, 1));
  f.add(2, pendingProbe(5, 80, results, 2));
  f.add(3, pendingProbe(6, 20, results, 3)); // another timeout: its own queue
  f.add(4, pendingProbe(10, 80, results, 4));
  assert.ok(f.delete(2), 'answered');
  assert.not.ok(f.delete(2));
  const expired: number[] = [];
  assert.is(
    f.expire(30, (_p, seq) => expired.push(seq)),
    80,
  );
  assert.equal(expired, [3], 'only the 20 ms probe is due at 30');
  assert.is(
    f.expire(85, (_p, seq) => expired.push(seq)),
    90,
  );
  assert.equal(expired, [3, 1]);
  assert.equal(
    results.map(([n, r]) => [n, r.ok ? '' : r.error]),
    [
      [3, 'no UDP answer within 20ms'],
      [1, 'no UDP answer within 80ms'],
    ],
  );
  assert.is(f.size, 1);
  assert.is(
    f.expire(200, () => undefined),
    Infinity,
  );
  assert.is(f.size, 0);
});

test('the timeout check waits while the last event-loop turn read a full batch of answers, a bounded number of turns', () => {
  assert.not.ok(expiryWaits(0, 0), 'nothing read: the socket is drained');
  assert.not.ok(expiryWaits(READS_PER_TURN - 1, 0), 'fewer than a full batch: drained');
  assert.ok(expiryWaits(READS_PER_TURN, 0), 'a full batch: more may be waiting');
  assert.ok(expiryWaits(READS_PER_TURN, MAX_EXPIRY_DEFERRALS - 1));
  assert.not.ok(expiryWaits(READS_PER_TURN, MAX_EXPIRY_DEFERRALS), 'a flood does not hold the timeouts off for ever');
});

test('late answers are recognised for the last LATE_KEPT probes that timed out, once each', () => {
  const late = new LateAnswers();
  const results: Array<[number, ProbeResult]> = [];
  for (let seq = 0; seq < LATE_KEPT + 1; seq++) late.add(pendingProbe(0, 80, results, seq), seq);
  assert.is(late.take(0), undefined, 'the oldest is forgotten');
  assert.ok(late.take(1));
  assert.is(late.take(1), undefined, 'once');
  assert.ok(late.take(LATE_KEPT));
});

test('probe addresses are taken as they are (IP literals), without a lookup', () => {
  const got: unknown[] = [];
  literalLookup('127.0.0.1', 4, (err, address, family) => got.push([err, address, family]));
  literalLookup('2001:db8::1', 6, (err, address, family) => got.push([err, address, family]));
  assert.equal(got, [
    [null, '127.0.0.1', 4],
    [null, '2001:db8::1', 6],
  ]);
  literalLookup('agent.example', 4, (err) => got.push(err?.message));
  assert.is(got[2], 'probe address agent.example is not an IP address');
});

test('over loopback: an answer after the timeout fails the probe and is reported as a late answer', async () => {
  const agent = createSocket('udp4');
  await new Promise<void>((r) => agent.bind(0, '127.0.0.1', () => r()));
  try {
    const lates: string[] = [];
    const probe = udpProber('s', { onLateAnswer: (t) => lates.push(t.node) });
    const received = new Promise<{ seq: number; port: number }>((resolve) =>
      agent.once('message', (msg, from) => resolve({ seq: msg.readUInt32BE(6), port: from.port })),
    );
    const t = { ...target, port: agent.address().port };
    const result = await probe(t, 30);
    assert.is(result.ok, false);
    const { seq, port } = await received;
    const answered = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (lates.length) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    await new Promise<void>((r) => agent.send(encodeAnswer({ seq, ok: true, draining: false, node: 'n1' }), port, '127.0.0.1', () => r()));
    await Promise.race([answered, new Promise((_, reject) => setTimeout(() => reject(new Error('no late answer reported')), 5_000))]);
    assert.equal(lates, ['n1']);
  } finally {
    agent.close();
  }
});

test.run();
