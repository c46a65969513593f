import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isPeerClaim, YieldBook } from './yielding.js';

const node = new Set(['02:00:00:00:00:11']);
const peers = new Set(['02:00:00:00:00:12']);

test('only another agent of ours claiming the address counts: not this node, not a foreign host, not a probe', () => {
  const claim = { kind: 'claims' as const, address: '192.0.2.7', mac: '02:00:00:00:00:12' };
  assert.ok(isPeerClaim(claim, '192.0.2.7', node, peers));
  assert.ok(isPeerClaim({ ...claim, mac: '02:00:00:00:00:12'.toUpperCase() }, '192.0.2.7', node, peers));
  assert.not.ok(isPeerClaim(claim, '192.0.2.8', node, peers), 'another address');
  assert.not.ok(isPeerClaim({ ...claim, mac: '02:00:00:00:00:11' }, '192.0.2.7', node, peers), 'this node');
  assert.not.ok(isPeerClaim({ ...claim, mac: '02:00:00:00:00:99' }, '192.0.2.7', node, peers), 'a foreign host: defended, not yielded');
  assert.not.ok(isPeerClaim({ ...claim, kind: 'probes' }, '192.0.2.7', node, peers), 'a probe claims nothing');
});

test('a yield holds until a newer version of the claim arrives or the hold passes, and ends when the claim leaves', () => {
  const book = new YieldBook(2000);
  assert.ok(book.note('c1', { ip: '192.0.2.7', mac: '02:00:00:00:00:12', at: 1000, resourceVersion: '5' }));
  assert.not.ok(book.note('c1', { ip: '192.0.2.7', mac: '02:00:00:00:00:12', at: 1100, resourceVersion: '5' }), 'already yielded');
  assert.ok(book.holds('c1', '5', 2000));
  assert.not.ok(book.holds('c1', '6', 2100), 'a newer version still names this node: up again');
  assert.not.ok(book.holds('c1', '6', 2200));

  book.note('c2', { ip: '192.0.2.8', mac: '02:00:00:00:00:12', at: 1000, resourceVersion: '9' });
  assert.ok(book.holds('c2', '9', 2999));
  assert.not.ok(book.holds('c2', '9', 3000), 'no news for the hold: up again (the peer was stale)');

  book.note('c3', { ip: '192.0.2.9', mac: '02:00:00:00:00:12', at: 1000, resourceVersion: '1' });
  book.retain(new Set(['c1']));
  assert.is(book.get('c3'), undefined, 'the move arrived');
});

test.run();
