import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProbeState } from './health.js';
import {
  ProbeReporter,
  probeReport,
  REPORT_WRITES_IN_FLIGHT,
  probeStateOf,
  probeVerdictChanged,
  reportDue,
  PROBE_REPORT_REFRESH_MS,
} from './probereport.js';

const cfg = { monitorMs: 4000, probeFailures: 3 };

test('a report is written when the verdict changes or it is old, never per probe', () => {
  const ok = probeReport({ consecutiveFailures: 0, draining: false }, 0.4, 1000, { identity: 's1', cfg });
  assert.ok(reportDue(undefined, ok, 1000));
  const prev = { report: ok, at: 1000 };
  assert.not.ok(
    reportDue(prev, probeReport({ consecutiveFailures: 0, draining: false }, 0.5, 1200, { identity: 's1', cfg }), 1200),
    'RTT changed: not worth a write',
  );
  assert.not.ok(
    reportDue(prev, probeReport({ consecutiveFailures: 2, draining: false }, 0.5, 1400, { identity: 's1', cfg }), 1400),
    'below the threshold',
  );
  assert.ok(
    reportDue(prev, probeReport({ consecutiveFailures: 3, draining: false, failedAt: 1600 }, 0.5, 1600, { identity: 's1', cfg }), 1600),
    'failed',
  );
  assert.ok(reportDue(prev, probeReport({ consecutiveFailures: 0, draining: true }, 0.5, 1600, { identity: 's1', cfg }), 1600), 'draining');
  assert.ok(
    reportDue(prev, probeReport({ consecutiveFailures: 0, draining: false }, 0.5, 1600, { identity: 's2', cfg }), 1600),
    'new leader',
  );
  assert.ok(reportDue(prev, ok, 1000 + PROBE_REPORT_REFRESH_MS), 'refresh');
});

test('the report stands for the probe state health.ts decides with', () => {
  const state = { consecutiveFailures: 4, draining: false, failedAt: 1_700_000_000_000, lastError: 'timeout' };
  const report = probeReport(state, undefined, 1_700_000_000_500, { identity: 's1', cfg });
  assert.equal(probeStateOf(report), state);
  assert.is(report.failureThreshold, 3);
  assert.is(report.monitorMs, 4000);
});

test('only a probe that changes the verdict makes the scheduler look at every node again', () => {
  const ok = { consecutiveFailures: 0, draining: false, answeredAt: 1000 };
  assert.ok(probeVerdictChanged(undefined, ok, cfg), 'first answer');
  assert.not.ok(probeVerdictChanged(ok, { ...ok, answeredAt: 1200 }, cfg), 'one more answer: nothing new');
  const one = { consecutiveFailures: 1, draining: false };
  assert.ok(probeVerdictChanged(ok, one, cfg), 'first failure: no longer answering (a stale-heartbeat node stops holding)');
  assert.not.ok(probeVerdictChanged(one, { consecutiveFailures: 2, draining: false }, cfg));
  assert.ok(
    probeVerdictChanged({ consecutiveFailures: 2, draining: false }, { consecutiveFailures: 3, draining: false, failedAt: 5 }, cfg),
    'failed',
  );
  assert.not.ok(probeVerdictChanged({ consecutiveFailures: 3, draining: false }, { consecutiveFailures: 4, draining: false }, cfg));
  assert.ok(probeVerdictChanged({ consecutiveFailures: 4, draining: false }, ok, cfg), 'back');
  assert.ok(probeVerdictChanged(ok, { ...ok, draining: true }, cfg), 'draining');
});

/** Failures 100 ms apart, except where `gaps` says (ms since the result before); the first after an answer at 0. */
function failing(gaps: number[]): ProbeState {
  let at = 1_000;
  const run = gaps.map((gapMs) => ({ at: (at += gapMs), gapMs }));
  return { consecutiveFailures: run.length, draining: false, answeredAt: 1_000, lastResultAt: at, lastError: 'timeout', run };
}

const timed = { ...cfg, probeIntervalMs: 100, probeTimeoutMs: 80 }; // stall limit 230 ms

test('the report counts failures as health.ts does: one seen after a stall of the scheduler starts the count again', () => {
  const stalled = failing([100, 100, 900]);
  const report = probeReport(stalled, 0.5, 3_000, { identity: 's1', cfg: timed });
  assert.is(report.consecutiveFailures, 0, 'the third came 900 ms after the second: the scheduler did not run');
  assert.is(report.failedAt, undefined);
  const failed = failing([100, 100, 100]);
  const real = probeReport(failed, 0.5, 3_000, { identity: 's1', cfg: timed });
  assert.is(real.consecutiveFailures, 3);
  assert.is(real.failedAt, new Date(1_300).toISOString(), 'failed when the third counted failure came in');
  const prev = { report: probeReport(failing([100, 100]), 0.5, 1_200, { identity: 's1', cfg: timed }), at: 1_200 };
  assert.not.ok(reportDue(prev, report, 3_000), 'a stall is not written as a failed node');
  assert.ok(reportDue(prev, real, 3_000));
});

