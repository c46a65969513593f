import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import { decodeAnswer, encodeProbe } from '../api/probewire.js';
import { probeAnswer, startProbeResponder } from './proberesponder.js';

test('a probe is answered with its sequence, the node name and draining; who probed is passed on', () => {
  const seen: string[] = [];
  const out = probeAnswer(encodeProbe({ seq: 42, identity: 'sched-a' }), (identity) => {
    seen.push(identity);
    return { ok: true, node: 'n1', draining: true };
  });
  assert.equal(seen, ['sched-a']);
  assert.is(out?.toString('hex'), '4950435001020000002a03026e31');
});

test('anything that is not a probe is dropped unanswered and not recorded', () => {
  let called = 0;
  const answer = (): { ok: boolean; node: string; draining: boolean } => {
    called++;
    return { ok: true, node: 'n1', draining: false };
  };
  assert.is(probeAnswer(Buffer.from('hello'), answer), null);
  assert.is(probeAnswer(Buffer.alloc(0), answer), null);
  assert.is(called, 0);
});

test('over a real loopback socket: one datagram in, one out', async () => {
  const responder = await startProbeResponder({ host: '127.0.0.1', port: 0, answer: () => ({ ok: true, node: 'n1', draining: false }) });
  const client = createSocket('udp4');
  try {
    const got = new Promise<Buffer>((resolve) => client.once('message', (m) => resolve(m)));
    client.send(encodeProbe({ seq: 9, identity: 's' }), responder.port, '127.0.0.1');
    assert.equal(decodeAnswer(await got), { seq: 9, ok: true, draining: false, node: 'n1' });
  } finally {
    client.close();
    await responder.close();
  }
});

test.run();
