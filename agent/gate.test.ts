// The gate alone: plain numbers for the time, no agent, no clock object.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deadmanPeriod, deadmanRound, gate, gatePeriod, initialMemory, stallCleared, STALL_MS, type GateState } from './gate.js';

const T0 = 1_000_000;
const FENCE = 3000;

/** A healthy agent at T0: registered, listed, reconciled, in contact with the API server. */
function serving(over: Partial<GateState> = {}): GateState {
  return {
    memory: initialMemory(T0),
    config: { fenceAfterMs: FENCE, stallWithdrawMs: 500 },
    lastApiContact: T0,
    lastProbe: T0,
    listedAt: T0 - 10,
    synced: true,
    ipNodeReady: true,
    firstReconcileDone: true,
    draining: false,
    drained: false,
    strictArp: { missing: false },
    nodeConditions: [],
    ...over,
  };
}

const status = (conditions: { type: string; status: string; reason: string }[], type: string): string | undefined => {
  const c = conditions.find((x) => x.type === type);
  return c && `${c.status}/${c.reason}`;
};

test('a healthy agent announces, keeps its addresses, is ready and says so', () => {
  const d = gate(serving(), T0 + 50);
  assert.equal(
    { announce: d.announce, withdrawAll: d.withdrawAll, ready: d.ready, reason: d.reason, transitions: d.transitions },
    { announce: true, withdrawAll: false, ready: true, reason: 'serving', transitions: [] },
  );
  assert.equal(
    d.conditions.map((c) => [c.type, c.status, c.reason]),
    [
      ['Ready', 'True', 'Serving'],
      ['Draining', 'False', 'Running'],
      ['Fenced', 'False', 'Connected'],
      ['StrictARPMissing', 'False', 'NotNeeded'],
    ],
  );
  assert.is(d.memory.lastTick, T0 + 50, 'the evaluation is the new tick');
});

test('first reconcile: not ready and Starting until it ran, and not before the IpNode is registered', () => {
  const before = gate(serving({ firstReconcileDone: false }), T0 + 50);
  assert.is(before.ready, false);
  assert.is(before.reason, 'starting');
  assert.is(status(before.conditions, 'Ready'), 'False/Starting');
  const unregistered = gate(serving({ ipNodeReady: false }), T0 + 50);
  assert.is(unregistered.ready, false, '/readyz waits for the IpNode');
  assert.is(status(unregistered.conditions, 'Ready'), 'True/Serving', 'the condition does not (it is written to the IpNode)');
  const unlisted = gate(serving({ synced: false, listedAt: 0 }), T0 + 50);
  assert.is(unlisted.ready, false);
  assert.is(unlisted.withdrawAll, true, 'nothing listed yet: nothing is known to be ours');
  assert.is(unlisted.reason, 'starting');
});

test('fence: isolated past --fence-after withdraws everything, once, and the lifted fence waits for a fresh list', () => {
  const cut = serving({ lastApiContact: T0 - 5000, lastProbe: T0 - 4000 });
  const fenced = gate(cut, T0 + 50);
  assert.equal(fenced.transitions, [{ kind: 'fenced', isolatedForMs: 4050 }]);
  assert.equal([fenced.announce, fenced.withdrawAll, fenced.ready, fenced.reason], [false, true, false, 'fenced']);
  assert.is(status(fenced.conditions, 'Fenced'), 'True/Isolated');
  assert.is(status(fenced.conditions, 'Ready'), 'False/Fenced');
  const again = gate({ ...cut, memory: fenced.memory }, T0 + 100);
  assert.equal(again.transitions, [], 'a transition happens once');
  // A probe arrives: unfenced, but the stale cache gives nothing back until the claims are listed again.
  const probed = gate({ ...cut, memory: again.memory, lastProbe: T0 + 150 }, T0 + 200);
  assert.equal(probed.transitions, [{ kind: 'unfenced', reason: 'probed' }]);
  assert.is(probed.memory.unfencedAt, T0 + 200);
  assert.equal([probed.announce, probed.withdrawAll, probed.reason], [true, true, 'awaitingRelist']);
  const relisted = gate({ ...cut, memory: probed.memory, lastProbe: T0 + 150, listedAt: T0 + 210 }, T0 + 250);
  assert.equal([relisted.withdrawAll, relisted.reason], [false, 'serving']);
});

test('fence: the rule is fencing.ts, boundary included; --fence-after 0 never fences', () => {
  const edge = serving({ lastApiContact: T0, lastProbe: T0, memory: initialMemory(T0 + FENCE - 50) }); // ticking all along
  assert.equal(gate(edge, T0 + FENCE).transitions, []);
  assert.equal(gate(edge, T0 + FENCE + 1).transitions, [{ kind: 'fenced', isolatedForMs: FENCE + 1 }]);
  const off = serving({ config: { fenceAfterMs: 0, stallWithdrawMs: 0 }, lastApiContact: 0, lastProbe: 0 });
  assert.is(gate(off, T0 + 50).memory.fenced, false);
});

