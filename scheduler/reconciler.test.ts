// The whole reconcile pass against an in-memory Kubernetes port: what it writes, in one pass,
// and that a second pass writes nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiException } from '@kubernetes/client-node';
import { pino } from 'pino';
import { SERVICE_CONDITION, type IpClaim, type IpClaimPool } from '../api/types.js';
import { MemoryKube } from '../test/support/memorykube.js';
import type { Clock } from '../lib/clock.js';
import { SchedulerMetrics } from './metrics.js';
import { Reconciler, emptyCaches, sameJson, type Caches, type NodeHealthView } from './reconciler.js';
import { parseService, type ServiceView } from './service.js';
import type { NodeFailure } from './health.js';

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** An apiserver in a Map: resourceVersions, 409 on stale writes and on create of an existing name. */

const clock: Clock = { now: () => 1_000_000, sleep: () => Promise.resolve() };

function service(name: string, spec: Record<string, unknown> = {}): ServiceView {
  const v = parseService({
    metadata: { name, namespace: 'ns', uid: name, resourceVersion: '1', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ...spec },
  });
  if (!v) throw new Error('bad');
  return v;
}

interface World {
  kube: MemoryKube;
  caches: Caches;
  metrics: SchedulerMetrics;
  health: NodeHealthView;
  reconciler: Reconciler;
}

function world(c: Clock = clock): World {
  const kube = new MemoryKube();
  const caches: Caches = emptyCaches();
  const pool: IpClaimPool = {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaimPool',
    metadata: { name: 'p', resourceVersion: '1' },
    spec: { cidr: '192.0.2.0/29' },
  };
  kube.pools.set('p', clone(pool));
  caches.pools.upsert('p', { ok: true, pool }, '1');
  const metrics = new SchedulerMetrics();
  const w: World = {
    kube,
    caches,
    metrics,
    health: { candidates: ['a', 'b'], failures: new Map<string, NodeFailure>(), failedAt: new Map() },
    reconciler: undefined as unknown as Reconciler,
  };
  w.reconciler = new Reconciler({
    caches,
    writes: kube,
    events: { emit: (e) => kube.events.push(e) },
    metrics,
    log: pino({ level: 'silent' }),
    clock: c,
    cfg: { lbClass: 'ipcontroller.ext/l2', mask: { ipv4: 32, ipv6: 128 }, strategy: 'fair', rebalance: false, concurrency: 4 },
    health: () => w.health,
  });
  return w;
}

const live = (): AbortSignal => new AbortController().signal;

test('one pass: claim created on a node, pool status written, ingress with ipMode VIP, Events; a second pass writes nothing', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  const first = await w.reconciler.pass(live());
  assert.is(first.errors, 0);
  const claim = w.kube.claims.get('192-0-2-1-32');
  assert.is(claim?.spec.cidr, '192.0.2.1/32');
  assert.equal(claim?.spec.services, ['ns/web']);
  assert.is(claim?.spec.pool, 'p');
  assert.ok(claim?.spec.nodeName === 'a' || claim?.spec.nodeName === 'b');
  assert.equal(w.kube.pools.get('p')?.status?.allocations, { '192.0.2.1': '192-0-2-1-32' });
  assert.is(w.kube.pools.get('p')?.status?.used, 1);
  assert.is(w.kube.pools.get('p')?.status?.free, 5);
  assert.equal(w.kube.ingress.get('ns/web'), [{ ip: '192.0.2.1', ipMode: 'VIP' }]);
  assert.equal(
    w.kube.log,
    ['create 192-0-2-1-32', 'pool-finalizers p [ipcontroller.ext/pool-protection]', 'pool-status p', 'ingress ns/web'],
    'claim first, then pool, then Service',
  );
  assert.equal(w.kube.events.map((e) => e.reason).sort(), ['IPAllocated', 'IPAssigned']);
  w.kube.log = [];
  const second = await w.reconciler.pass(live());
  assert.is(second.writes, 0);
  assert.equal(w.kube.log, []);
});

