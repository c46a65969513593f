// Two schedulers against the real apiserver, electing a leader through a coordination.k8s.io
// Lease: only the leader writes; when it dies the standby takes over within the lease
// duration and converges from the API without allocating anything twice.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { waitFor } from '../controlplane/harness.js';
import { uniqueName } from '../support/cluster.js';
import { fixtureRunner, metricValue } from './scheduler-fixtures.js';

const withFixture = fixtureRunner(test);

const passes = (h: Parameters<typeof metricValue>[0]): Promise<number> =>
  metricValue(h, 'ipcontroller_scheduler_reconcile_duration_seconds_count');

test('two schedulers: one leader, only it writes; killing it hands over within the lease', () =>
  withFixture(async (f) => {
    await f.node();
    const pool = await f.pool('192.0.2.160/28');
    const leaseName = uniqueName('lease');
    const one = await f.scheduler({ leaseName, identity: 'one' });
    const two = await f.scheduler({ leaseName, identity: 'two' });
    await waitFor('exactly one leader', async () => [one, two].filter((s) => s.isLeader()).length === 1, 10_000);
    const leader = one.isLeader() ? one : two;
    const standby = leader === one ? two : one;
    const lease = await f.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: leaseName, namespace: f.namespace });
    assert.is(lease.spec?.holderIdentity, leader.identity);
    assert.is(await metricValue(leader, 'ipcontroller_scheduler_leader'), 1);
    assert.is(await metricValue(standby, 'ipcontroller_scheduler_leader'), 0);

    const first = await f.service('le');
    await waitFor('first Service served', async () => (await f.ingress(first)).length === 1, 15_000);
    // A pass is counted when it ends, which can be after its ingress write was seen.
    await waitFor('a pass counted by the leader', async () => (await passes(leader)) > 0, 10_000, 50);
    assert.is(await passes(standby), 0, 'the standby never reconciled, so never wrote');
    assert.is(await metricValue(standby, 'ipcontroller_scheduler_allocations_total'), 0);

    // Kill the leader without giving up the Lease, as a crash would.
    const killed = Date.now();
    await leader.stop({ releaseLease: false });
    const second = await f.service('le');
    await waitFor('the standby leads', async () => standby.isLeader(), 10_000, 50);
    const tookOver = (Date.now() - killed) / 1000;
    assert.ok(tookOver < 6, `took over after ${tookOver}s (lease 4s)`);
    await waitFor('second Service served by the new leader', async () => (await f.ingress(second)).length === 1, 15_000);
    assert.not.equal((await f.ingress(second))[0]?.ip, (await f.ingress(first))[0]?.ip);
    // Counted when the pass that wrote the ingress ends, which can be after this test read the ingress.
    await waitFor(
      'the allocation counted',
      async () => (await metricValue(standby, 'ipcontroller_scheduler_allocations_total')) >= 1,
      10_000,
      50,
    );
    assert.is(await metricValue(standby, 'ipcontroller_scheduler_allocations_total'), 1, 'only the new Service was allocated');
    const p = await f.clients.pools.get(pool);
    assert.is(p?.status?.used, 2);
    assert.ok((await metricValue(standby, 'ipcontroller_scheduler_leader_transitions_total')) >= 1);
  }));

test('a leader that stops cleanly hands over at once', () =>
  withFixture(async (f) => {
    const leaseName = uniqueName('lease');
    const one = await f.scheduler({ leaseName, identity: 'one' });
    await waitFor('one leads', async () => one.isLeader(), 10_000);
    const two = await f.scheduler({ leaseName, identity: 'two' });
    await two.synced();
    assert.not.ok(two.isLeader());
    const stopped = Date.now();
    await one.stop();
    await waitFor('two leads', async () => two.isLeader(), 5_000, 50);
    assert.ok(Date.now() - stopped < 1500, `handover took ${Date.now() - stopped}ms`);
  }));

test.run();
