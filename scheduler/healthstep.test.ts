// healthStep with plain numbers: the view and transitions one step makes from the view before.
// The failure rules themselves (nodeHealth, nextProbeState) are tested in health.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IpNode } from '../api/types.js';
import { emptyHealthView, healthStep, heartbeatOf, type HealthObservation, type HealthView, type ProbeState } from './health.js';

const cfg = { monitorMs: 4000, probeFailures: 3 };
const T0 = 1_000_000;

function ipNode(name: string, beatAt: number): IpNode {
  return {
    apiVersion: 'ipcontroller.ext/v1',
    kind: 'IpNode',
    metadata: { name },
    spec: { probeAddress: '127.0.0.1', probePort: 1 },
    status: {
      renewTime: new Date(beatAt).toISOString(),
      conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: '', lastTransitionTime: new Date(beatAt).toISOString() }],
    },
  };
}

/** A labelled node with an agent that heartbeat at beatAt, and its probe state. */
function node(name: string, beatAt: number, probe?: ProbeState, addresses: string[] = []): HealthObservation {
  return { name, nodeLabels: { ipcontroller: '' }, ipNode: ipNode(name, beatAt), addresses, ...(probe ? { probe } : {}) };
}
const answered = (at: number): ProbeState => ({ consecutiveFailures: 0, draining: false, answeredAt: at });
const failing = (n: number, failedAt?: number): ProbeState => ({
  consecutiveFailures: n,
  draining: false,
  ...(failedAt !== undefined ? { failedAt } : {}),
});

test('first step: every healthy node is a candidate, nothing failed, and the view changed (the first pass runs)', () => {
  const step = healthStep(emptyHealthView(), [node('b', T0), node('a', T0)], T0 + 100, cfg);
  assert.equal(step.view.candidates, ['a', 'b'], 'sorted');
  assert.equal([...step.view.failures], []);
  assert.equal(step.view.states, { candidate: 2 });
  assert.equal(step.transitions, []);
  assert.ok(step.changed);
  assert.not.ok(healthStep(step.view, [node('b', T0), node('a', T0)], T0 + 200, cfg).changed, 'the same again: no change');
});

test('probes fail: the node fails at the third failure, with the time the third probe ended; once', () => {
  let view: HealthView = healthStep(emptyHealthView(), [node('a', T0), node('b', T0)], T0, cfg).view;
  const two = healthStep(view, [node('a', T0, failing(2)), node('b', T0)], T0 + 400, cfg);
  assert.equal(two.view.candidates, ['a', 'b'], 'two failures are not enough');
  assert.not.ok(two.changed);
  view = two.view;
  const three = healthStep(view, [node('a', T0, failing(3, T0 + 550)), node('b', T0)], T0 + 600, cfg);
  assert.equal(three.view.candidates, ['b']);
  assert.equal([...three.view.failures], [['a', 'probe']]);
  assert.is(three.view.failedAt.get('a'), T0 + 550);
  assert.equal(three.view.states, { candidate: 1, probe: 1 });
  assert.equal(three.transitions, [
    { kind: 'failed', node: 'a', reason: 'probe', message: '3 probes of a failed', since: T0 + 550, holds: false },
  ]);
  assert.ok(three.changed);
  const four = healthStep(three.view, [node('a', T0, failing(4, T0 + 550)), node('b', T0)], T0 + 800, cfg);
  assert.equal(four.transitions, [], 'still failed: no new transition');
  assert.is(four.view.failedAt.get('a'), T0 + 550, 'failed since the first time');
  assert.not.ok(four.changed);
});

test('a failed node that answers again recovers: candidate, its failure time forgotten', () => {
  const failed = healthStep(emptyHealthView(), [node('a', T0, failing(3, T0 + 50))], T0 + 100, cfg).view;
  const back = healthStep(failed, [node('a', T0, answered(T0 + 300))], T0 + 300, cfg);
  assert.equal(back.view.candidates, ['a']);
  assert.equal(back.transitions, [{ kind: 'recovered', node: 'a' }]);
  assert.is(back.view.failedAt.has('a'), false);
  assert.ok(back.changed);
});

