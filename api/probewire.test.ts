import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeAnswer, decodeProbe, encodeAnswer, encodeProbe } from './probewire.js';

test('probe datagram: golden bytes', () => {
  const buf = encodeProbe({ seq: 0x01020304, identity: 'sched-a' });
  assert.is(buf.toString('hex'), '49504350' + '01' + '01' + '01020304' + '07' + Buffer.from('sched-a').toString('hex'));
  assert.equal(decodeProbe(buf), { seq: 0x01020304, identity: 'sched-a' });
});

test('answer datagram: golden bytes, ok and draining flags', () => {
  const buf = encodeAnswer({ seq: 0xfffffffe, ok: true, draining: true, node: 'n1' });
  assert.is(buf.toString('hex'), '49504350' + '01' + '02' + 'fffffffe' + '03' + '02' + '6e31');
  assert.equal(decodeAnswer(buf), { seq: 0xfffffffe, ok: true, draining: true, node: 'n1' });
  assert.is(encodeAnswer({ seq: 0, ok: true, draining: false, node: 'n1' })[10], 0x01);
  assert.is(encodeAnswer({ seq: 0, ok: false, draining: false, node: 'n1' })[10], 0x00);
});

test('the sequence wraps to 32 bits and an empty identity is allowed', () => {
  assert.equal(decodeProbe(encodeProbe({ seq: 2 ** 32 + 5, identity: '' })), { seq: 5, identity: '' });
});

test('anything else is not a probe or an answer', () => {
  const probe = encodeProbe({ seq: 7, identity: 'x' });
  const answer = encodeAnswer({ seq: 7, ok: true, draining: false, node: 'n' });
  assert.is(decodeAnswer(probe), null, 'a probe is not an answer');
  assert.is(decodeProbe(answer), null, 'an answer is not a probe');
  assert.is(decodeProbe(Buffer.from('GET /healthz HTTP/1.1\r\n')), null);
  assert.is(decodeProbe(probe.subarray(0, 9)), null, 'short');
  assert.is(decodeProbe(Buffer.concat([probe, Buffer.from([0])])), null, 'trailing byte');
  assert.is(decodeProbe(probe.subarray(0, probe.length - 1)), null, 'text cut');
  const v2 = Buffer.from(probe);
  v2[4] = 2;
  assert.is(decodeProbe(v2), null, 'another version');
});

test('text longer than one length byte is refused, not cut', () => {
  assert.throws(() => encodeAnswer({ seq: 1, ok: true, draining: false, node: 'a'.repeat(256) }), /at most 255/);
  assert.ok(decodeAnswer(encodeAnswer({ seq: 1, ok: true, draining: false, node: 'a'.repeat(253) })));
});

test.run();
