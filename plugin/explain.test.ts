// `why` in words, from the scheduler's own decisions on a snapshot: each pending reason, each
// reason a node may not hold an address, the address's origin and pool.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MOVE_ANNOTATION } from '../api/types.js';
import { explainService } from './explain.js';
import { renderWhy, PLAIN } from './render.js';
import { claim, ipNode, iso, NOW, snapshot, svc } from '../test/support/plugin-fixtures.js';

test('a placed address: its pool and why, the chosen node, and why every other node may not hold it', () => {
  const snap = snapshot({
    services: [svc('web')],
    nodes: [
      { name: 'node-a', labels: { ipcontroller: '' } },
      { name: 'node-b', labels: { ipcontroller: '' } },
      { name: 'node-c', labels: { ipcontroller: '', 'node.kubernetes.io/exclude-from-external-load-balancers': '' } },
      { name: 'node-d', labels: {} },
      { name: 'node-e', labels: { ipcontroller: '' } },
      { name: 'node-f', labels: { ipcontroller: '' } },
    ],
    ipNodes: [
      ipNode('node-a'),
      ipNode('node-b', { beatAgoMs: 9000 }),
      ipNode('node-c'),
      ipNode('node-d'),
      ipNode('node-e', { draining: true }),
      ipNode('node-f', { probe: { consecutiveFailures: 4, failedAt: iso(NOW - 1000), lastError: 'timeout after 100ms' } }),
    ],
    claims: [claim('192.0.2.1', ['ns/web'], 'node-a', { status: { phase: 'Assigned', node: 'node-a' } })],
  });
  const e = explainService(snap, 'ns/web');
  assert.is(e.summary, 'has 192.0.2.1 on node-a');
  const [a] = e.addresses;
  assert.is(a?.pool, 'p1');
  assert.match(a?.origin ?? '', /^kept: the Service already held it, from IpClaimPool p1/);
  assert.equal(a?.decision, { kind: 'keep', node: 'node-a' });
  const why = Object.fromEntries((a?.nodes ?? []).map((n) => [n.node, n.chosen ? 'chosen' : (n.reason ?? 'candidate')]));
  assert.equal(why, {
    'node-a': 'chosen',
    'node-b': 'heartbeat',
    'node-c': 'excluded',
    'node-d': 'not-agent',
    'node-e': 'draining',
    'node-f': 'probe',
  });
  assert.match(a?.nodes.find((n) => n.node === 'node-f')?.message ?? '', /4 probes of node-f failed: timeout after 100ms/);
  assert.equal(e.condition, { status: 'True', reason: 'Ready', message: '192.0.2.1 allocated and announced' });
});

test('the node it is on failed: why says it moves, where, and for which reason', () => {
  const snap = snapshot({
    services: [svc('web')],
    ipNodes: [ipNode('node-a', { probe: { consecutiveFailures: 3, failedAt: iso(NOW - 200) } }), ipNode('node-b')],
    claims: [claim('192.0.2.1', ['ns/web'], 'node-a', { status: { phase: 'Assigned', node: 'node-a' } })],
  });
  const [a] = explainService(snap, 'ns/web').addresses;
  assert.equal(a?.decision, { kind: 'move', from: 'node-a', to: 'node-b', reason: 'probe' });
  assert.is(a?.placement, 'moves from node-a to node-b: node-a may not hold it (probe)');
});

