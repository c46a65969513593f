import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import { startProbeResponder } from '../agent/proberesponder.js';
import { encodeAnswer, encodeProbe } from '../api/probewire.js';
import { judgeAnswer, probeDatagram, udpProber } from './probeudp.js';

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

test.run();
