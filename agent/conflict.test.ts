import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Defence, isConflict, needsProbe, ProbeRun, probeOffsets, retryDue } from './conflict.js';
import type { Sighting } from './probes.js';

const OURS = new Set(['02:00:5e:00:53:01', '02:00:5e:00:53:02']);
const claims = (address: string, mac: string): Sighting => ({ kind: 'claims', address, mac });
const probes = (address: string, mac: string): Sighting => ({ kind: 'probes', address, mac });

test('only an address no agent of ours held is probed: a failover move or a restart goes up at once', () => {
  assert.ok(needsProbe(undefined), 'a new claim');
  assert.ok(needsProbe({ phase: 'Pending' }));
  assert.ok(needsProbe({ phase: 'Failed', node: 'n1' }), 'a claim that failed (a conflict, or an interface that was missing)');
  assert.not.ok(needsProbe({ phase: 'Assigned', node: 'n1' }), 'held by one of our agents: a move, not a first bring-up');
  assert.ok(retryDue(0, 600_000, 600_000));
  assert.not.ok(retryDue(0, 599_999, 600_000));
});

test('probes are spread over the window; count 0 turns probing off', () => {
  assert.equal(probeOffsets({ count: 3, windowMs: 90 }), [0, 30, 60]);
  assert.equal(probeOffsets({ count: 0, windowMs: 90 }), []);
});

test('a probe with no answer is clear once the window ends', () => {
  const run = new ProbeRun('192.0.2.10', 1000, { count: 3, windowMs: 90 });
  assert.is(run.due(1000), 1);
  assert.is(run.result(1000), null);
  assert.is(run.nextInMs(1000), 30);
  assert.is(run.due(1029), 0);
  assert.is(run.due(1065), 2, 'a late timer sends what is due');
  assert.is(run.nextInMs(1065), 25);
  assert.is(run.result(1089), null);
  assert.equal(run.result(1090), { kind: 'clear' });
});

test('a foreign answer ends the probe as a conflict naming the MAC; our own MACs are not conflicts', () => {
  const run = new ProbeRun('192.0.2.10', 0, { count: 3, windowMs: 90 });
  run.due(0);
  run.observe(claims('192.0.2.10', '02:00:5E:00:53:02'), OURS);
  run.observe(claims('192.0.2.11', '02:00:5e:00:53:99'), OURS);
  assert.is(run.result(10), null, 'our other node, and another address, are no conflicts');
  run.observe(claims('192.0.2.10', '02:00:5e:00:53:99'), OURS);
  assert.equal(run.result(11), { kind: 'conflict', mac: '02:00:5e:00:53:99' });
  assert.is(run.due(100), 0, 'no more probes after a conflict');
});

test('while probing another prober is a conflict; while holding only a host claiming the address is', () => {
  assert.ok(isConflict(probes('192.0.2.10', '02:00:5e:00:53:99'), '192.0.2.10', OURS, 'probing'));
  assert.not.ok(isConflict(probes('192.0.2.10', '02:00:5e:00:53:99'), '192.0.2.10', OURS, 'holding'));
  assert.ok(isConflict(claims('2001:db8::10', '02:00:5e:00:53:99'), '2001:db8::10', OURS, 'holding'));
  assert.not.ok(isConflict(claims('2001:db8::10', '02:00:5e:00:53:01'), '2001:db8::10', OURS, 'holding'));
});

test('defence (RFC 5227 2.4 b): defend once, report if the host claims again within 10 s, then quiet for 10 s', () => {
  const d = new Defence(10_000);
  assert.is(d.observe('192.0.2.10', 0), 'defend');
  assert.is(d.observe('192.0.2.10', 3_000), 'report');
  assert.is(d.observe('192.0.2.10', 4_000), 'ignore', 'not reported again at once');
  assert.is(d.observe('192.0.2.10', 13_000), 'defend', 'a new defence after DEFEND_INTERVAL');
  assert.is(d.observe('192.0.2.11', 13_000), 'defend', 'per address');
  d.forget('192.0.2.10');
  assert.is(d.observe('192.0.2.10', 13_001), 'defend');
});

test.run();