test('a pool status conflict is re-read and retried, not lost', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  w.kube.failPoolWrites = 2;
  const r = await w.reconciler.pass(live());
  assert.is(r.errors, 0);
  assert.equal(w.kube.pools.get('p')?.status?.allocations, { '192.0.2.1': '192-0-2-1-32' });
  assert.is(w.kube.log.filter((l) => l === 'pool-status p').length, 3);
});

test('a failed node: its claim moves in one write; failover counted with its duration; IPMoved', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  await w.reconciler.pass(live());
  const from = w.kube.claims.get('192-0-2-1-32')?.spec.nodeName as string;
  const to = from === 'a' ? 'b' : 'a';
  w.health = { candidates: [to], failures: new Map([[from, 'probe']]), failedAt: new Map([[from, clock.now() - 300]]) };
  w.kube.log = [];
  await w.reconciler.pass(live());
  assert.equal(w.kube.log, ['replace 192-0-2-1-32']);
  assert.is(w.kube.claims.get('192-0-2-1-32')?.spec.nodeName, to);
  const text = await w.metrics.registry.metrics();
  assert.match(text, /ipcontroller_scheduler_failovers_total\{reason="probe"\} 1/);
  assert.match(text, /ipcontroller_scheduler_failover_duration_seconds_bucket\{le="0.5"\} 1/);
  assert.match(text, /ipcontroller_scheduler_failover_duration_seconds_bucket\{le="0.25"\} 0/);
  assert.not.ok(
    w.kube.events.some((e) => e.reason === 'IPMoved'),
    'IPMoved waits for the new node to report the address up',
  );
  // The agent on the new node reports it up 120 ms after the claim write.
  const reported = w.kube.agentReportsUp('192-0-2-1-32', new Date(clock.now() + 120).toISOString());
  assert.equal(reported.status?.lastMove, {
    from,
    to,
    reason: 'probe',
    detectedAt: new Date(clock.now() - 300).toISOString(),
    claimedAt: new Date(clock.now()).toISOString(),
    upAt: new Date(clock.now() + 120).toISOString(),
  });
  w.caches.claims.upsert('192-0-2-1-32', reported, reported.metadata.resourceVersion ?? '');
  await w.reconciler.pass(live());
  await w.reconciler.pass(live());
  const moved = w.kube.events.filter((e) => e.reason === 'IPMoved');
  assert.equal(
    moved.map((e) => e.message),
    [
      `192.0.2.1 moved from node ${from} to ${to}: probe; took 0.420s (failure detected -> claim written 0.300s -> address up on ${to} 0.120s)`,
    ],
    'told once',
  );
});

test('the Service condition: Ready once the agent reports the address up; a pool problem is False with its reason', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  await w.reconciler.pass(live());
  assert.is(w.kube.conditions.get('ns/web'), undefined, 'no write for the passing Announcing state');
  const up = w.kube.agentReportsUp('192-0-2-1-32', new Date(clock.now()).toISOString());
  assert.is(up.status?.serviceList, 'ns/web');
  w.caches.claims.upsert('192-0-2-1-32', up, up.metadata.resourceVersion ?? '');
  w.kube.log = [];
  await w.reconciler.pass(live());
  assert.equal(w.kube.log, ['condition ns/web True Ready']);
  const c = w.kube.conditions.get('ns/web');
  assert.is(c?.type, SERVICE_CONDITION);
  assert.is(c?.message, '192.0.2.1 allocated and announced');
  w.kube.log = [];
  await w.reconciler.pass(live());
  assert.equal(w.kube.log, [], 'unchanged: nothing written');
  const outside = service('outside', { loadBalancerIP: '198.51.100.7' });
  w.caches.services.upsert(outside.key, outside, '1');
  await w.reconciler.pass(live());
  assert.is(w.kube.conditions.get('ns/outside')?.reason, 'AddressOutsidePool');
  assert.is(w.kube.conditions.get('ns/outside')?.status, 'False');
  // It stops being a LoadBalancer: the condition no longer says Ready.
  const cached = w.caches.services.get('ns/web');
  const plain = service('web', { type: 'ClusterIP' });
  w.caches.services.upsert(
    plain.key,
    { ...plain, ...(cached?.addressCondition ? { addressCondition: cached.addressCondition } : {}) },
    '100000',
  );
  await w.reconciler.pass(live());
  assert.is(w.kube.conditions.get('ns/web')?.reason, 'NotRequested');
});

