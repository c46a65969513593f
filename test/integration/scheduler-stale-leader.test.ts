// A scheduler leader that cannot know it lost its Lease (frozen by SIGSTOP, or cut off from
// the apiserver by a partition that later heals) must stop writing on its own clock before
// the standby takes over, and nothing it held back may land on live claims afterwards.
// The leader runs as a child process (so it can be frozen, and its API connection can be
// black-holed through a proxy); the standby runs in this process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { CoordinationV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';
import { waitFor } from '../controlplane/harness.js';
import { uniqueName } from '../support/cluster.js';
import { childScheduler, kubeconfigViaProxy, type ChildScheduler } from './cli-scheduler.js';
import { fixtureRunner, type Fixture } from './scheduler-fixtures.js';
import type { IpClaim } from '../../api/types.js';

const withFixture = fixtureRunner(test);

/** Records every claim deletion with the Services the claim named. */
async function watchDeletions(kc: KubeConfig): Promise<{ deleted: IpClaim[]; stop(): void }> {
  const deleted: IpClaim[] = [];
  const ctl = await new Watch(kc).watch(
    '/apis/ipcontroller.ext/v1/ipclaims',
    {},
    (type, obj) => {
      if (type === 'DELETED') deleted.push(obj as IpClaim);
    },
    () => undefined,
  );
  return { deleted, stop: () => ctl.abort() };
}

async function holder(f: Fixture, leaseName: string): Promise<string | undefined> {
  const lease = await f.kc
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ name: leaseName, namespace: 'default' })
    .catch(() => undefined);
  return lease?.spec?.holderIdentity ?? undefined;
}

/**
 * The common story: the child leads and serves some Services; `cut` isolates it (freeze or
 * partition); the in-process standby takes over and serves churn made meanwhile; `heal` brings
 * the child back. Then no claim of a live Service may be deleted and no address may change.
 */
async function staleLeaderStory(
  f: Fixture,
  kubeconfigFor: (path: string) => Promise<string>,
  cut: (c: ChildScheduler) => void,
  heal: (c: ChildScheduler) => void,
): Promise<void> {
  await f.node();
  await f.node();
  await f.pool('198.51.100.0/26');
  const leaseName = uniqueName('lease');
  const frozen = await childScheduler(await kubeconfigFor(f.cluster.kubeconfigPath), leaseName, 'stale-one');
  let passed = false;
  try {
    await waitFor(
      'the child scheduler leads',
      async () => (await holder(f, leaseName)) === 'stale-one' && (await frozen.leading().catch(() => false)),
      30_000,
      100,
    );
    const before = await Promise.all([1, 2, 3, 4].map(() => f.service('stale')));
    await waitFor(
      'first Services served',
      async () => (await Promise.all(before.map((s) => f.ingress(s)))).every((i) => i.length === 1),
      20_000,
      100,
    );
    const standby = await f.scheduler({ leaseName, identity: 'standby' });
    await standby.synced();
    const gone = before.slice(0, 2);
    const kept = before.slice(2);

    cut(frozen);
    const cutAt = Date.now();
    // The child must give up on its own clock before the standby can take over.
    let childStoppedAt = 0;
    await waitFor(
      'the cut-off leader stops leading (own clock)',
      async () => {
        const leading = await frozen.leading().catch(() => null);
        if (leading === false) childStoppedAt = Date.now();
        // A frozen process cannot answer: its leadership is read from its own clock later.
        return leading === false || leading === null;
      },
      15_000,
      50,
    );
    await waitFor('the standby leads', async () => standby.isLeader(), 20_000, 50);
    const standbyAt = Date.now();
    if (childStoppedAt)
      assert.ok(
        childStoppedAt <= standbyAt,
        `the old leader stopped ${childStoppedAt - cutAt} ms after the cut, the standby led after ${standbyAt - cutAt} ms`,
      );

    // Churn while the old leader is away: new Services, deleted Services.
    const during = await Promise.all([1, 2, 3, 4, 5, 6].map(() => f.service('stale')));
    for (const s of gone) await f.deleteService(s);
    const live = [...kept, ...during];
    await waitFor(
      'the standby served the churn',
      async () => (await Promise.all(live.map((s) => f.ingress(s)))).every((i) => i.length === 1),
      20_000,
      100,
    );
    const addresses = new Map<string, string>();
    for (const s of live) addresses.set(s, (await f.ingress(s))[0]?.ip ?? '');

    const deletions = await watchDeletions(f.kc);
    try {
      heal(frozen);
      // Long enough for the old leader to read every held event and act, if it were to.
      await waitFor('the old leader is a follower again', async () => (await frozen.leading().catch(() => true)) === false, 15_000, 100);
      await new Promise((r) => setTimeout(r, 4_000)); // an observation window, not a wait for a condition
      const liveKeys = new Set(live.map((s) => `default/${s}`));
      const wrong = deletions.deleted.filter((c) => (c.spec.services ?? []).some((k) => liveKeys.has(k)));
      assert.equal(
        wrong.map((c) => `${c.metadata.name} (${(c.spec.services ?? []).join(',')})`),
        [],
        `claims of live Services were deleted; see ${frozen.logFile}`,
      );
      for (const s of live) assert.is((await f.ingress(s))[0]?.ip, addresses.get(s), `${s} kept its address`);
      const log = readFileSync(frozen.logFile, 'utf8');
      assert.not.match(log, /"msg":"claim deleted"/, 'the old leader deleted no claim after it lost the Lease');
    } finally {
      deletions.stop();
    }
    passed = true;
  } finally {
    await frozen.stop(passed);
  }
}

test('a leader frozen (SIGSTOP) past its renew deadline writes nothing when it resumes', () =>
  withFixture((f) =>
    staleLeaderStory(
      f,
      async (path) => path,
      (c) => c.child.kill('SIGSTOP'),
      (c) => c.child.kill('SIGCONT'),
    ),
  ));

test('a leader cut off from the apiserver (black-holed, then healed) stops on its own clock; its held writes do not land on live claims', () => {
  let via: Awaited<ReturnType<typeof kubeconfigViaProxy>> | undefined;
  return withFixture(async (f) => {
    try {
      await staleLeaderStory(
        f,
        async (path) => (via = await kubeconfigViaProxy(path)).path,
        () => via?.proxy.hold(),
        () => via?.proxy.release(),
      );
    } finally {
      via?.close();
    }
  });
});

test.run();
