import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Condition, IpNode } from '../api/types.js';
import { nextProbeState, nodeHealth, type NodeObservation, type ProbeState } from './health.js';

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
  assert.equal(s, { consecutiveFailures: 0, draining: false, answeredAt: 900 });
});

test.run();
