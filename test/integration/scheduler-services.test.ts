// The scheduler against the real apiserver, as a user sees it: Services get IpClaims,
// LoadBalancer Services get a pool address in status.loadBalancer.ingress, Events say what
// happened, addresses are freed when no longer wanted, and bad input is explained.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../controlplane/harness.js';
import { fixtureRunner, metricValue } from './scheduler-fixtures.js';

const withFixture = fixtureRunner(test);

test('spec.externalIPs: one claim per address on a healthy node; shared by two Services; removed with the last', () =>
  withFixture(async (f) => {
    const agent = await f.node();
    await f.scheduler();
    const a = await f.service('ext-a', { type: 'ClusterIP', externalIPs: ['203.0.113.40'] });
    const b = await f.service('ext-b', { type: 'ClusterIP', externalIPs: ['203.0.113.40'] });
    await waitFor(
      'one claim listing both Services, on the node',
      async () => {
        const c = await f.clients.claims.get('203-0-113-40-32');
        return c?.spec.nodeName === agent.node && c.spec.services?.length === 2 && c.spec.pool === undefined;
      },
      15_000,
    );
    const claim = await f.clients.claims.get('203-0-113-40-32');
    assert.equal(claim?.spec.services, [`default/${a}`, `default/${b}`].sort());
    assert.is(claim?.spec.cidr, '203.0.113.40/32');
    // A node with no probe result yet may be chosen, so the first probe can land after placement.
    await waitFor('the agent was probed with the scheduler identity header', async () => agent.probedBy.size > 0, 15_000);
    await f.deleteService(a);
    await waitFor(
      'claim keeps only b',
      async () => (await f.clients.claims.get('203-0-113-40-32'))?.spec.services?.join() === `default/${b}`,
      15_000,
    );
    await f.deleteService(b);
    await waitFor('claim removed', async () => (await f.clients.claims.get('203-0-113-40-32')) === null, 15_000);
  }));

test('LoadBalancer Service: address allocated, written to status with ipMode VIP, Events, pool status; freed on delete', () =>
  withFixture(async (f) => {
    const agent = await f.node();
    const pool = await f.pool('198.51.100.0/29');
    const sched = await f.scheduler();
    const svc = await f.service('lb');
    await waitFor('ingress written', async () => (await f.ingress(svc)).length === 1, 15_000);
    const [ingress] = await f.ingress(svc);
    assert.is(ingress?.ip, '198.51.100.1');
    assert.is(ingress?.ipMode, 'VIP');
    const [claim] = await f.claimsOf(svc);
    assert.is(claim?.metadata.name, '198-51-100-1-32');
    assert.is(claim?.spec.pool, pool);
    assert.is(claim?.spec.nodeName, agent.node);
    const poolNow = await f.clients.pools.get(pool);
    assert.equal(poolNow?.status?.allocations, { '198.51.100.1': '198-51-100-1-32' });
    assert.is(poolNow?.status?.used, 1);
    assert.is(poolNow?.status?.free, 5);
    await f.waitEvent(svc, 'IPAllocated', /198\.51\.100\.1 from IpClaimPool/);
    await f.waitEvent(svc, 'IPAssigned', new RegExp(`assigned to node ${agent.node}`));
    assert.is(await metricValue(sched, 'ipcontroller_scheduler_allocations_total', { pool }), 1);
    assert.is(await metricValue(sched, 'ipcontroller_scheduler_pool_addresses_in_use', { pool }), 1);
    assert.is(await metricValue(sched, 'ipcontroller_scheduler_pool_addresses', { pool }), 6);

    await f.deleteService(svc);
    await waitFor(
      'claim deleted and allocation freed',
      async () => {
        const p = await f.clients.pools.get(pool);
        return (
          (await f.clients.claims.get('198-51-100-1-32')) === null &&
          Object.keys(p?.status?.allocations ?? {}).length === 0 &&
          p?.status?.used === 0
        );
      },
      15_000,
    );
  }));

