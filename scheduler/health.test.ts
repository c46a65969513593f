import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Condition, IpNode } from '../api/types.js';
import { countedFailures, nextProbeState, nodeHealth, type NodeObservation, type ProbeResult, type ProbeState } from './health.js';

const cfg = { monitorMs: 4000, probeFailures: 3 };
const T0 = Date.UTC(2026, 0, 1);

function cond(type: string, status: Condition['status']): Condition {
  return { type, status, reason: type, message: '', lastTransitionTime: new Date(T0).toISOString() };
}

function ipNode(beatAt: number, conditions: Condition[] = [cond('Ready', 'True')]): IpNode {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpNode',
    metadata: { name: 'n1' },
    spec: { probeAddress: '127.0.0.1', probePort: 1 },
    status: { renewTime: new Date(beatAt).toISOString(), conditions },
  };
}

function obs(over: Partial<NodeObservation> = {}): NodeObservation {
  return { name: 'n1', nodeLabels: { ipcontroller: '' }, ipNode: ipNode(T0), ...over };
}

test('a labelled node with a fresh heartbeat, Ready and passing probes is a candidate', () => {
  assert.equal(nodeHealth(obs(), T0 + 1000, cfg), { candidate: true });
  assert.equal(
    nodeHealth(obs({ probe: { consecutiveFailures: 2, draining: false } }), T0 + 1000, cfg),
    { candidate: true },
    'two failures are not enough',
  );
});

test('each reason a node is not a candidate', () => {
  const reasonOf = (o: NodeObservation, now = T0 + 1000): string => {
    const h = nodeHealth(o, now, cfg);
    return h.candidate ? 'candidate' : h.reason;
  };
  assert.is(reasonOf(obs({ nodeLabels: undefined })), 'not-agent');
  assert.is(reasonOf(obs({ nodeLabels: { other: 'x' } })), 'not-agent');
  assert.is(reasonOf(obs({ nodeLabels: { ipcontroller: '', 'node.kubernetes.io/exclude-from-external-load-balancers': '' } })), 'excluded');
  assert.is(reasonOf(obs({ ipNode: undefined })), 'no-ipnode');
  assert.is(reasonOf(obs(), T0 + 4000), 'heartbeat');
  assert.is(reasonOf(obs({ ipNode: ipNode(T0, []) })), 'not-ready');
  assert.is(reasonOf(obs({ ipNode: ipNode(T0, [cond('Ready', 'False')]) })), 'not-ready');
  assert.is(reasonOf(obs({ ipNode: ipNode(T0, [cond('Ready', 'True'), cond('Draining', 'True')]) })), 'draining');
  assert.is(reasonOf(obs({ probe: { consecutiveFailures: 0, draining: true } })), 'draining');
  assert.is(reasonOf(obs({ probe: { consecutiveFailures: 3, draining: false } })), 'probe');
});

test('draining wins over every timer: a draining node fails at once even with a fresh heartbeat', () => {
  const h = nodeHealth(obs({ probe: { consecutiveFailures: 0, draining: true } }), T0 + 1, cfg);
  assert.equal(h.candidate ? null : h.reason, 'draining');
});

test('a stale heartbeat reports when it went stale', () => {
  const h = nodeHealth(obs(), T0 + 9000, cfg);
  assert.not.ok(h.candidate);
  if (!h.candidate) {
    assert.is(h.since, T0 + 4000);
    assert.match(h.message, /9.0s old/);
  }
});

test('a stale heartbeat while every probe is answered (the agent cannot reach the API): not a candidate, but it holds its claims', () => {
  const answering = { consecutiveFailures: 0, draining: false, answeredAt: T0 + 8900 };
  const h = nodeHealth(obs({ probe: answering }), T0 + 9000, cfg);
  assert.ok(!h.candidate && h.reason === 'heartbeat' && h.holds === true, JSON.stringify(h));
  // Probes failing too, never answered, or answered long ago (the prober stopped reporting):
  // an ordinary failure, its claims move.
  for (const probe of [
    { consecutiveFailures: 1, draining: false },
    { consecutiveFailures: 0, draining: false },
    { consecutiveFailures: 0, draining: false, answeredAt: T0 + 5000 },
    undefined,
  ]) {
    const f = nodeHealth(obs(probe ? { probe } : {}), T0 + 9000, cfg);
    assert.ok(!f.candidate && f.holds === undefined, JSON.stringify({ probe, f }));
  }
  // A missing heartbeat (no agent ever registered one) never holds.
  const never = nodeHealth(obs({ ipNode: { ...ipNode(T0), status: {} }, probe: answering }), T0 + 9000, cfg);
  assert.ok(!never.candidate && never.holds === undefined);
});

