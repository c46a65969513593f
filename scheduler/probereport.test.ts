import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { probeReport, probeStateOf, probeVerdictChanged, reportDue, PROBE_REPORT_REFRESH_MS } from './probereport.js';

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
  assert.ok(probeVerdictChanged(undefined, ok, 3), 'first answer');
  assert.not.ok(probeVerdictChanged(ok, { ...ok, answeredAt: 1200 }, 3), 'one more answer: nothing new');
  const one = { consecutiveFailures: 1, draining: false };
  assert.ok(probeVerdictChanged(ok, one, 3), 'first failure: no longer answering (a stale-heartbeat node stops holding)');
  assert.not.ok(probeVerdictChanged(one, { consecutiveFailures: 2, draining: false }, 3));
  assert.ok(
    probeVerdictChanged({ consecutiveFailures: 2, draining: false }, { consecutiveFailures: 3, draining: false, failedAt: 5 }, 3),
    'failed',
  );
  assert.not.ok(probeVerdictChanged({ consecutiveFailures: 3, draining: false }, { consecutiveFailures: 4, draining: false }, 3));
  assert.ok(probeVerdictChanged({ consecutiveFailures: 4, draining: false }, ok, 3), 'back');
  assert.ok(probeVerdictChanged(ok, { ...ok, draining: true }, 3), 'draining');
});

test.run();
