// Bad input in every field a user writes, against the real apiserver: each row says what the
// user must see (an Event on the Service, a pool condition, or the apiserver's own refusal),
// and every test ends by checking that everything else kept working: a good Service still
// gets its address, pool status lists only real allocations, no write fails in a loop.
// Where an issue is silent we do what a MetalLB user would expect (see scheduler/README.md).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiException, type V1Service } from '@kubernetes/client-node';
import { API_VERSION, type IpClaim, type IpClaimPool, type IpNode } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import { uniqueName } from '../support/cluster.js';
import { fixtureRunner, metricValue, type Fixture } from './scheduler-fixtures.js';

const withFixture = fixtureRunner(test);
const LB_IPS = 'ipcontroller.ext/loadBalancerIPs';
const POOL = 'ipcontroller.ext/pool';

interface ServiceRow {
  what: string;
  spec?: V1Service['spec'];
  annotations?: Record<string, string>;
  /** The AllocationFailed Event's message. */
  event: RegExp;
}

/** Services and annotations: accepted by the apiserver, refused by the scheduler with an Event. */
function serviceRows(goodPool: string, v6Pool: string): ServiceRow[] {
  return [
    {
      what: 'annotation with a leading 0 (octal to ipaddr.js)',
      annotations: { [LB_IPS]: '192.0.2.010' },
      event: /InvalidRequest: .*"192.0.2.010" must not have leading 0s .*write 192.0.2.10/,
    },
    {
      what: 'annotation as one 32-bit integer',
      annotations: { [LB_IPS]: '3221226001' },
      event: /InvalidRequest: .*"3221226001" is not an IP address/,
    },
    {
      what: 'annotation with three parts',
      annotations: { [LB_IPS]: '192.0.2' },
      event: /InvalidRequest: .*"192.0.2" is not an IP address/,
    },
    {
      what: 'annotation with an IPv6 zone inside a pool',
      spec: { ipFamilyPolicy: 'PreferDualStack' },
      annotations: { [LB_IPS]: '2001:db8:1::5%eth0', [POOL]: v6Pool },
      event: /InvalidRequest: .*"2001:db8:1::5%eth0" must not have an IPv6 zone/,
    },
    {
      what: 'annotation naming a loopback address',
      annotations: { [LB_IPS]: '127.0.0.1' },
      event: /InvalidRequest: .*"127.0.0.1" is a loopback address/,
    },
    {
      what: 'annotation naming two IPv4 addresses',
      annotations: { [LB_IPS]: '192.0.2.131, 192.0.2.132' },
      event: /InvalidRequest: .*names two IPv4 addresses/,
    },
    {
      what: 'empty annotation',
      annotations: { [LB_IPS]: ' ' },
      event: /InvalidRequest: annotation ipcontroller.ext\/loadBalancerIPs is empty/,
    },
    // The apiserver does not validate spec.loadBalancerIP at all.
    {
      what: 'spec.loadBalancerIP with three parts',
      spec: { loadBalancerIP: '192.0.2' },
      event: /InvalidRequest: spec.loadBalancerIP: "192.0.2" is not an IP address/,
    },
    {
      what: 'spec.loadBalancerIP that is not an address',
      spec: { loadBalancerIP: 'auto' },
      event: /InvalidRequest: spec.loadBalancerIP: "auto" is not an IP address/,
    },
    {
      what: 'requested address in no pool',
      annotations: { [LB_IPS]: '203.0.113.250' },
      event: /AddressOutsidePool: requested address 203.0.113.250 is not in any IpClaimPool/,
    },
    {
      what: 'pool annotation naming no pool',
      annotations: { [POOL]: 'no-such-pool' },
      event: /PoolNotFound: IpClaimPool no-such-pool named in ipcontroller.ext\/pool does not exist/,
    },
    // The 1.35 apiserver keeps accepting these legacy forms in spec.externalIPs (StrictIPCIDRValidation is alpha).
    {
      what: 'externalIPs with a leading 0',
      spec: { type: 'ClusterIP', externalIPs: ['192.0.2.010'] },
      event: /InvalidExternalIP: spec.externalIPs holds "192.0.2.010", which must not have leading 0s/,
    },
    {
      what: 'externalIPs with IPv4-mapped IPv6',
      spec: { type: 'ClusterIP', externalIPs: ['::ffff:192.0.2.7'] },
      event: /InvalidExternalIP: .*"::ffff:192.0.2.7", which must not be an IPv4-mapped IPv6 address: write 192.0.2.7/,
    },
    {
      what: 'externalIPs with a multicast address',
      spec: { type: 'ClusterIP', externalIPs: ['239.1.2.3'] },
      event: /InvalidExternalIP: .*"239.1.2.3", which is a multicast address/,
    },
    {
      what: 'externalIPs with the broadcast address',
      spec: { type: 'ClusterIP', externalIPs: ['255.255.255.255'] },
      event: /InvalidExternalIP: .*"255.255.255.255", which is a broadcast address/,
    },
    {
      what: 'pool annotation naming an existing pool and an address outside it',
      annotations: { [POOL]: goodPool, [LB_IPS]: '192.0.2.200' },
      event: new RegExp(`AddressOutsidePool: requested address 192.0.2.200 is not in IpClaimPool ${goodPool}`),
    },
  ];
}

