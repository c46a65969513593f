import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1ServiceList } from '@kubernetes/client-node';
import { listed } from './kube.js';

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

test.run();