test('no candidate: the claim is created unplaced and its status says why', async () => {
  const w = world();
  w.health = { candidates: [], failures: new Map(), failedAt: new Map() };
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  await w.reconciler.pass(live());
  const claim = w.kube.claims.get('192-0-2-1-32');
  assert.is(claim?.spec.nodeName, undefined);
  assert.is(claim?.status?.phase, 'Pending');
  assert.equal(
    claim?.status?.conditions?.map((c) => [c.type, c.status, c.reason]),
    [['Scheduled', 'False', 'NoCandidateNode']],
  );
});

test('after losing leadership (aborted signal) nothing is written', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  const lost = new AbortController();
  lost.abort();
  await w.reconciler.pass(lost.signal).catch(() => undefined);
  assert.equal(w.kube.log, []);
});

test('a claim someone else created meanwhile: 409, re-read, no crash, converges next pass', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  await w.kube.createClaim({
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: '192-0-2-1-32' },
    spec: { cidr: '192.0.2.1/32', services: ['ns/other'], pool: 'p' },
  });
  w.kube.log = [];
  const r = await w.reconciler.pass(live());
  assert.is(r.errors, 1);
  assert.is(w.caches.claims.get('192-0-2-1-32')?.spec.services?.[0], 'ns/other', 'the cache now knows');
  const again = await w.reconciler.pass(live());
  assert.is(again.errors, 0);
  // ns/other does not exist, so its claim goes; web keeps 192.0.2.1 as a fresh claim next pass or gets another address.
  await w.reconciler.pass(live());
  const claims = [...w.kube.claims.values()];
  assert.equal(
    claims.map((c) => c.spec.services),
    [['ns/web']],
  );
});

/** The user runs `kubectl delete ipclaimpool p` (optionally annotated release-on-delete); the watch delivers it. */
function deletePool(w: World, annotations: Record<string, string> = {}): void {
  const cur = w.kube.pools.get('p') as IpClaimPool;
  const deleted: IpClaimPool = {
    ...cur,
    metadata: { ...cur.metadata, annotations, deletionTimestamp: new Date(clock.now()), resourceVersion: String(++w.kube.rv) },
  };
  w.kube.pools.set('p', deleted);
  w.caches.pools.upsert('p', { ok: true, pool: clone(deleted) }, deleted.metadata.resourceVersion ?? '');
}

