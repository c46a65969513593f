import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { API_VERSION, type IpClaim } from '../api/types.js';
import { flush, ManualClock } from '../lib/manualclock.js';
import { claimsAssignedHere, handingOver, waitForClaimsToMove } from './drain.js';
import type { ClaimEntry } from './kube.js';

const claim = (nodeName: string, status?: IpClaim['status']): IpClaim => ({
  apiVersion: API_VERSION,
  kind: 'IpClaim',
  metadata: { name: 'c1' },
  spec: { cidr: '192.0.2.50/32', nodeName },
  ...(status ? { status } : {}),
});

test('claims assigned here count unparseable ones by their spec.nodeName', () => {
  const entries: ClaimEntry[] = [
    { ok: true, claim: claim('node-a') },
    { ok: true, claim: claim('node-b') },
    { ok: false, name: 'bad', nodeName: 'node-a', reason: 'spec.cidr: not an address' },
    { ok: false, name: 'worse', reason: 'no spec' },
  ];
  assert.is(claimsAssignedHere(entries, 'node-a'), 2);
  assert.is(claimsAssignedHere(entries, 'node-c'), 0);
});

test('make-before-break: a moved claim stays while draining until its new node confirms it', () => {
  const draining = { draining: true, drained: false };
  assert.ok(handingOver(draining, true, claim('node-b')), 'moved, not confirmed');
  assert.ok(handingOver(draining, true, claim('node-b', { phase: 'Assigned', node: 'node-a' })), 'status still names the old node');
  assert.not.ok(handingOver(draining, true, claim('node-b', { phase: 'Assigned', node: 'node-b' })), 'confirmed by node-b');
  assert.not.ok(handingOver(draining, false, claim('node-b')), 'never held here');
  assert.not.ok(handingOver({ draining: false, drained: false }, true, claim('node-b')), 'not draining: a move is a move');
  assert.not.ok(handingOver({ draining: true, drained: true }, true, claim('node-b')), 'drained: everything goes');
  assert.not.ok(handingOver(draining, true, claim('')), 'unassigned');
});

test('waiting for the claims to move ends when none is left, at the deadline, or when the agent stops', async () => {
  const clock = new ManualClock();
  let left = 2;
  let result: number | undefined;
  void waitForClaimsToMove(clock, new AbortController().signal, clock.now() + 2000, () => left).then((n) => (result = n));
  await clock.advance(500);
  assert.is(result, undefined);
  left = 0;
  await clock.advance(100);
  assert.is(result, 0);

  left = 1;
  result = undefined;
  void waitForClaimsToMove(clock, new AbortController().signal, clock.now() + 1000, () => left).then((n) => (result = n));
  await clock.advance(900);
  assert.is(result, undefined);
  await clock.advance(200);
  assert.is(result, 1, 'deadline: what is left is reported');

  const stop = new AbortController();
  result = undefined;
  void waitForClaimsToMove(clock, stop.signal, clock.now() + 60_000, () => left).then((n) => (result = n));
  await flush();
  stop.abort();
  await flush();
  assert.is(result, 1);
});

test.run();
