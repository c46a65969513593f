import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1ServiceList } from '@kubernetes/client-node';
import { listed, pagePath, parseClaimEntry, parsePoolEntry } from './kube.js';

test("a typed list's next-page token (client-node names it _continue) and a raw list's (continue) are both read", () => {
  const typed: V1ServiceList = { metadata: { resourceVersion: '12', _continue: 'next' }, items: [{ metadata: { name: 'a' } }] };
  assert.equal(listed(typed), { items: [{ metadata: { name: 'a' } }], resourceVersion: '12', continue: 'next' });
  assert.equal(listed({ metadata: { resourceVersion: '7', continue: 'tok' }, items: [] }), {
    items: [],
    resourceVersion: '7',
    continue: 'tok',
  });
  assert.equal(
    listed({ metadata: { resourceVersion: '7', continue: '' }, items: [] }),
    { items: [], resourceVersion: '7' },
    'the last page',
  );
});

test("cached pools and claims drop metadata.managedFields (nothing reads them; a pool's status writes make them large)", () => {
  const managedFields = [{ manager: 'ipcontroller-scheduler', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:status': {} } }];
  const metadata = { name: 'p', uid: 'u', resourceVersion: '7', managedFields };
  const good = parsePoolEntry({ apiVersion: 'ipcontroller.ext/v1', kind: 'IpClaimPool', metadata, spec: { cidr: '198.51.100.0/24' } });
  assert.ok(good?.value.ok);
  if (good?.value.ok) {
    assert.is(good.value.pool.metadata.managedFields, undefined);
    assert.is(good.value.pool.metadata.uid, 'u');
  }
  const bad = parsePoolEntry({ apiVersion: 'ipcontroller.ext/v1', kind: 'IpClaimPool', metadata, spec: { cidr: 'not a cidr' } });
  assert.ok(bad && !bad.value.ok);
  if (bad && !bad.value.ok) {
    assert.is(bad.value.metadata.managedFields, undefined);
    assert.is(bad.value.metadata.uid, 'u', 'the rest of metadata stays: the Event and status write need uid and resourceVersion');
  }
  const claim = parseClaimEntry({
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { ...metadata, name: 'c' },
    spec: { cidr: '198.51.100.1/32' },
  });
  assert.ok(claim, 'the claim parses');
  assert.is(claim?.value.metadata.managedFields, undefined);
  assert.is(claim?.value.metadata.uid, 'u');
});

test('a page of a list asks for its limit and, after the first, its continue token (escaped)', () => {
  assert.is(pagePath('/api/v1/services', undefined), '/api/v1/services');
  assert.is(pagePath('/api/v1/services', { limit: 500 }), '/api/v1/services?limit=500');
  assert.is(pagePath('/api/v1/nodes', { limit: 500, continue: 'eyJ2Ijoi+/=' }), '/api/v1/nodes?limit=500&continue=eyJ2Ijoi%2B%2F%3D');
});

test.run();
