import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RefusedStatusWrites } from './refusals.js';

const all = (): boolean => true;

test('a write refused for a copy of the claim is not sent again while the copy is the same', () => {
  const refusals = new RefusedStatusWrites();
  assert.is(refusals.refused('c1', '10'), undefined);
  refusals.remember('c1', { resourceVersion: '10', nodeName: 'node-b' }, all);
  assert.equal(refusals.refused('c1', '10'), { resourceVersion: '10', nodeName: 'node-b' });
  assert.equal(refusals.refused('c1', '10'), { resourceVersion: '10', nodeName: 'node-b' });
});

test('once the agent sees the claim change, the write may be tried again', () => {
  const refusals = new RefusedStatusWrites();
  refusals.remember('c1', { resourceVersion: '10', nodeName: 'node-b' }, all);
  assert.is(refusals.refused('c1', '11'), undefined);
  // forgotten for good: the next refusal starts afresh
  assert.is(refusals.refused('c1', '10'), undefined);
  assert.is(refusals.size, 0);
});

test('a claim the agent has no copy of is never held back', () => {
  const refusals = new RefusedStatusWrites();
  refusals.remember('c1', { resourceVersion: '10', nodeName: '' }, all);
  assert.is(refusals.refused('c1', undefined), undefined);
});

test('refusals of claims the agent no longer knows are forgotten, so the memory stays small', () => {
  const refusals = new RefusedStatusWrites();
  refusals.remember('c1', { resourceVersion: '10', nodeName: 'node-b' }, all);
  refusals.remember('c2', { resourceVersion: '12', nodeName: 'node-b' }, (name) => name !== 'c1');
  assert.is(refusals.size, 1);
  assert.is(refusals.refused('c1', '10'), undefined);
  assert.ok(refusals.refused('c2', '12'));
});

test.run();