test('a stale heartbeat fails the node from when it expired; answering probes it holds its claims (and says so once)', () => {
  const beat = T0;
  const now = T0 + 5000; // the beat is 5 s old, --monitor 4 s
  const silent = healthStep(emptyHealthView(), [node('a', beat)], now, cfg);
  assert.equal(silent.transitions.length, 1);
  assert.equal(silent.transitions[0]?.kind === 'failed' && silent.transitions[0].since, T0 + 4000, 'failed when the heartbeat expired');
  assert.equal(silent.view.holding, []);
  const holds = healthStep(silent.view, [node('a', beat, answered(now + 100))], now + 100, cfg);
  assert.equal(holds.view.holding, ['a']);
  assert.equal(
    holds.transitions.map((t) => t.kind),
    ['holding'],
  );
  assert.ok(holds.changed, 'holding changes what placement reads');
  const again = healthStep(holds.view, [node('a', beat, answered(now + 200))], now + 200, cfg);
  assert.equal(again.transitions, [], 'told once');
  assert.not.ok(again.changed);
});

test('a node that fails while its probes still answer says so in its failed transition', () => {
  const step = healthStep(emptyHealthView(), [node('a', T0, answered(T0 + 4900))], T0 + 5000, cfg);
  assert.equal(
    step.transitions.map((t) => t.kind === 'failed' && [t.reason, t.holds]),
    [['heartbeat', true]],
  );
  assert.equal(step.view.holding, ['a']);
});

test('a failure found in the future (clock step) is clamped to now', () => {
  const step = healthStep(emptyHealthView(), [node('a', T0, failing(3, T0 + 900))], T0 + 500, cfg);
  assert.is(step.view.failedAt.get('a'), T0 + 500);
});

test('a node that is gone keeps its failure time (its claims still move, timed from it); a new Node address is a change', () => {
  const failed = healthStep(emptyHealthView(), [node('a', T0, failing(3, T0 + 50)), node('b', T0)], T0 + 100, cfg).view;
  const gone = healthStep(failed, [node('b', T0)], T0 + 200, cfg);
  assert.is(gone.view.failedAt.get('a'), T0 + 50);
  assert.equal([...gone.view.failures], []);
  const addressed = healthStep(gone.view, [node('b', T0, undefined, ['192.0.2.7'])], T0 + 300, cfg);
  assert.ok(addressed.changed, 'a pool address on a Node must stop its allocation at once');
  assert.equal(addressed.view.candidates, ['b']);
});

test('the step does not change the view it was given', () => {
  const before = healthStep(emptyHealthView(), [node('a', T0, failing(3, T0 + 50))], T0 + 100, cfg).view;
  const snapshot = JSON.stringify([[...before.failedAt], before.candidates, before.holding]);
  healthStep(before, [node('a', T0, answered(T0 + 200))], T0 + 200, cfg);
  assert.is(JSON.stringify([[...before.failedAt], before.candidates, before.holding]), snapshot);
});

test('a Node address that comes, goes or changes (even in the same list object) changes the view; the same again does not', () => {
  const list = ['192.0.2.1'];
  let step = healthStep(emptyHealthView(), [node('a', T0, undefined, list), node('b', T0)], T0, cfg);
  step = healthStep(step.view, [node('a', T0, undefined, ['192.0.2.1']), node('b', T0)], T0 + 200, cfg);
  assert.not.ok(step.changed, 'same addresses, another list: no change');
  step = healthStep(step.view, [node('a', T0, undefined, list), node('b', T0, undefined, ['192.0.2.2'])], T0 + 400, cfg);
  assert.ok(step.changed, 'b has an address now');
  list[0] = '192.0.2.3';
  step = healthStep(step.view, [node('a', T0, undefined, list), node('b', T0, undefined, ['192.0.2.2'])], T0 + 600, cfg);
  assert.ok(step.changed, 'the list of a changed in place');
  step = healthStep(step.view, [node('a', T0, undefined, list), node('b', T0, undefined, ['192.0.2.2'])], T0 + 800, cfg);
  assert.not.ok(step.changed);
  step = healthStep(step.view, [node('a', T0, undefined, list)], T0 + 1000, cfg);
  assert.ok(step.changed, 'b is gone');
});

test('a heartbeat rewritten in the same status object is read again', () => {
  const n = ipNode('a', T0);
  assert.is(heartbeatOf(n), T0);
  if (n.status) n.status.renewTime = new Date(T0 + 5000).toISOString();
  assert.is(heartbeatOf(n), T0 + 5000);
  if (n.status) n.status.renewTime = 'not a time';
  assert.is(heartbeatOf(n), null);
});

test.run();