/** The apiserver's message for a refused create, or '' when it was accepted. */
async function refusal(create: () => Promise<unknown>): Promise<string> {
  try {
    await create();
    return '';
  } catch (err) {
    if (err instanceof ApiException && err.code === 422) return String(err.body);
    throw err;
  }
}

async function condition(
  f: Fixture,
  pool: string,
  type: string,
): Promise<{ status?: string; reason?: string; message?: string } | undefined> {
  return (await f.clients.pools.get(pool))?.status?.conditions?.find((c) => c.type === type);
}

test('bad addresses in Services and annotations: an AllocationFailed Event each, no claim, no pool entry, no write loop; a good Service still served', () =>
  withFixture(async (f) => {
    const agent = await f.node();
    const good = await f.pool('192.0.2.128/29', undefined, 'zz-good');
    const v6 = await f.pool('2001:db8:1::/64', undefined, 'zz-v6');
    const sched = await f.scheduler();
    const rows = serviceRows(good, v6);
    const names = await Promise.all(rows.map((row) => f.service('bad', row.spec ?? {}, row.annotations ?? {})));
    const fine = await f.service('fine', {}, { [POOL]: good });
    for (const [i, row] of rows.entries()) {
      const name = names[i] as string;
      const event = await f.waitEvent(name, 'AllocationFailed', row.event);
      assert.is(event.type, 'Warning', row.what);
    }
    await waitFor(
      'the good Service gets the first address of its pool',
      async () => (await f.ingress(fine))[0]?.ip === '192.0.2.129',
      15_000,
    );
    for (const [i, row] of rows.entries()) {
      const name = names[i] as string;
      assert.equal(await f.ingress(name), [], `${row.what}: no ingress`);
      assert.equal(await f.claimsOf(name), [], `${row.what}: no claim`);
    }
    const goodPool = await f.clients.pools.get(good);
    assert.equal(goodPool?.status?.allocations, { '192.0.2.129': '192-0-2-129-32' }, 'only the real allocation; no phantom');
    const v6Pool = await f.clients.pools.get(v6);
    assert.equal(v6Pool?.status?.allocations ?? {}, {}, 'the zone address left no phantom entry');
    assert.is(v6Pool?.status?.used, 0);
    for (const stage of ['claim-write', 'claim-status', 'pool-status', 'pool-finalizer', 'service-status']) {
      assert.is(
        await metricValue(sched, 'ipcontroller_scheduler_reconcile_errors_total', { stage }),
        0,
        `no ${stage} write failed (no 422 loop)`,
      );
    }
    assert.is(
      await metricValue(sched, 'ipcontroller_scheduler_allocation_failures_total', { reason: 'InvalidRequest' }),
      rows.filter((r) => /InvalidRequest/.test(r.event.source)).length,
      'each failure counted once, not once per pass',
    );
    assert.is((await f.claimsOf(fine))[0]?.spec.nodeName, agent.node);
  }));