test('type change away from LoadBalancer frees the address and clears the status', () =>
  withFixture(async (f) => {
    await f.node();
    await f.pool('198.51.100.16/29');
    await f.scheduler();
    const svc = await f.service('retype');
    await waitFor('ingress written', async () => (await f.ingress(svc)).length === 1, 15_000);
    const ip = (await f.ingress(svc))[0]?.ip;
    await f.core.patchNamespacedService({
      name: svc,
      namespace: f.namespace,
      body: [{ op: 'replace', path: '/spec/type', value: 'ClusterIP' }],
    });
    await waitFor('claim removed', async () => (await f.claimsOf(svc)).length === 0, 15_000);
    await f.waitEvent(svc, 'IPReleased', new RegExp(`${ip?.replace(/\./g, '\\.')} released`));
    await waitFor('ingress cleared', async () => (await f.ingress(svc)).length === 0, 15_000);
  }));

test('annotation external-ip: auto gives a ClusterIP Service a pool address in spec.externalIPs; losing it frees the address', () =>
  withFixture(async (f) => {
    await f.node();
    const pool = await f.pool('198.51.100.48/29');
    await f.scheduler();
    const svc = await f.service('auto', { type: 'ClusterIP', externalIPs: ['203.0.113.41'] }, { 'external-ip': 'auto' });
    // The apiserver refuses status.loadBalancer.ingress on a ClusterIP Service; spec.externalIPs is what kube-proxy routes.
    await waitFor('address added to spec.externalIPs', async () => (await f.readService(svc)).spec?.externalIPs?.length === 2, 15_000);
    assert.equal((await f.readService(svc)).spec?.externalIPs, ['203.0.113.41', '198.51.100.49']);
    const claims = await f.claimsOf(svc);
    assert.equal(claims.map((c) => [c.spec.cidr, c.spec.pool ?? '']).sort(), [
      ['198.51.100.49/32', pool],
      ['203.0.113.41/32', ''],
    ]);
    await f.waitEvent(svc, 'IPAllocated', /198\.51\.100\.49/);
    await f.core.patchNamespacedService({
      name: svc,
      namespace: f.namespace,
      body: [{ op: 'remove', path: '/metadata/annotations/external-ip' }],
    });
    await waitFor(
      'pool address out of the spec and the pool; the user address kept',
      async () => {
        const spec = (await f.readService(svc)).spec?.externalIPs ?? [];
        const used = (await f.clients.pools.get(pool))?.status?.used;
        return spec.join() === '203.0.113.41' && used === 0 && (await f.claimsOf(svc)).length === 1;
      },
      15_000,
    );
  }));

