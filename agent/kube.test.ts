import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store } from '../lib/listwatch.js';
import { claimEntry, type ClaimEntry } from './kube.js';

const claim = (rv: string, nodeName: string): unknown => ({
  apiVersion: 'ipcontroller.ext/v1alpha1',
  kind: 'IpClaim',
  metadata: { name: '192-0-2-10-32', resourceVersion: rv },
  spec: { cidr: '192.0.2.10/32', nodeName },
});

test('a claim is keyed by name and versioned by its resourceVersion', () => {
  const e = claimEntry(claim('7', 'node-a'));
  assert.is(e.key, '192-0-2-10-32');
  assert.is(e.rv, '7');
  assert.ok(e.value.ok);
});

test('a claim the parser refuses keeps its name, node and reason (the agent reports it)', () => {
  const e = claimEntry({
    kind: 'IpClaim',
    metadata: { name: 'bad', resourceVersion: '3' },
    spec: { cidr: '192.0.2.010/32', nodeName: 'node-a' },
  });
  assert.is(e.key, 'bad');
  assert.is(e.rv, '3');
  assert.equal(e.value.ok ? undefined : { name: e.value.name, nodeName: e.value.nodeName }, { name: 'bad', nodeName: 'node-a' });
});

test("the agent's claims no longer roll back: a late event for an older version is refused", () => {
  const store = new Store<ClaimEntry>();
  const newer = claimEntry(claim('9', 'node-b'));
  const older = claimEntry(claim('8', 'node-a'));
  store.upsert(newer.key, newer.value, newer.rv);
  assert.not.ok(store.upsert(older.key, older.value, older.rv));
  const kept = store.get(newer.key);
  assert.is(kept?.ok ? kept.claim.spec.nodeName : undefined, 'node-b');
});

test.run();