test('bad pools: a condition each; special-purpose addresses never handed out; the rest keeps working', () =>
  withFixture(async (f) => {
    await f.node();
    const good = await f.pool('192.0.2.136/29', undefined, 'zz-good');
    const everything = await f.pool('0.0.0.0/0', undefined, 'zz-everything');
    const loopback = await f.pool('127.0.0.0/8', undefined, 'zz-loopback');
    const multicast = await f.pool('224.0.0.0/24', undefined, 'zz-multicast');
    const backwards = await f.pool('198.51.100.32/29', [['198.51.100.38', '198.51.100.33']], 'zz-backwards');
    const outside = await f.pool('198.51.100.40/29', [['198.51.100.41', '198.51.100.60']], 'zz-outside');
    const family = await f.pool('198.51.100.48/29', [['2001:db8::1', '2001:db8::2']], 'zz-family');
    await f.scheduler();
    const invalid: Array<[string, RegExp]> = [
      [loopback, /cidr 127.0.0.0\/8 holds only addresses that are never handed out \(.*loopback 127.0.0.0\/8\)/],
      [multicast, /holds only addresses that are never handed out \(.*multicast 224.0.0.0\/4\)/],
      [backwards, /ends before it starts/],
      [outside, /is not inside cidr 198.51.100.40\/29/],
      [family, /is not IPv4 like cidr/],
    ];
    for (const [pool, reason] of invalid) {
      await waitFor(
        `${pool}: Valid=False with the reason`,
        async () => {
          const c = await condition(f, pool, 'Valid');
          return c?.status === 'False' && c.reason === 'InvalidSpec' && reason.test(c.message ?? '');
        },
        15_000,
      );
      const svc = await f.service('to-invalid', {}, { [POOL]: pool });
      await f.waitEvent(svc, 'AllocationFailed', new RegExp(`PoolInvalid: IpClaimPool ${pool} named in ipcontroller.ext/pool is invalid`));
    }
    // 0.0.0.0/0 is valid but never gives out 0.0.0.x (this network), loopback, link-local, multicast or broadcast.
    await waitFor(
      'the 0.0.0.0/0 pool says what it withholds',
      async () => {
        const c = await condition(f, everything, 'Valid');
        return (
          c?.status === 'True' &&
          /never handed out: .*unspecified 0.0.0.0\/8, loopback 127.0.0.0\/8, link-local 169.254.0.0\/16, multicast 224.0.0.0\/4/.test(
            c.message ?? '',
          )
        );
      },
      15_000,
    );
    const wide = await f.service('wide', {}, { [POOL]: everything });
    await waitFor('a Service from 0.0.0.0/0 gets 1.0.0.0, not 0.0.0.1', async () => (await f.ingress(wide))[0]?.ip === '1.0.0.0', 15_000);
    const asked = await f.service('asks-loopback', {}, { [POOL]: everything, [LB_IPS]: '127.0.0.7' });
    await f.waitEvent(asked, 'AllocationFailed', /"127.0.0.7" is a loopback address/);
    const fine = await f.service('fine', {}, { [POOL]: good });
    await waitFor('the good pool still serves', async () => (await f.ingress(fine))[0]?.ip === '192.0.2.137', 15_000);
  }));