test('deleting a pool in use: nothing is released; the pool says who holds it; it goes when the last Service lets go', async () => {
  const w = world();
  const [a, b] = [service('a'), service('b')];
  for (const s of [a, b]) w.caches.services.upsert(s.key, s, '1');
  await w.reconciler.pass(live());
  assert.equal(w.kube.pools.get('p')?.metadata.finalizers, ['ipcontroller.ext/pool-protection']);
  w.caches.pools.upsert(
    'p',
    { ok: true, pool: clone(w.kube.pools.get('p') as IpClaimPool) },
    w.kube.pools.get('p')?.metadata.resourceVersion ?? '',
  );
  deletePool(w);
  w.kube.log = [];
  w.kube.events = [];
  const late = service('late');
  w.caches.services.upsert(late.key, late, '1');
  await w.reconciler.pass(live());
  assert.equal([...w.kube.claims.keys()].sort(), ['192-0-2-1-32', '192-0-2-2-32'], 'both claims kept, none for the late Service');
  assert.not.ok(w.kube.log.some((l) => l.startsWith('delete') || l.startsWith('create')));
  const deleting = w.kube.pools.get('p')?.status?.conditions?.find((c) => c.type === 'Deleting');
  assert.is(deleting?.reason, 'InUse');
  assert.match(
    deleting?.message ?? '',
    /2 address\(es\) from it are in use: ns\/a \(192.0.2.1\), ns\/b \(192.0.2.2\).*ipcontroller.ext\/release-on-delete=true/,
  );
  const inUse = w.kube.events.find((e) => e.reason === 'PoolInUse');
  assert.equal(inUse?.object?.kind, 'IpClaimPool');
  assert.match(inUse?.message ?? '', /ns\/a \(192.0.2.1\), ns\/b \(192.0.2.2\)/);
  assert.equal(
    w.kube.events
      .filter((e) => e.reason === 'PoolDeleting')
      .map((e) => e.serviceName)
      .sort(),
    ['a', 'b'],
  );
  assert.ok(w.kube.events.some((e) => e.serviceName === 'late' && e.reason === 'AllocationFailed' && /NoPoolForFamily/.test(e.message)));
  assert.ok(w.kube.pools.has('p'), 'still there, Terminating');
  // a goes: its address is released as usual; b still holds the pool.
  w.caches.services.remove(a.key);
  await w.reconciler.pass(live());
  assert.equal([...w.kube.claims.keys()], ['192-0-2-2-32']);
  assert.ok(w.kube.pools.has('p'));
  w.caches.services.remove(b.key);
  await w.reconciler.pass(live());
  assert.equal([...w.kube.claims.keys()], []);
  assert.not.ok(w.kube.pools.has('p'), 'the finalizer came off and the deletion completed');
});

test('deleting a pool annotated release-on-delete releases its addresses at once and lets it go', async () => {
  const w = world();
  const a = service('a');
  w.caches.services.upsert(a.key, a, '1');
  await w.reconciler.pass(live());
  w.caches.pools.upsert(
    'p',
    { ok: true, pool: clone(w.kube.pools.get('p') as IpClaimPool) },
    w.kube.pools.get('p')?.metadata.resourceVersion ?? '',
  );
  deletePool(w, { 'ipcontroller.ext/release-on-delete': 'true' });
  await w.reconciler.pass(live());
  assert.equal([...w.kube.claims.keys()], []);
  assert.not.ok(w.kube.pools.has('p'));
});

test('a replica past its lease deadline (own clock) writes nothing, though nobody aborted its signal', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  await w.reconciler.pass(live(), () => clock.now()).catch(() => undefined);
  assert.equal(w.kube.log, []);
});

function orphan(w: World, services: string[]): IpClaim {
  const c: IpClaim = {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: '192-0-2-5-32', uid: 'uid-old', resourceVersion: '50' },
    spec: { cidr: '192.0.2.5/32', services, nodeName: 'a' },
  };
  w.kube.claims.set('192-0-2-5-32', clone(c));
  w.caches.claims.upsert('192-0-2-5-32', clone(c), '50');
  return c;
}

test('a stale delete fails on its preconditions: a claim re-created meanwhile by another replica stays, and the cache learns it', async () => {
  const w = world();
  orphan(w, ['ns/gone']);
  // Another replica re-created the name for a Service this one has not seen yet.
  const live1: IpClaim = {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: '192-0-2-5-32', uid: 'uid-new', resourceVersion: '300' },
    spec: { cidr: '192.0.2.5/32', services: ['ns/web'], nodeName: 'b' },
  };
  w.kube.claims.set('192-0-2-5-32', clone(live1));
  await w.reconciler.pass(live());
  assert.is(w.kube.claims.get('192-0-2-5-32')?.metadata.uid, 'uid-new', 'the live claim was not deleted');
  assert.is(w.caches.claims.get('192-0-2-5-32')?.metadata.resourceVersion, '300', 'the cache holds the live claim');
});

