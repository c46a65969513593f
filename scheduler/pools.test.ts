import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IpClaimPool, IpRange } from '../api/types.js';
import { parsePool, type Pool } from './allocator.js';
import { describeUsers, finalizerAction, overlaps, poolConditions, poolMeta, poolUsers, POOL_FINALIZER, type PoolMeta } from './pools.js';

function pool(name: string, cidr: string, ranges?: IpRange[]): Pool {
  const r = parsePool({
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaimPool',
    metadata: { name },
    spec: { cidr, ...(ranges ? { ranges } : {}) },
  });
  if (!r.ok) throw new Error(r.reason);
  return r.pool;
}

const meta = (over: Partial<PoolMeta>): PoolMeta => ({
  name: 'p',
  uid: 'u',
  resourceVersion: '1',
  deleting: false,
  finalizers: [],
  releaseOnDelete: false,
  ...over,
});
const user = { claim: '192-0-2-1-32', address: '192.0.2.1', services: ['ns/a'] };

test('finalizer: added to a live pool once; a deleted pool waits for its users, then lets go', () => {
  assert.equal(finalizerAction(meta({}), []), { kind: 'add' });
  assert.equal(finalizerAction(meta({ finalizers: ['other', POOL_FINALIZER] }), [user]), { kind: 'none' });
  assert.equal(finalizerAction(meta({ deleting: true, finalizers: [POOL_FINALIZER] }), [user]), { kind: 'wait', users: [user] });
  assert.equal(finalizerAction(meta({ deleting: true, finalizers: [POOL_FINALIZER] }), []), { kind: 'remove' });
  assert.equal(
    finalizerAction(meta({ deleting: true, finalizers: ['other'] }), [user]),
    { kind: 'none' },
    'removed by hand: nothing to do',
  );
});

test('poolMeta reads deletion, finalizers and the release-on-delete annotation (case and spaces forgiven)', () => {
  const raw: IpClaimPool = {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaimPool',
    metadata: {
      name: 'p',
      uid: 'u',
      resourceVersion: '9',
      deletionTimestamp: new Date(0),
      finalizers: [POOL_FINALIZER],
      annotations: { 'ipcontroller.ext/release-on-delete': ' True ' },
    },
    spec: { cidr: '192.0.2.0/24' },
  };
  assert.equal(poolMeta({ ok: true, pool: raw }), {
    name: 'p',
    uid: 'u',
    resourceVersion: '9',
    deleting: true,
    finalizers: [POOL_FINALIZER],
    releaseOnDelete: true,
  });
  assert.is(
    poolMeta({ ok: false, name: 'q', reason: 'bad', metadata: { name: 'q', annotations: { 'ipcontroller.ext/release-on-delete': 'yes' } } })
      .releaseOnDelete,
    false,
  );
});

test('users of a pool: claims that record it, merged by claim, sorted', () => {
  const users = poolUsers([
    { name: 'c2', address: '192.0.2.2', pool: 'p', services: ['ns/b'] },
    { name: 'c1', address: '192.0.2.1', pool: 'p', services: ['ns/a'] },
    { name: 'c1', address: '192.0.2.1', pool: 'p', services: ['ns/z'] },
    { name: 'x', address: '203.0.113.1', services: ['ns/ext'] },
  ]);
  assert.equal([...users.keys()], ['p']);
  assert.equal(users.get('p'), [
    { claim: 'c1', address: '192.0.2.1', services: ['ns/a', 'ns/z'] },
    { claim: 'c2', address: '192.0.2.2', services: ['ns/b'] },
  ]);
  const many = Array.from({ length: 12 }, (_, i) => ({ claim: `c${i}`, address: `192.0.2.${i}`, services: [`ns/s${i}`] }));
  assert.match(describeUsers(many), /ns\/s9 \(192.0.2.9\) and 2 more$/);
});

test('overlaps: only pools sharing allocatable addresses of one family', () => {
  const wide = pool('wide', '192.0.2.0/24');
  const narrow = pool('narrow', '192.0.2.0/25');
  const apart = pool('apart', '192.0.2.0/24', [['192.0.2.200', '192.0.2.210']]);
  const v6 = pool('v6', '2001:db8::/64');
  const map = overlaps([wide, narrow, apart, v6]);
  assert.equal(map.get('wide'), ['apart', 'narrow']);
  assert.equal(map.get('narrow'), ['wide']);
  assert.equal(map.get('apart'), ['wide']);
  assert.is(map.get('v6'), undefined);
  const conditions = poolConditions(narrow, ['wide'], []);
  assert.equal(
    conditions.map((c) => [c.type, c.status]),
    [
      ['Valid', 'True'],
      ['Overlapping', 'True'],
    ],
  );
  assert.match(
    conditions[0]?.message ?? '',
    /^126 allocatable addresses in 192.0.2.0\/25; never handed out: network address 192.0.2.0, broadcast address 192.0.2.127$/,
  );
  const deleting = poolConditions({ ...narrow, terminating: true }, [], [user]);
  assert.equal(
    deleting.map((c) => [c.type, c.status, c.reason]),
    [
      ['Valid', 'True', 'Valid'],
      ['Overlapping', 'False', 'Disjoint'],
      ['Deleting', 'True', 'InUse'],
    ],
  );
});

test.run();