test('a pool edited into an invalid spec: Valid=False says it keeps its addresses; its Services keep them; fixed, it gives out again', () =>
  withFixture(async (f) => {
    await f.node();
    const pool = await f.pool('198.51.100.64/29', undefined, 'zz-edit');
    await f.scheduler();
    const held = await Promise.all([1, 2].map(() => f.service('edit', {}, { [POOL]: pool })));
    await waitFor(
      'both have addresses',
      async () => (await Promise.all(held.map((s) => f.ingress(s)))).every((i) => i.length === 1),
      15_000,
    );
    const before = await Promise.all(held.map(async (s) => (await f.ingress(s))[0]?.ip));
    await f.clients.pools.patch(pool, { spec: { ranges: [['198.51.100.70', '198.51.100.65']] } });
    await waitFor(
      'Valid=False: ends before it starts; keeps the 2 addresses',
      async () => {
        const c = await condition(f, pool, 'Valid');
        const p = await f.clients.pools.get(pool);
        return (
          c?.status === 'False' &&
          /ends before it starts; it keeps the 2 address\(es\) it gave out/.test(c.message ?? '') &&
          p?.status?.used === 2
        );
      },
      15_000,
    );
    const late = await f.service('edit-late', {}, { [POOL]: pool });
    await f.waitEvent(late, 'AllocationFailed', /PoolInvalid/);
    assert.equal(await Promise.all(held.map(async (s) => (await f.ingress(s))[0]?.ip)), before, 'nothing released by the bad edit');
    await f.clients.pools.patch(pool, { spec: { ranges: null } });
    await waitFor('fixed: the late Service gets an address', async () => (await f.ingress(late)).length === 1, 15_000);
    assert.equal(await Promise.all(held.map(async (s) => (await f.ingress(s))[0]?.ip)), before);
  }));

test('hand-written IpClaimPools, IpClaims and IpNodes with ambiguous addresses are refused by the apiserver with the reason', () =>
  withFixture(async (f) => {
    const pool = (cidr: string, ranges?: Array<[string, string]>): IpClaimPool => ({
      apiVersion: API_VERSION,
      kind: 'IpClaimPool',
      metadata: { name: uniqueName('hand-pool') },
      spec: { cidr, ...(ranges ? { ranges } : {}) },
    });
    const claim = (cidr: string): IpClaim => ({
      apiVersion: API_VERSION,
      kind: 'IpClaim',
      metadata: { name: uniqueName('hand-claim') },
      spec: { cidr },
    });
    const node = (probeAddress: string, probePort = 9610): IpNode => ({
      apiVersion: API_VERSION,
      kind: 'IpNode',
      metadata: { name: uniqueName('hand-node') },
      spec: { probeAddress, probePort },
    });
    const rows: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['pool cidr with a leading 0', () => f.clients.pools.create(pool('192.0.2.010/29')), /cidr must be an IP prefix/],
      ['pool cidr with three parts', () => f.clients.pools.create(pool('192.0.2/24')), /cidr must be an IP prefix/],
      ['pool cidr with a zone', () => f.clients.pools.create(pool('2001:db8::%eth0/64')), /cidr must be an IP prefix/],
      [
        'pool range end with a leading 0',
        () => f.clients.pools.create(pool('192.0.2.0/24', [['192.0.2.010', '192.0.2.20']])),
        /each end of a range must be an IP address/,
      ],
      [
        'pool range end as an integer',
        () => f.clients.pools.create(pool('192.0.2.0/24', [['3221225985', '192.0.2.20']])),
        /each end of a range must be an IP address/,
      ],
      [
        'claim cidr with a leading 0',
        () => f.clients.claims.create(claim('192.0.2.010/32')),
        /cidr must be an IP address with a prefix length/,
      ],
      [
        'claim cidr with a zone',
        () => f.clients.claims.create(claim('2001:db8:1::5%eth0/128')),
        /cidr must be an IP address with a prefix length/,
      ],
      [
        'claim cidr as IPv4-mapped IPv6',
        () => f.clients.claims.create(claim('::ffff:192.0.2.1/128')),
        /cidr must be an IP address with a prefix length/,
      ],
      ['IpNode probe address with three parts', () => f.clients.nodes.create(node('127.1')), /probeAddress must be an IP address/],
      ['IpNode probe address with a zone', () => f.clients.nodes.create(node('fe80::1%eth0')), /probeAddress must be an IP address/],
      ['IpNode probe port 0', () => f.clients.nodes.create(node('192.0.2.1', 0)), /probePort/],
    ];
    for (const [what, create, reason] of rows) {
      const message = await refusal(create);
      assert.ok(message, `${what}: the apiserver must refuse it`);
      assert.match(message, reason, what);
    }
  }));

