// Issue 12 against the real apiserver: a pool overlapping a Node's own address never hands it
// out (the rest of the pool works), and an address an agent found answered by a foreign host
// is given up for the next free one, stays pending when requested, is listed in the pool's
// status with when it was seen, and is offered again after --conflict-retry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../controlplane/harness.js';
import { fixtureRunner } from './scheduler-fixtures.js';

const withFixture = fixtureRunner(test);

test('a pool overlapping a Node InternalIP: those addresses are never handed out, the rest of the pool works', () =>
  withFixture(async (f) => {
    const agent = await f.node();
    await f.core.patchNodeStatus({
      name: agent.node,
      body: [
        {
          op: 'add',
          path: '/status/addresses',
          value: [
            { type: 'InternalIP', address: '198.51.100.65' },
            { type: 'Hostname', address: agent.node },
          ],
        },
      ],
    });
    const pool = await f.pool('198.51.100.64/29');
    await f.scheduler({ resyncMs: 1000 });
    const first = await f.service('node-ip-a');
    const second = await f.service('node-ip-b');
    await waitFor(
      'both Services have an address',
      async () => (await f.ingress(first)).length === 1 && (await f.ingress(second)).length === 1,
      15_000,
    );
    const got = [(await f.ingress(first))[0]?.ip, (await f.ingress(second))[0]?.ip].sort();
    assert.equal(got, ['198.51.100.66', '198.51.100.67'], 'the node address 198.51.100.65 is skipped');
    await waitFor(
      'pool status lists the excluded address',
      async () => (await f.clients.pools.get(pool))?.status?.excluded?.length === 1,
      15_000,
    );
    const status = (await f.clients.pools.get(pool))?.status;
    assert.equal(status?.excluded, [{ address: '198.51.100.65', reason: 'NodeAddress', message: `InternalIP of Node ${agent.node}` }]);
    const condition = status?.conditions?.find((c) => c.type === 'AddressesExcluded');
    assert.is(condition?.status, 'True');
    assert.match(condition?.message ?? '', '198.51.100.65 (NodeAddress');
    assert.is(status?.free, 3, '6 addresses less 2 used and 1 excluded');

    const requested = await f.service('node-ip-req', {}, { 'ipcontroller.ext/loadBalancerIPs': '198.51.100.65' });
    await f.waitEvent(
      requested,
      'AllocationFailed',
      new RegExp(`NodeAddress: requested address 198\\.51\\.100\\.65 cannot be used: InternalIP of Node ${agent.node}`),
    );
    assert.equal(await f.ingress(requested), []);
    assert.is(await f.clients.claims.get('198-51-100-65-32'), null);
  }));

test('an address a foreign host answered for: the Service gets the next one with an Event, a request stays pending, the pool lists it, and it is retried', () =>
  withFixture(async (f) => {
    const agent = await f.node();
    const pool = await f.pool('198.51.100.72/29');
    await f.scheduler({ resyncMs: 500, conflictRetryMs: 6_000 });
    const svc = await f.service('conflict');
    await waitFor('ingress written', async () => (await f.ingress(svc)).length === 1, 15_000);
    assert.is((await f.ingress(svc))[0]?.ip, '198.51.100.73');
    // The agent's probe is answered by a MAC that is not one of ours: it reports the claim
    // Failed / AddressConflict (the fake agent writes it as the real one does, agent/status.ts).
    const mac = '02:00:5e:00:53:99';
    const before = Date.now();
    agent.conflicts.set('198-51-100-73-32', `198.51.100.73 is answered by ${mac}, a host that is not ours`);
    await waitFor('the Service moves to the next address', async () => (await f.ingress(svc))[0]?.ip === '198.51.100.74', 15_000);
    await f.waitEvent(svc, 'AddressConflict', new RegExp(`198\\.51\\.100\\.73 is given up: .*${mac}.*allocating another address`));
    await f.waitEvent(svc, 'IPAllocated', /198\.51\.100\.74/);
    const excluded = (await f.clients.pools.get(pool))?.status?.excluded;
    assert.is(excluded?.length, 1);
    assert.is(excluded?.[0]?.address, '198.51.100.73');
    assert.is(excluded?.[0]?.reason, 'AddressConflict');
    const seenAt = Date.parse(excluded?.[0]?.seenAt ?? '');
    assert.ok(seenAt >= before - 1000 && seenAt <= Date.now(), `seenAt ${excluded?.[0]?.seenAt} is when the agent reported it`);
    assert.match(excluded?.[0]?.message ?? '', mac);

    const requested = await f.service('conflict-req', {}, { 'ipcontroller.ext/loadBalancerIPs': '198.51.100.73' });
    await f.waitEvent(requested, 'AllocationFailed', /AddressConflict: requested address 198\.51\.100\.73 cannot be used/);
    assert.equal(await f.ingress(requested), []);
    agent.conflicts.clear(); // the other host went away: the next probe finds the address free
    await waitFor(
      'after --conflict-retry the requested address is allocated again',
      async () => (await f.ingress(requested))[0]?.ip === '198.51.100.73',
      20_000,
    );
    await waitFor('and the pool no longer lists it', async () => (await f.clients.pools.get(pool))?.status?.excluded === undefined, 15_000);
  }));

test.run();