test('stall: a gap over STALL_MS holds announcements until a reconcile on claims listed after it', () => {
  const state = serving({ config: { fenceAfterMs: 10_000, stallWithdrawMs: 0 }, lastApiContact: T0 + 2000 });
  const resumed = gate(state, T0 + 2000);
  assert.equal(resumed.transitions, [{ kind: 'stalled', stalledMs: 2000, withdraw: false }]);
  assert.equal([resumed.announce, resumed.withdrawAll, resumed.ready, resumed.reason], [false, false, true, 'stalled']);
  assert.is(resumed.memory.stalledAt, T0 + 2000);
  // The next evaluation sees no new stall: applying the first cannot make another (the old recursion).
  assert.equal(gate({ ...state, memory: resumed.memory }, T0 + 2000).transitions, []);
  // A reconcile on the old list does not clear it; one on a list made after the stall does.
  assert.is(stallCleared(resumed.memory, { stalledAt: resumed.memory.stalledAt, listedAt: T0 - 10 }), undefined);
  const cleared = stallCleared(resumed.memory, { stalledAt: resumed.memory.stalledAt, listedAt: T0 + 2001 });
  assert.is(cleared?.stalledAt, 0);
  assert.is(gate({ ...state, memory: cleared ?? resumed.memory }, T0 + 2050).announce, true);
  // A newer stall during that reconcile keeps the hold.
  const newer = { ...resumed.memory, stalledAt: T0 + 3500 };
  assert.is(stallCleared(newer, { stalledAt: resumed.memory.stalledAt, listedAt: T0 + 2001 }), undefined);
});

test('stall: exactly STALL_MS is no stall; past --stall-withdraw everything goes until the claims are listed again', () => {
  const state = serving({ config: { fenceAfterMs: 10_000, stallWithdrawMs: 500 } });
  assert.equal(gate(state, T0 + 500).transitions, [], '500 ms is not past --stall-withdraw');
  assert.equal(gate(serving({ config: { fenceAfterMs: 10_000, stallWithdrawMs: 0 } }), T0 + STALL_MS).transitions, []);
  const long = gate(state, T0 + 800);
  assert.equal(long.transitions, [{ kind: 'stalled', stalledMs: 800, withdraw: true }]);
  assert.equal([long.announce, long.withdrawAll, long.reason], [false, true, 'awaitingRelist']);
  assert.is(long.memory.stallWithdrawAt, T0 + 800);
  const listed = gate({ ...state, memory: long.memory, listedAt: T0 + 820 }, T0 + 850);
  assert.is(listed.withdrawAll, false, 'the fresh list decides again');
  assert.is(listed.announce, false, 'rounds wait for the reconcile on it');
});

test('drain: Draining is reported and readiness drops while serving; drained withdraws everything and announces nothing', () => {
  const draining = gate(serving({ draining: true }), T0 + 50);
  assert.equal([draining.announce, draining.withdrawAll, draining.ready, draining.reason], [true, false, false, 'draining']);
  assert.is(status(draining.conditions, 'Draining'), 'True/ShuttingDown');
  assert.is(status(draining.conditions, 'Ready'), 'False/Draining');
  const drained = gate(serving({ draining: true, drained: true }), T0 + 50);
  assert.equal([drained.announce, drained.withdrawAll, drained.reason], [false, true, 'drained']);
});

test('conditions keep their lastTransitionTime while unchanged and carry the strict ARP message', () => {
  const first = gate(serving(), T0);
  const later = gate(
    serving({
      lastApiContact: T0 + 4990,
      nodeConditions: first.conditions,
      strictArp: { missing: true, addresses: ['192.0.2.5'], message: 'no strict ARP' },
    }),
    T0 + 5000,
  );
  const at = (type: string, list = later.conditions): string | undefined => list.find((c) => c.type === type)?.lastTransitionTime;
  assert.is(at('Ready'), new Date(T0).toISOString());
  assert.is(at('StrictARPMissing'), new Date(T0 + 5000).toISOString());
  assert.is(later.conditions.find((c) => c.type === 'StrictARPMissing')?.message, 'no strict ARP');
});

test('deadman: refreshes the held addresses, nothing while everything is withdrawn, and skips a late round and the time before the first reconcile', () => {
  const periodMs = deadmanPeriod(400);
  assert.is(periodMs, 100);
  const base = { sinceLastRoundMs: 100, periodMs, ttlMs: 400, stallWithdrawMs: 500, firstReconcileDone: true, withdrawAll: false };
  assert.is(deadmanRound(base), 'held');
  assert.is(deadmanRound({ ...base, withdrawAll: true }), 'none');
  assert.is(deadmanRound({ ...base, firstReconcileDone: false }), 'skip');
  assert.is(deadmanRound({ ...base, sinceLastRoundMs: 400 }), 'held', 'within the ttl');
  assert.is(deadmanRound({ ...base, sinceLastRoundMs: 401 }), 'skip', 'late: the process did not run, the stall rule decides first');
  assert.is(deadmanRound({ ...base, stallWithdrawMs: 0, ttlMs: 1000, periodMs: 250, sinceLastRoundMs: 900 }), 'held');
  assert.is(deadmanPeriod(40), 25);
});

test('the gate loop runs at the stall tick, faster when --fence-after is short', () => {
  assert.is(gatePeriod(3000, 100), 100);
  assert.is(gatePeriod(300, 100), 75);
  assert.is(gatePeriod(100, 100), 50);
  assert.is(gatePeriod(0, 100), 100);
});

test.run();
