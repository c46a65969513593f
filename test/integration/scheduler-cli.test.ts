// The scheduler as the image runs it (`ipcontroller scheduler`, its own process) honours the
// flags a user sets on the command line, where the in-process tests cannot see it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../controlplane/harness.js';
import { uniqueName } from '../support/cluster.js';
import { childScheduler, kubeconfigViaProxy } from './cli-scheduler.js';
import { fixtureRunner } from './scheduler-fixtures.js';

const withFixture = fixtureRunner(test);

test('--writes-in-flight 48: a cold start has 48 writes open at once (the connection pool no longer caps it at 32)', () =>
  withFixture(async (f) => {
    await f.node();
    await f.pool('203.0.113.0/25');
    const services: string[] = [];
    for (let i = 0; i < 10; i++) services.push(...(await Promise.all(Array.from({ length: 10 }, () => f.service('inflight')))));
    const via = await kubeconfigViaProxy(f.cluster.kubeconfigPath);
    const cli = await childScheduler(via.path, uniqueName('lease'), 'inflight', ['--writes-in-flight', '48']);
    let passed = false;
    try {
      await waitFor(
        'every Service has its address',
        async () => (await Promise.all(services.map((s) => f.ingress(s)))).every((i) => i.length === 1),
        60_000,
        200,
      );
      // Its first pass starts 48 claim creates in one turn, each on its own connection; the
      // watches (6) and the Lease add theirs. A pool of 32 held it at 32 + 7 at most.
      assert.ok(via.proxy.peak >= 48, `at most ${via.proxy.peak} connections to the apiserver at once; see ${cli.logFile}`);
      passed = true;
    } finally {
      await cli.stop(passed);
      via.close();
    }
  }));

test.run();