test('removal is versioned: a newer claim the watch delivered while the delete was in flight stays in the cache', async () => {
  const w = world();
  orphan(w, ['ns/gone']);
  const del = w.kube.deleteClaim.bind(w.kube);
  w.kube.deleteClaim = async (name, pre) => {
    await del(name, pre);
    // Meanwhile the other replica re-created it and the watch delivered that.
    const again = await w.kube.createClaim({
      apiVersion: 'ipcontroller.ext/v1',
      kind: 'IpClaim',
      metadata: { name },
      spec: { cidr: '192.0.2.5/32', services: ['ns/web'] },
    });
    w.caches.claims.upsert(name, again, again.metadata.resourceVersion ?? '');
  };
  await w.reconciler.pass(live());
  assert.is(w.caches.claims.get('192-0-2-5-32')?.spec.services?.[0], 'ns/web', 'the re-created claim is still known');
});

test('a 409 on create heals a cache that wrongly believed the name free (tombstone), and the next pass picks another address', async () => {
  const w = world();
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  // The name was removed from the cache at a version newer than the live object's.
  const taken = await w.kube.createClaim({
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpClaim',
    metadata: { name: '192-0-2-1-32' },
    spec: { cidr: '192.0.2.1/32', services: ['ns/other'], pool: 'p' },
  });
  w.caches.claims.upsert('192-0-2-1-32', taken, taken.metadata.resourceVersion ?? '');
  w.caches.claims.remove('192-0-2-1-32');
  w.kube.services.set('ns/other', {
    metadata: { name: 'other', namespace: 'ns', uid: 'o', resourceVersion: '2' },
    spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'] },
  });
  await w.reconciler.pass(live());
  assert.ok(w.caches.claims.get('192-0-2-1-32'), 'the cache knows the name is taken');
  w.kube.log = [];
  await w.reconciler.pass(live());
  assert.not.ok(w.kube.log.includes('create 192-0-2-1-32'), `no second create of the taken name: ${w.kube.log.join(', ')}`);
});

test('a Service written through the cache keeps only our annotations, as the watch stores it', async () => {
  // The watch's event for the same resourceVersion is ignored afterwards, so what the write put
  // in the cache stays: a kubectl-applied Service's whole last-applied configuration must not.
  const w = world();
  const raw = {
    metadata: {
      name: 'web',
      namespace: 'ns',
      uid: 'web',
      resourceVersion: '1',
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"v1","kind":"Service"}' },
    },
    spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'] },
  };
  w.kube.services.set('ns/web', raw);
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  await w.reconciler.pass(live());
  assert.equal(w.kube.ingress.get('ns/web'), [{ ip: '192.0.2.1', ipMode: 'VIP' }]);
  const cached = w.caches.services.get('ns/web');
  assert.ok(cached && cached.resourceVersion !== '1', 'the written Service is in the cache');
  assert.equal(cached?.annotations, {});
});

/** A claim whose Service (ns/late) is missing from the cache but exists in the API. */
function lateServiceWorld(): World {
  const w = world();
  orphan(w, ['ns/late']);
  w.kube.services.set('ns/late', {
    metadata: { name: 'late', namespace: 'ns', uid: 'l', resourceVersion: '60' },
    spec: { type: 'ClusterIP', externalIPs: ['192.0.2.5'], ipFamilies: ['IPv4'] },
  });
  return w;
}

test('a claim whose Service is missing from the cache but exists in the API is kept, and the Service is cached', async () => {
  const w = lateServiceWorld();
  await w.reconciler.pass(live());
  assert.not.ok(
    w.kube.log.some((l) => l.startsWith('delete')),
    w.kube.log.join(', '),
  );
  assert.ok(w.caches.services.get('ns/late'));
  assert.ok(w.kube.claims.get('192-0-2-5-32'));
});

test('sameJson ignores key order', () => {
  assert.ok(sameJson({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 }));
  assert.not.ok(sameJson({ a: 1 }, { a: 2 }));
  assert.not.ok(sameJson([1, 2], [2, 1]));
});

test('losing leadership mid-pass is a result, not an exception: lostLeadership, and nothing written after it', async () => {
  const w = world();
  for (const n of ['a', 'b', 'c']) {
    const s = service(n);
    w.caches.services.upsert(s.key, s, '1');
  }
  let left = 1;
  const r = await w.reconciler.pass(live(), () => (left-- > 0 ? Infinity : 0));
  assert.is(r.kind, 'lostLeadership');
  assert.is(r.writes, 1);
  assert.equal(w.kube.log, ['create 192-0-2-1-32']);
});