test('hand-written objects the apiserver accepts: a stray claim is removed, a bogus IpNode is never a candidate; the rest keeps working', () =>
  withFixture(async (f) => {
    const agent = await f.node();
    const good = await f.pool('192.0.2.144/29', undefined, 'zz-good');
    // An IpNode whose Node does not exist, and a Node labelled for exclusion with the value "false"
    // (Kubernetes excludes on the label's presence, whatever its value).
    const ghost = uniqueName('ghost');
    await f.clients.nodes.create({
      apiVersion: API_VERSION,
      kind: 'IpNode',
      metadata: { name: ghost },
      spec: { probeAddress: '127.0.0.1', probePort: agent.port },
    });
    const excluded = await f.node('excluded');
    await f.core.patchNode({
      name: excluded.node,
      body: [{ op: 'add', path: '/metadata/labels/node.kubernetes.io~1exclude-from-external-load-balancers', value: 'false' }],
    });
    // A claim nobody asked for, naming a Service that does not exist; and one named unlike its address.
    const stray = '192-0-2-150-32';
    await f.clients.claims.create({
      apiVersion: API_VERSION,
      kind: 'IpClaim',
      metadata: { name: stray },
      spec: { cidr: '192.0.2.150/32', services: ['default/nobody'], pool: good, nodeName: agent.node },
    });
    await f.clients.claims.create({
      apiVersion: API_VERSION,
      kind: 'IpClaim',
      metadata: { name: uniqueName('misnamed') },
      spec: { cidr: '192.0.2.151/32', nodeName: agent.node },
    });
    try {
      await f.scheduler();
      const svcs = await Promise.all([1, 2, 3].map(() => f.service('fine', {}, { [POOL]: good })));
      await waitFor(
        'every Service placed on the one real candidate',
        async () => {
          const claims = (await Promise.all(svcs.map((s) => f.claimsOf(s)))).flat();
          return claims.length === 3 && claims.every((c) => c.spec.nodeName === agent.node);
        },
        15_000,
      );
      await waitFor(
        'the stray and misnamed claims are removed',
        async () => {
          const names = (await f.clients.claims.list()).items.map((c) => c.spec.cidr);
          return !names.includes('192.0.2.150/32') && !names.includes('192.0.2.151/32');
        },
        15_000,
      );
      // The pool's status is written after the pass's claim writes (after its finalizer, when that is new).
      await waitFor('the pool counts three addresses used', async () => (await f.clients.pools.get(good))?.status?.used === 3, 15_000);
      const used = (await f.clients.pools.get(good))?.status?.used;
      assert.is(used, 3, 'the pool counts the three real Services only');
    } finally {
      await f.clients.nodes.delete(ghost).catch(() => undefined);
    }
  }));

test('overlapping pools: each counts every address in use inside it; the condition says they overlap', () =>
  withFixture(async (f) => {
    await f.node();
    const wide = await f.pool('198.51.100.128/25', undefined, 'zz-ov-a');
    const narrow = await f.pool('198.51.100.128/26', undefined, 'zz-ov-b');
    await f.scheduler();
    const fromWide = await Promise.all(Array.from({ length: 5 }, () => f.service('ov-wide', {}, { [POOL]: wide })));
    const fromNarrow = await Promise.all(Array.from({ length: 3 }, () => f.service('ov-narrow', {}, { [POOL]: narrow })));
    await waitFor(
      'all eight have addresses',
      async () => (await Promise.all([...fromWide, ...fromNarrow].map((s) => f.ingress(s)))).every((i) => i.length === 1),
      20_000,
    );
    const ips = (await Promise.all([...fromWide, ...fromNarrow].map(async (s) => (await f.ingress(s))[0]?.ip))).filter(Boolean);
    assert.is(new Set(ips).size, 8, 'no address given twice');
    await waitFor(
      'both pools count all eight (every address lies in both)',
      async () => {
        const [a, b] = await Promise.all([f.clients.pools.get(wide), f.clients.pools.get(narrow)]);
        return a?.status?.used === 8 && a.status.free === 126 - 8 && b?.status?.used === 8 && b.status.free === 62 - 8;
      },
      15_000,
    );
    const c = await condition(f, narrow, 'Overlapping');
    assert.is(c?.status, 'True');
    assert.match(c?.message ?? '', new RegExp(`shares addresses with IpClaimPool .*${wide}`));
  }));