const pendingCases: Array<[string, Parameters<typeof snapshot>[0], string, RegExp]> = [
  [
    'PoolExhausted',
    {
      services: [
        svc('one', {}, {}, '2026-01-01T00:00:00Z'),
        svc('two', {}, {}, '2026-01-01T00:00:01Z'),
        svc('web', {}, {}, '2026-01-01T00:00:02Z'),
      ],
    },
    'PoolExhausted',
    /no free IPv4 address left in p1/,
  ],
  [
    'AddressOutsidePool',
    { services: [svc('web', { loadBalancerIP: '198.51.100.9' })] },
    'AddressOutsidePool',
    /198\.51\.100\.9 is not in any IpClaimPool/,
  ],
  [
    'AddressInUse',
    {
      services: [
        svc('other', {}, { 'ipcontroller.ext/loadBalancerIPs': '192.0.2.2' }, '2026-01-01T00:00:00Z'),
        svc('web', {}, { 'ipcontroller.ext/loadBalancerIPs': '192.0.2.2' }, '2026-01-01T00:00:05Z'),
      ],
    },
    'AddressInUse',
    /in use by ns\/other/,
  ],
  [
    'PoolNotFound',
    { services: [svc('web', {}, { 'ipcontroller.ext/pool': 'nope' })] },
    'PoolNotFound',
    /IpClaimPool nope .* does not exist/,
  ],
  [
    'PoolInvalid',
    {
      services: [svc('web', {}, { 'ipcontroller.ext/pool': 'bad' })],
      pools: [
        {
          ok: true,
          pool: {
            apiVersion: 'ipcontroller.ext/v1',
            kind: 'IpClaimPool',
            metadata: { name: 'bad' },
            spec: { cidr: '192.0.2.0/24', ranges: [['192.0.2.20', '192.0.2.10']] },
          },
        },
      ],
    },
    'PoolInvalid',
    /ends before it starts/,
  ],
  ['NoPoolForFamily', { services: [svc('web', { ipFamilies: ['IPv6'] })] }, 'NoPoolForFamily', /no valid IpClaimPool holds IPv6 addresses/],
  [
    'InvalidRequest',
    { services: [svc('web', {}, { 'ipcontroller.ext/loadBalancerIPs': 'not-an-ip' })] },
    'InvalidRequest',
    /"not-an-ip" is not an IP address/,
  ],
  [
    'NoCandidateNode',
    { services: [svc('web')], ipNodes: [ipNode('node-a', { ready: false }), ipNode('node-b', { beatAgoMs: 60_000 })] },
    'NoCandidateNode',
    /no healthy agent node is available/,
  ],
  [
    'NoServingEndpoint',
    {
      services: [svc('web', { externalTrafficPolicy: 'Local' })],
      slices: [{ key: 'ns/web-1', service: 'ns/web', servingNodes: ['node-z'] }],
    },
    'NoServingEndpoint',
    /no healthy agent node has a serving endpoint of ns\/web/,
  ],
];

for (const [name, parts, reason, message] of pendingCases) {
  test(`pending: ${name}`, () => {
    const e = explainService(snapshot(parts), 'ns/web');
    assert.ok(e.found && e.handled);
    assert.is(e.pending[0]?.reason, reason, JSON.stringify(e.pending));
    assert.match(e.pending[0]?.message ?? '', message);
    assert.is(e.condition?.status, 'False');
    assert.is(e.condition?.reason, reason);
    assert.match(e.summary, new RegExp(`^pending: ${reason}`));
    const text = renderWhy(e, PLAIN);
    assert.match(text, new RegExp(`Pending\\n  ${reason}: `));
  });
}

test('a Service of another class, one asking for nothing, and one that does not exist', () => {
  const snap = snapshot({ services: [svc('other', { loadBalancerClass: 'example.com/lb' }), svc('plain', { type: 'ClusterIP' })] });
  assert.match(explainService(snap, 'ns/other').summary, /^ignored: spec.loadBalancerClass example.com\/lb belongs to another controller/);
  assert.match(explainService(snap, 'ns/plain').summary, /^asks for no address/);
  assert.is(explainService(snap, 'ns/nope').found, false);
});

test('a fresh allocation: the lowest free address of the first pool in name order with room, and the pools before it', () => {
  const full = {
    ok: true as const,
    pool: {
      apiVersion: 'ipcontroller.ext/v1' as const,
      kind: 'IpClaimPool' as const,
      metadata: { name: 'a-full' },
      spec: { cidr: '198.51.100.0/30' },
    },
  };
  const snap = snapshot({
    services: [
      svc('x1', {}, {}, '2026-01-01T00:00:00Z'),
      svc('x2', {}, {}, '2026-01-01T00:00:00Z'),
      svc('web', {}, {}, '2026-01-01T00:00:09Z'),
    ],
    pools: [full, ...snapshot().pools],
  });
  const [a] = explainService(snap, 'ns/web').addresses;
  assert.is(a?.address, '192.0.2.1');
  assert.is(
    a?.origin,
    'the lowest free address, from IpClaimPool p1: pools are tried in name order and it is the first IPv4 pool that had room; before it, a-full is full',
  );
  assert.match(a?.placement ?? '', /^goes to node-(a|b): the candidate with the fewest claims/);
});

test('a claim with a move recorded but not yet up: Announcing, not Ready', () => {
  const moving = claim('192.0.2.1', ['ns/web'], 'node-b', {
    metadata: {
      annotations: {
        [MOVE_ANNOTATION]: JSON.stringify({
          from: 'node-a',
          to: 'node-b',
          reason: 'probe',
          detectedAt: iso(NOW - 500),
          claimedAt: iso(NOW - 450),
        }),
      },
    },
  });
  const e = explainService(snapshot({ services: [svc('web')], claims: [moving] }), 'ns/web');
  assert.equal(e.condition, {
    status: 'False',
    reason: 'Announcing',
    message: '192.0.2.1 is placed on node node-b; waiting for the agent to report it up',
  });
});

test.run();