test('a claim create the apiserver refuses (422): an Event on the Service, and no second create before its backoff ends', async () => {
  let now = 1_000_000;
  const w = world({ now: () => now, sleep: () => Promise.resolve() });
  const s = service('web');
  w.caches.services.upsert(s.key, s, '1');
  w.kube.createClaim = async (claim) => {
    w.kube.log.push(`create ${claim.metadata.name ?? ''}`);
    throw new ApiException(
      422,
      'Invalid',
      JSON.stringify({ kind: 'Status', message: 'IpClaim.ipcontroller.ext "x" is invalid: spec.cidr: bad' }),
      {},
    );
  };
  const r = await w.reconciler.pass(live());
  assert.is(r.kind, 'retry');
  const failed = w.kube.events.filter((e) => e.reason === 'AllocationFailed' && e.serviceName === 'web');
  assert.equal(failed.length, 1);
  assert.match(failed[0]?.message ?? '', /refused IpClaim 192-0-2-1-32 for 192.0.2.1: .*spec.cidr: bad; trying again in 10s/);
  w.kube.log = [];
  now += 5_000;
  await w.reconciler.pass(live());
  assert.equal(
    w.kube.log.filter((l) => l.startsWith('create')),
    [],
    'held back',
  );
  now += 6_000;
  await w.reconciler.pass(live());
  assert.equal(
    w.kube.log.filter((l) => l.startsWith('create')),
    ['create 192-0-2-1-32'],
    'tried again after 10 s',
  );
});

test('an invalid pool: its status is written once, not again on the next pass before the watch delivers it', async () => {
  const w = world();
  const bad = {
    ok: false as const,
    name: 'bad',
    reason: 'spec.cidr does not parse',
    metadata: { name: 'bad', resourceVersion: '5' },
    status: {},
  };
  w.caches.pools.upsert('bad', bad, '5');
  await w.reconciler.pass(live());
  await w.reconciler.pass(live());
  assert.equal(
    w.kube.log.filter((l) => l === 'pool-status-raw bad'),
    ['pool-status-raw bad'],
  );
});

test('a claim kept because its Service turned up in the API says nothing of a release', async () => {
  const w = lateServiceWorld();
  await w.reconciler.pass(live());
  assert.not.ok(
    w.kube.events.some((e) => e.reason === 'IPReleased'),
    'no IPReleased',
  );
  assert.not.ok(/ipcontroller_scheduler_releases_total \d*[1-9]/.test(await w.metrics.registry.metrics()), 'no release counted');
});

test('several Services in one pass: each ingress once, after its own claim and the pool status; a second pass writes nothing', async () => {
  const w = world();
  for (const n of ['a', 'b', 'c', 'd']) {
    const s = service(n);
    w.caches.services.upsert(s.key, s, '1');
  }
  const r = await w.reconciler.pass(live());
  assert.is(r.errors, 0);
  const log = w.kube.log;
  const poolAt = log.indexOf('pool-status p');
  assert.ok(poolAt > log.indexOf('create 192-0-2-1-32'), log.join(', '));
  for (const n of ['a', 'b', 'c', 'd']) {
    const ip = w.kube.ingress.get(`ns/${n}`)?.[0]?.ip ?? '';
    const at = log.indexOf(`ingress ns/${n}`);
    assert.is(log.filter((l) => l === `ingress ns/${n}`).length, 1, `${n}: ${log.join(', ')}`);
    assert.ok(at > poolAt && at > log.indexOf(`create ${ip.replaceAll('.', '-')}-32`), `${n}: ${log.join(', ')}`);
  }
  assert.is(w.kube.events.filter((e) => e.reason === 'IPAllocated').length, 4);
  w.kube.log = [];
  assert.is((await w.reconciler.pass(live())).writes, 0);
});

test.run();