test('a verdict that moves only by the stall rule still makes the scheduler look again', () => {
  const gaps = [100, 100, 900];
  assert.not.ok(probeVerdictChanged(failing([100, 100]), failing(gaps), timed), 'raw 3, counted 0: not failed, nothing new');
  assert.not.ok(probeVerdictChanged(failing([...gaps, 100]), failing([...gaps, 100, 100]), timed), 'counted 1 -> 2');
  assert.ok(
    probeVerdictChanged(failing([...gaps, 100, 100]), failing([...gaps, 100, 100, 100]), timed),
    'raw 5 -> 6 (both past the threshold) but counted 2 -> 3: failed now',
  );
  assert.ok(probeVerdictChanged(failing([100, 100]), failing([100, 100, 100]), timed), 'no stall: failed at the third');
});

test('the reporter counts by the rules it was last told (a stretched interval), not only the configured ones', async () => {
  const written: number[] = [];
  const reporter = new ProbeReporter({
    write: (_node, report) => {
      written.push(report.consecutiveFailures);
      return Promise.resolve();
    },
    isLeader: () => true,
    log: { debug: () => undefined } as unknown as ConstructorParameters<typeof ProbeReporter>[0]['log'],
    identity: 's1',
    cfg: timed,
  });
  const slow = failing([400, 400, 400]); // a 400 ms interval: stalls by the configured 100 ms rules
  reporter.observe('n', slow, null, 3_000);
  await new Promise((r) => setImmediate(r));
  reporter.useRules({ ...timed, probeIntervalMs: 400 });
  reporter.observe('n', slow, null, 3_001);
  await new Promise((r) => setImmediate(r));
  assert.equal(written, [0, 3]);
});

test('a new leader writes its first reports a few at a time, the rest with their next probes', async () => {
  const pending: Array<() => void> = [];
  const written: string[] = [];
  const reporter = new ProbeReporter({
    write: (node) =>
      new Promise<void>((resolve) =>
        pending.push(() => {
          written.push(node);
          resolve();
        }),
      ),
    isLeader: () => true,
    log: { debug: () => undefined } as unknown as ConstructorParameters<typeof ProbeReporter>[0]['log'],
    identity: 's1',
    cfg,
  });
  const ok = { consecutiveFailures: 0, draining: false, answeredAt: 1_000 };
  const nodes = Array.from({ length: 100 }, (_, i) => `n${i}`);
  for (const n of nodes) reporter.observe(n, ok, 0.3, 1_000);
  assert.is(pending.length, REPORT_WRITES_IN_FLIGHT, 'not 100 writes at once');
  for (let round = 0; round < 20 && written.length < nodes.length; round++) {
    for (const done of pending.splice(0)) done();
    await new Promise((r) => setImmediate(r));
    for (const n of nodes) reporter.observe(n, ok, 0.3, 1_100 + round); // the next probes
    assert.ok(pending.length <= REPORT_WRITES_IN_FLIGHT);
  }
  assert.is(new Set(written).size, nodes.length, 'every node reported in the end, once');
  assert.is(written.length, nodes.length);
});

test("a leader's first report that caught a miss is written again once the node answers, not 5 minutes later", async () => {
  const written: Array<{ failures: number; rttMs: number | undefined }> = [];
  const reporter = new ProbeReporter({
    write: (_node, report) => {
      written.push({ failures: report.consecutiveFailures, rttMs: report.rttMs });
      return Promise.resolve();
    },
    isLeader: () => true,
    log: { debug: () => undefined } as unknown as ConstructorParameters<typeof ProbeReporter>[0]['log'],
    identity: 's1',
    cfg,
  });
  const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
  reporter.observe('n', { consecutiveFailures: 1, draining: false, lastError: 'timeout' }, null, 1_000); // the first probe timed out
  await settle();
  reporter.observe('n', { consecutiveFailures: 0, draining: false, answeredAt: 1_200 }, 0.4, 1_200);
  await settle();
  reporter.observe('n', { consecutiveFailures: 0, draining: false, answeredAt: 1_400 }, 0.5, 1_400);
  await settle();
  assert.equal(written, [
    { failures: 1, rttMs: undefined },
    { failures: 0, rttMs: 0.4 },
  ]);
  assert.ok(
    reportDue(
      { report: probeReport({ consecutiveFailures: 0, draining: false }, undefined, 1_000, { identity: 's1', cfg }), at: 1_000 },
      probeReport({ consecutiveFailures: 0, draining: false }, 0.3, 1_200, { identity: 's1', cfg }),
      1_200,
    ),
    'the first RTT is worth a write',
  );
});

test.run();