test('deleting a pool in use: Terminating with a condition and Events naming the Services; nothing released until they let go or the user says so', () =>
  withFixture(async (f) => {
    await f.node();
    const pool = await f.pool('203.0.113.200/29', undefined, 'zz-del');
    const other = await f.pool('203.0.113.208/29', undefined, 'zz-del-other');
    await f.scheduler();
    const a = await f.service('del-a', {}, { [POOL]: pool });
    const b = await f.service('del-b', {}, { [POOL]: pool });
    await waitFor(
      'both have addresses and the pool its finalizer',
      async () => {
        const p = await f.clients.pools.get(pool);
        return (
          (await f.ingress(a)).length === 1 &&
          (await f.ingress(b)).length === 1 &&
          (p?.metadata.finalizers ?? []).includes('ipcontroller.ext/pool-protection')
        );
      },
      15_000,
    );
    const before = [(await f.ingress(a))[0]?.ip, (await f.ingress(b))[0]?.ip];
    await f.clients.pools.delete(pool);
    await waitFor(
      'Deleting=True/InUse names both Services',
      async () => {
        const c = await condition(f, pool, 'Deleting');
        return (
          c?.status === 'True' && c.reason === 'InUse' && c.message?.includes(`default/${a}`) === true && c.message.includes(`default/${b}`)
        );
      },
      15_000,
    );
    // The Event is posted after the condition is written, so it may not be there yet.
    await waitFor(
      'a PoolInUse Event on the pool',
      async () => {
        const events = await f.core.listNamespacedEvent({
          namespace: 'default',
          fieldSelector: `involvedObject.name=${pool},involvedObject.kind=IpClaimPool`,
        });
        return events.items.some((e) => e.reason === 'PoolInUse' && e.message?.includes(`default/${a}`) === true);
      },
      15_000,
    );
    await f.waitEvent(a, 'PoolDeleting', new RegExp(`IpClaimPool ${pool} is being deleted; this Service keeps`));
    const late = await f.service('del-late', {}, { [POOL]: pool });
    await f.waitEvent(late, 'AllocationFailed', /PoolTerminating/);
    assert.equal([(await f.ingress(a))[0]?.ip, (await f.ingress(b))[0]?.ip], before, 'nothing released');
    assert.ok(await f.clients.pools.get(pool), 'still there, Terminating');
    // a lets go (moves to the other pool); b is released only when the user says so.
    await f.core.patchNamespacedService({
      name: a,
      namespace: f.namespace,
      body: [{ op: 'replace', path: `/metadata/annotations/${POOL.replace('/', '~1')}`, value: other }],
    });
    await waitFor(
      'a moved to the other pool',
      async () => (await f.ingress(a))[0]?.ip?.startsWith('203.0.113.2') === true && (await f.ingress(a))[0]?.ip !== before[0],
      15_000,
    );
    assert.ok(await f.clients.pools.get(pool), 'b still holds it');
    await f.clients.pools.patch(pool, { metadata: { annotations: { 'ipcontroller.ext/release-on-delete': 'true' } } });
    await waitFor(
      'the pool is gone and b released',
      async () => (await f.clients.pools.get(pool)) === null && (await f.ingress(b)).length === 0,
      15_000,
    );
    await f.waitEvent(b, 'IPReleased', /released/);
  }));

test.run();
