import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newerRv, Store } from './watch.js';

test('resourceVersions compare as numbers; anything else counts as a change', () => {
  assert.ok(newerRv('10', '9'));
  assert.not.ok(newerRv('9', '10'));
  assert.not.ok(newerRv('9', '9'));
  assert.ok(newerRv('abc', 'abd'));
});

test('a late watch event does not roll back our own write', () => {
  const s = new Store<string>();
  assert.ok(s.upsert('x', 'written by us', '12'));
  assert.not.ok(s.upsert('x', 'stale event', '11'));
  assert.is(s.get('x'), 'written by us');
  assert.ok(s.upsert('x', 'newer', '13'));
});

test('a deleted key is not brought back by an older event, but is by a newer one', () => {
  const s = new Store<string>();
  s.upsert('x', 'v', '5');
  assert.ok(s.remove('x'));
  assert.not.ok(s.upsert('x', 'old', '5'));
  assert.is(s.get('x'), undefined);
  assert.ok(s.upsert('x', 'recreated', '9'));
});

test('a stale DELETED event does not remove a newer object', () => {
  const s = new Store<string>();
  s.upsert('x', 'recreated', '20');
  assert.not.ok(s.remove('x', '15'));
  assert.is(s.get('x'), 'recreated');
  assert.ok(s.remove('x', '21'));
});

test('replaceAll after a list: removes what is gone, marks synced, reports change', () => {
  const s = new Store<string>();
  s.upsert('a', 'a', '1');
  s.upsert('b', 'b', '1');
  assert.ok(
    s.replaceAll([
      { key: 'b', value: 'b', rv: '1' },
      { key: 'c', value: 'c', rv: '2' },
    ]),
  );
  assert.equal(s.keys().sort(), ['b', 'c']);
  assert.ok(s.synced);
  assert.not.ok(
    s.replaceAll([
      { key: 'b', value: 'b', rv: '1' },
      { key: 'c', value: 'c', rv: '2' },
    ]),
  );
});

test.run();