test('probe state: failures count up, the third marks the failure time, a success resets', () => {
  let s: ProbeState | undefined;
  s = nextProbeState(s, { ok: false, error: 'ECONNREFUSED' }, 100, 3);
  s = nextProbeState(s, { ok: false, error: 'ECONNREFUSED' }, 300, 3);
  assert.is(s.failedAt, undefined);
  s = nextProbeState(s, { ok: false, error: 'ECONNREFUSED' }, 500, 3);
  assert.is(s.consecutiveFailures, 3);
  assert.is(s.failedAt, 500);
  s = nextProbeState(s, { ok: false, error: 'timeout' }, 700, 3);
  assert.is(s.failedAt, 500, 'the failure time stays at the moment it crossed the threshold');
  const h = nodeHealth(obs({ probe: s }), 800, { ...cfg, monitorMs: 1e12 });
  assert.not.ok(h.candidate);
  if (!h.candidate) assert.is(h.since, 500);
  s = nextProbeState(s, { ok: true, draining: false, rttMs: 1 }, 900, 3);
  assert.equal(s, { consecutiveFailures: 0, draining: false, answeredAt: 900, lastResultAt: 900 });
});

const fail: ProbeResult = { ok: false, error: 'timeout after 100ms' };
const answer: ProbeResult = { ok: true, draining: false, rttMs: 1 };
/** The shipped cadence: a probe every 100 ms, each given up after 100 ms, 3 failures. */
const cadence = { monitorMs: 1e12, probeFailures: 3, probeIntervalMs: 100, probeTimeoutMs: 100 };

/** Feeds results at the given times (ms) and returns the state. */
function feed(steps: Array<[number, ProbeResult]>): ProbeState {
  let s: ProbeState | undefined;
  for (const [at, r] of steps) s = nextProbeState(s, r, at, cadence.probeFailures);
  if (!s) throw new Error('no steps');
  return s;
}

test('a node that falls silent fails at the third failure, since the time that failure came in', () => {
  // Answers every 100 ms; from 1000 on each probe times out 100 ms after it was sent.
  const s = feed([
    [801, answer],
    [901, answer],
    [1100, fail],
    [1200, fail],
    [1300, fail],
  ]);
  const h = nodeHealth(obs({ probe: s }), 1300, cadence);
  assert.ok(!h.candidate && h.reason === 'probe' && h.since === 1300, JSON.stringify(h));
  assert.equal(countedFailures(s, cadence), { count: 3, reachedAt: 1300 });
  assert.ok(
    nodeHealth(
      obs({
        probe: feed([
          [901, answer],
          [1100, fail],
          [1200, fail],
        ]),
      }),
      1250,
      cadence,
    ).candidate,
    'two are not enough',
  );
});

test('a stall of the scheduler itself (its timers fired late) does not count against the node', () => {
  // The scheduler did not run from 1000 to 1600: the probe sent at 1000 "times out" when it
  // resumes, though the answer may be waiting unread; the count starts again after it.
  const stalled = feed([
    [901, answer],
    [1100, fail],
    [1200, fail],
    [1800, fail],
  ]);
  assert.is(stalled.consecutiveFailures, 3, 'the raw count is kept for the probe report');
  assert.ok(nodeHealth(obs({ probe: stalled }), 1800, cadence).candidate, 'not failed by its own stall');
  assert.is(countedFailures(stalled, cadence).count, 0);
  // A node that really is silent fails three probes after the stall, timed from then.
  const dead = feed([
    [901, answer],
    [1100, fail],
    [1200, fail],
    [1800, fail],
    [1900, fail],
    [2000, fail],
    [2100, fail],
  ]);
  const h = nodeHealth(obs({ probe: dead }), 2100, cadence);
  assert.ok(!h.candidate && h.reason === 'probe' && h.since === 2100, JSON.stringify(h));
});

test('timer lateness within the slack still counts: a busy scheduler does not hide a dead node', () => {
  // Each failure comes 30-40 ms late (interval 100 + timeout 100 + slack 50 = 250 allowed).
  const s = feed([
    [901, answer],
    [1140, fail],
    [1280, fail],
    [1420, fail],
  ]);
  assert.not.ok(nodeHealth(obs({ probe: s }), 1420, cadence).candidate);
});

test('without the cadence, or from a state rebuilt from IpNode.status.probe, every failure counts as before', () => {
  const stalled = feed([
    [901, answer],
    [1100, fail],
    [1200, fail],
    [1800, fail],
  ]);
  assert.not.ok(nodeHealth(obs({ probe: stalled }), 1800, { monitorMs: 1e12, probeFailures: 3 }).candidate);
  const rebuilt: ProbeState = { consecutiveFailures: 3, draining: false, failedAt: 1800 };
  const h = nodeHealth(obs({ probe: rebuilt }), 1900, cadence);
  assert.ok(!h.candidate && h.since === 1800);
});

test('a long outage keeps counting past the failures kept in the state', () => {
  const steps: Array<[number, ProbeResult]> = [[901, answer]];
  for (let i = 0; i < 40; i++) steps.push([1100 + i * 100, fail]);
  const s = feed(steps);
  assert.ok((s.run?.length ?? 0) <= 16);
  const h = nodeHealth(obs({ probe: s }), 5000, cadence);
  assert.ok(!h.candidate && h.since === 1300, JSON.stringify(h));
});

test.run();