test('externalTrafficPolicy: Local puts the address on a node with a serving endpoint, or says why not', () =>
  withFixture(async (f) => {
    const a = await f.node('etp');
    const b = await f.node('etp');
    await f.pool('198.51.100.56/29');
    await f.scheduler();
    const svc = await f.service('local', { externalTrafficPolicy: 'Local' });
    await f.waitEvent(svc, 'NoServingEndpoint', /no healthy agent node has a serving endpoint/);
    const target = [a.node, b.node].sort()[1] as string; // the node fair placement would not pick first by name
    const { DiscoveryV1Api } = await import('@kubernetes/client-node');
    const discovery = f.kc.makeApiClient(DiscoveryV1Api);
    const sliceName = `${svc}-x`;
    await discovery.createNamespacedEndpointSlice({
      namespace: f.namespace,
      body: {
        metadata: { name: sliceName, labels: { 'kubernetes.io/service-name': svc } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.1.0.5'], nodeName: target, conditions: { ready: true, serving: true } }],
        ports: [{ port: 80, protocol: 'TCP' }],
      },
    });
    try {
      await waitFor('claim on the endpoint node', async () => (await f.claimsOf(svc))[0]?.spec.nodeName === target, 15_000);
      await waitFor('ingress written', async () => (await f.ingress(svc)).length === 1, 15_000);
    } finally {
      await discovery.deleteNamespacedEndpointSlice({ name: sliceName, namespace: f.namespace }).catch(() => undefined);
    }
  }));

test('bad input is explained and breaks nothing else', () =>
  withFixture(async (f) => {
    await f.node();
    const good = await f.pool('192.0.2.128/29', undefined, 'zz-good');
    // The CRD schema lets a backwards range through (both ends are IPs); the scheduler refuses it.
    const broken = await f.pool('198.51.100.32/29', [['198.51.100.38', '198.51.100.33']], 'broken');
    await f.scheduler();
    const toBroken = await f.service('to-broken', {}, { 'ipcontroller.ext/pool': broken });
    const missing = await f.service('missing-pool', {}, { 'ipcontroller.ext/pool': 'no-such-pool' });
    const outside = await f.service('outside', {}, { 'ipcontroller.ext/loadBalancerIPs': '203.0.113.250' });
    const garbage = await f.service('garbage', {}, { 'ipcontroller.ext/loadBalancerIPs': 'two hundred' });
    const fine = await f.service('fine', {}, { 'ipcontroller.ext/pool': good });
    await f.waitEvent(toBroken, 'AllocationFailed', new RegExp(`PoolInvalid: IpClaimPool ${broken} .*ends before it starts`));
    await f.waitEvent(missing, 'AllocationFailed', /PoolNotFound: IpClaimPool no-such-pool named in ipcontroller.ext\/pool does not exist/);
    await f.waitEvent(outside, 'AllocationFailed', /AddressOutsidePool: requested address 203\.0\.113\.250 is not in any IpClaimPool/);
    await f.waitEvent(garbage, 'AllocationFailed', /InvalidRequest: .*"two hundred" is not an IP address/);
    await waitFor('the good Service still gets its address', async () => (await f.ingress(fine))[0]?.ip === '192.0.2.129', 15_000);
    await waitFor(
      'the broken pool says why',
      async () => {
        const list = await f.cluster.kubectl([
          'get',
          'ipclaimpool',
          broken,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Valid")].message}',
        ]);
        return /ends before it starts/.test(list.stdout);
      },
      15_000,
    );
    for (const s of [toBroken, missing, outside, garbage]) assert.equal(await f.ingress(s), [], `${s} stays pending`);
  }));

test('restart: a new scheduler keeps every address; nothing leaked or allocated again', () =>
  withFixture(async (f) => {
    await f.node();
    const pool = await f.pool('192.0.2.64/28');
    const first = await f.scheduler();
    const services = await Promise.all([1, 2, 3, 4].map(() => f.service('restart')));
    await waitFor(
      'all four have addresses',
      async () => (await Promise.all(services.map((s) => f.ingress(s)))).every((i) => i.length === 1),
      20_000,
    );
    const before = await Promise.all(services.map(async (s) => (await f.ingress(s))[0]?.ip));
    await first.stop();
    // While no scheduler runs: one Service goes away, one comes.
    await f.deleteService(services[0] as string);
    const late = await f.service('late');
    const second = await f.scheduler();
    await waitFor('the new Service has an address', async () => (await f.ingress(late)).length === 1, 20_000);
    await waitFor(
      'the deleted Service freed its address',
      async () => Object.keys((await f.clients.pools.get(pool))?.status?.allocations ?? {}).length === 4,
      15_000,
    );
    const after = await Promise.all(services.slice(1).map(async (s) => (await f.ingress(s))[0]?.ip));
    assert.equal(after, before.slice(1), 'the surviving Services kept their addresses');
    const lateIp = (await f.ingress(late))[0]?.ip;
    assert.ok(lateIp && !after.includes(lateIp), `the new address ${lateIp} is not a double allocation`);
    const p = await f.clients.pools.get(pool);
    assert.is(p?.status?.used, 4);
    // Counted when the pass that wrote the ingress ends, which can be after this test read the ingress.
    await waitFor(
      'the allocation counted',
      async () => (await metricValue(second, 'ipcontroller_scheduler_allocations_total')) >= 1,
      10_000,
      50,
    );
    assert.is(await metricValue(second, 'ipcontroller_scheduler_allocations_total'), 1, 'only the new Service was allocated');
    const claims = (await f.clients.claims.list()).items.filter((c) => c.spec.pool === pool);
    assert.is(claims.length, 4, 'one claim per address in use, no leftovers');
  }));

test.run();
