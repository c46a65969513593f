import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fenceDecision } from './fencing.js';

const T0 = 1_000_000;
const AFTER = 3000;

test('reaching the API server keeps the agent unfenced, probed or not', () => {
  assert.equal(fenceDecision({ now: T0 + 10_000, lastApiContact: T0 + 9000, lastProbe: T0, fenceAfterMs: AFTER }), {
    fenced: false,
    reason: 'api-reachable',
  });
});

test('being probed keeps the addresses through an API outage', () => {
  assert.equal(fenceDecision({ now: T0 + 60_000, lastApiContact: T0, lastProbe: T0 + 59_800, fenceAfterMs: AFTER }), {
    fenced: false,
    reason: 'probed',
  });
});

test('neither for longer than --fence-after: fenced, with how long it has been isolated', () => {
  assert.equal(fenceDecision({ now: T0 + 5000, lastApiContact: T0, lastProbe: T0 + 1000, fenceAfterMs: AFTER }), {
    fenced: true,
    reason: 'isolated',
    isolatedForMs: 4000,
  });
});

test('the boundary: exactly --fence-after is still fine, one millisecond more is not', () => {
  assert.is(fenceDecision({ now: T0 + AFTER, lastApiContact: T0, lastProbe: T0, fenceAfterMs: AFTER }).fenced, false);
  assert.is(fenceDecision({ now: T0 + AFTER + 1, lastApiContact: T0, lastProbe: T0, fenceAfterMs: AFTER }).fenced, true);
});

test('either coming back lifts the fence', () => {
  assert.is(fenceDecision({ now: T0 + 10_000, lastApiContact: T0 + 9990, lastProbe: T0, fenceAfterMs: AFTER }).fenced, false);
  assert.is(fenceDecision({ now: T0 + 10_000, lastApiContact: T0, lastProbe: T0 + 9990, fenceAfterMs: AFTER }).fenced, false);
});

test('--fence-after 0 turns fencing off', () => {
  assert.equal(fenceDecision({ now: T0 + 1e9, lastApiContact: T0, lastProbe: T0, fenceAfterMs: 0 }), { fenced: false, reason: 'disabled' });
});

test.run();
