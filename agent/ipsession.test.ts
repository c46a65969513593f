// The ip batch session's framing, pure: what is written for a request and when its reply is complete.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MARK_LINE, replyOf, requestLines } from './ipsession.js';

test('a request is its lines and the mark, one per line', () => {
  assert.is(requestLines(['addr show']), `addr show\n${MARK_LINE}\n`);
});

test('a line that would shift the count (a newline, or blank) is refused', () => {
  assert.throws(() => requestLines(['addr del 192.0.2.1/32 dev eth0\naddr show']), /bad batch line/);
  assert.throws(() => requestLines(['  ']), /bad batch line/);
});

const mark = (n: number): string => `Object "${MARK_LINE}" is unknown, try "ip help".\nCommand failed -:${n}\n`;

test('the reply is complete once the mark failed: errors by line within the request', () => {
  // Session lines 0-2 were an earlier request; this one is lines 3-4, its mark line 5 (1-based 6).
  const req = { first: 3, count: 2, jsonLines: 0 };
  const stderr = 'Error: ipv4: Address not found.\nCommand failed -:5\n';
  assert.is(replyOf(stderr, '', req), null, 'not before the mark');
  const reply = replyOf(stderr + mark(6), '', req);
  assert.equal([...(reply?.errors ?? [])], [[1, 'Error: ipv4: Address not found.']]);
});

test('a listing waits for its JSON line too, which may come after the mark', () => {
  const req = { first: 0, count: 1, jsonLines: 1 };
  assert.is(replyOf(mark(2), '[{"ifname":"lo"', req), null, 'the JSON line is not complete');
  assert.equal(replyOf(mark(2), '[{"ifname":"lo"}]\n', req)?.json, ['[{"ifname":"lo"}]']);
});

test('an error of a line before the request is not this request', () => {
  const req = { first: 4, count: 1, jsonLines: 0 };
  assert.equal(replyOf('Error: x\nCommand failed -:4\n' + mark(6), '', req)?.errors, new Map());
});

test.run();
