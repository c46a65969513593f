import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:http';
import { systemClock } from '../lib/clock.js';
import { flush, ManualClock } from '../lib/manualclock.js';
import type { ProbeResult } from './health.js';
import {
  firstOk,
  httpProbe,
  PROBE_SLOT_MS,
  probeSlots,
  slotsDue,
  Prober,
  slotOf,
  udpAlone,
  udpFirstProbe,
  udpMisses,
  MAX_STRETCHED_INTERVAL_MS,
  phaseOf,
  probeStretch,
  standbyStretch,
  type ProbeFn,
  type ProbeTarget,
} from './prober.js';

const OK: ProbeResult = { ok: true, draining: false, rttMs: 1 };
const FAIL: ProbeResult = { ok: false, error: 'no answer' };
const target = (node: string, port = 1): ProbeTarget => ({ node, address: '127.0.0.1', port });

function recording(answer: (t: ProbeTarget) => Promise<ProbeResult>, clock: ManualClock): { fn: ProbeFn; calls: Map<string, number[]> } {
  const calls = new Map<string, number[]>();
  const fn: ProbeFn = (t) => {
    calls.set(t.node, [...(calls.get(t.node) ?? []), clock.now()]);
    return answer(t);
  };
  return { fn, calls };
}

function prober(fn: ProbeFn, clock: ManualClock, signal: AbortSignal, results: string[] = []): Prober {
  return new Prober({ probe: fn, intervalMs: 200, timeoutMs: 100, clock, onResult: (node, r) => results.push(`${node}:${r.ok}`) }, signal);
}

test('slots: about 10 ms each, a node always in the same one', () => {
  assert.is(probeSlots(200), 20);
  assert.is(probeSlots(5), 1);
  for (const node of ['a', 'node-1', 'x'.repeat(253)]) {
    assert.is(slotOf(node, 20), slotOf(node, 20));
    assert.ok(slotOf(node, 20) >= 0 && slotOf(node, 20) < 20);
  }
  const used = new Set(Array.from({ length: 1000 }, (_, i) => slotOf(`ps-${i}`, 20)));
  assert.is(used.size, 20, '1,000 nodes spread over every slot');
});

test('a late timer catches up on the slots it missed, at most one round', () => {
  assert.equal(slotsDue(100, 95, 10, 20), { count: 0, nextAt: 100 });
  assert.equal(slotsDue(100, 100, 10, 20), { count: 1, nextAt: 110 });
  assert.equal(slotsDue(100, 135, 10, 20), { count: 4, nextAt: 140 }, '35 ms late: 100, 110, 120, 130');
  assert.equal(slotsDue(100, 290, 10, 20), { count: 20, nextAt: 300 });
  assert.equal(slotsDue(100, 5000, 10, 20), { count: 20, nextAt: 5010 }, 'frozen: one round, then on from now');
});

test('a timer late by 30 ms at every tick still probes every target once per interval', async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const { fn, calls } = recording(() => Promise.resolve(OK), clock);
  prober(fn, clock, stop.signal).sync(Array.from({ length: 40 }, (_, i) => target(`n${i}`)));
  await clock.advance(2000, 40);
  stop.abort();
  for (let i = 0; i < 40; i++) assert.ok((calls.get(`n${i}`)?.length ?? 0) >= 9, `n${i}: ${calls.get(`n${i}`)?.length}`);
});

test('every target is probed once per interval from one timer, within its first interval', async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const { fn, calls } = recording(() => Promise.resolve(OK), clock);
  const T0 = clock.now();
  const results: string[] = [];
  prober(fn, clock, stop.signal, results).sync([target('a'), target('b'), target('c')]);
  await clock.advance(1000, 10);
  stop.abort();
  for (const node of ['a', 'b', 'c']) {
    const times = calls.get(node) ?? [];
    assert.ok(times.length >= 4, `${node} probed ${times.length} times`);
    assert.ok((times[0] as number) - T0 <= 200 + PROBE_SLOT_MS, `${node} first probed after ${(times[0] as number) - T0}ms`);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    assert.ok(
      gaps.every((g) => g === 200),
      `${node}: ${gaps.join(',')}`,
    );
  }
  assert.ok(results.includes('a:true'));
});

test('one probe in flight per target: an unanswered probe is not stacked', async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const { fn, calls } = recording(() => new Promise<ProbeResult>(() => undefined), clock);
  prober(fn, clock, stop.signal).sync([target('a')]);
  await clock.advance(1000, 10);
  stop.abort();
  assert.is(calls.get('a')?.length, 1);
});

test('a removed or re-addressed target is not reported from its old probe, and abort stops probing', async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const pending: Array<(r: ProbeResult) => void> = [];
  const { fn, calls } = recording(() => new Promise<ProbeResult>((r) => pending.push(r)), clock);
  const results: string[] = [];
  const p = prober(fn, clock, stop.signal, results);
  p.sync([target('a', 1)]);
  await clock.advance(250, 10);
  p.sync([target('a', 2)]);
  await clock.advance(250, 10);
  assert.is(pending.length, 2, 'the new address is probed while the old probe is unanswered');
  pending[0]?.(FAIL);
  await flush();
  assert.equal(results, [], 'the answer to the old address is dropped');
  pending[1]?.(OK);
  await flush();
  assert.equal(results, ['a:true']);
  p.sync([]);
  await clock.advance(400, 10);
  assert.is(calls.get('a')?.length, 2, 'removed: no more probes');
  p.sync([target('b')]);
  await clock.advance(250, 10);
  stop.abort();
  pending[2]?.(OK);
  await clock.advance(400, 10);
  assert.equal(results, ['a:true'], 'stopped: nothing reported');
  assert.is(calls.get('b')?.length, 1);
});

/** Test doubles of the two transports: each answers as its switch says and records that it was used. */
function transports(): { udp: ProbeFn; http: ProbeFn; used: string[]; set: { udp: boolean; http: boolean } } {
  const used: string[] = [];
  const set = { udp: false, http: true };
  const udp: ProbeFn = () => {
    used.push('udp');
    return Promise.resolve(set.udp ? OK : { ok: false, error: 'no UDP answer' });
  };
  const http: ProbeFn = () => {
    used.push('http');
    return Promise.resolve(set.http ? OK : { ok: false, error: 'connect ECONNREFUSED' });
  };
  return { udp, http, used, set };
}

test('UDP alone while misses stay under probeFailures - 1 (at least 1), after a first UDP answer', () => {
  assert.is(udpAlone(null, 3), false, 'never answered over UDP: both');
  assert.is(udpAlone(0, 3), true);
  assert.is(udpAlone(1, 3), true, 'one late answer: still UDP alone');
  assert.is(udpAlone(2, 3), false, 'probeFailures - 1 misses: HTTP beside UDP');
  assert.is(udpAlone(0, 1), true);
  assert.is(udpAlone(1, 1), false, 'at least one miss, even with --probe-failures 1');
  assert.is(udpAlone(1, 2), false);
  assert.is(udpAlone(3, 5), true);
  assert.is(udpAlone(4, 5), false);
});

test('UDP first: both until UDP answers, then UDP alone, HTTP beside it only after probeFailures - 1 misses', async () => {
  const { udp, http, used, set } = transports();
  const probe = udpFirstProbe(udp, http, { probeFailures: 3 });
  assert.equal(await probe(target('a'), 100), OK, 'an HTTP-only agent is fine');
  assert.equal(used.splice(0), ['udp', 'http']);
  set.udp = true;
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp', 'http']);
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp'], 'known to answer UDP: no HTTP');
  set.udp = false;
  assert.is((await probe(target('a'), 100)).ok, false, 'a UDP failure is a failure');
  assert.equal(used.splice(0), ['udp'], 'one miss (a late answer on a busy host) adds no HTTP probe');
  assert.is((await probe(target('a'), 100)).ok, false);
  assert.equal(used.splice(0), ['udp']);
  assert.equal(await probe(target('a'), 100), OK, 'after probeFailures - 1 misses HTTP answers beside UDP');
  assert.equal(used.splice(0), ['udp', 'http']);
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp', 'http'], 'both until UDP answers again');
  set.udp = true;
  await probe(target('a'), 100);
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp', 'http', 'udp'], 'UDP answered: alone again');
});

test('an agent that loses UDP never fails probeFailures probes in a row; one that is silent does', async () => {
  for (const probeFailures of [1, 2, 3, 5]) {
    const { udp, http, set } = transports();
    const probe = udpFirstProbe(udp, http, { probeFailures });
    set.udp = true;
    await probe(target('a'), 100);
    set.udp = false;
    let inARow = 0;
    let most = 0;
    for (let i = 0; i < 20; i++) {
      inARow = (await probe(target('a'), 100)).ok ? 0 : inARow + 1;
      most = Math.max(most, inARow);
    }
    assert.ok(most < probeFailures || probeFailures === 1, `probeFailures ${probeFailures}: ${most} failures in a row`);
    if (probeFailures === 1) assert.is(most, 1, 'with --probe-failures 1 the first miss fails the node, as it always did');
    set.http = false;
    for (let i = 0; i < probeFailures; i++) inARow = (await probe(target('a'), 100)).ok ? 0 : inARow + 1;
    assert.is(inARow, probeFailures, 'silent on both: it fails');
  }
});

test('targets are tracked apart: by address and port', async () => {
  const { udp, http, used, set } = transports();
  const probe = udpFirstProbe(udp, http, { probeFailures: 3 });
  set.udp = true;
  await probe(target('a', 1), 100);
  used.splice(0);
  await probe(target('a', 1), 100);
  await probe(target('a', 2), 100);
  assert.equal(used, ['udp', 'udp', 'http'], 'port 2 has not answered over UDP yet');
});

test('the rate cap stretches the interval to whole multiples, only past the cap, at most to 1 s', () => {
  assert.is(probeStretch(1_000, 100, 10_000), 1, '1,000 nodes at 100 ms: within the default cap');
  assert.is(probeStretch(1_001, 100, 10_000), 2);
  assert.is(probeStretch(2_000, 100, 10_000), 2, '2,000 nodes: every 200 ms, the same 10,000 probes a second');
  assert.is(probeStretch(2_500, 100, 10_000), 3);
  assert.is(probeStretch(100_000, 100, 10_000), MAX_STRETCHED_INTERVAL_MS / 100, 'never beyond 1 s (agents fence after 3 s unprobed)');
  assert.is(probeStretch(100_000, 2_000, 10), 1, 'an interval already past 1 s is not stretched');
  assert.is(probeStretch(5_000, 100, 0), 1, '0: no cap');
  assert.is(probeStretch(5_000, 100, undefined), 1);
  const phases = new Set(Array.from({ length: 1000 }, (_, i) => phaseOf(`ps-${i}`, 10, 3)));
  assert.equal([...phases].sort(), [0, 1, 2], 'nodes spread over the rounds');
});

test('under the rate cap each target is probed once per stretched interval, and faster again when nodes go', async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const { fn, calls } = recording(() => Promise.resolve(OK), clock);
  const p = new Prober({ probe: fn, intervalMs: 200, timeoutMs: 100, maxRate: 100, clock, onResult: () => undefined }, stop.signal);
  const forty = Array.from({ length: 40 }, (_, i) => target(`n${i}`));
  p.sync(forty); // 40 per 200 ms = 200/s: stretched to 400 ms
  assert.is(p.effectiveIntervalMs(), 400);
  await clock.advance(4_000, 10);
  for (const t of forty) {
    const times = calls.get(t.node) ?? [];
    const gaps = times.slice(1).map((x, i) => x - (times[i] as number));
    assert.ok(times.length >= 9 && gaps.every((g) => g === 400), `${t.node}: ${gaps.join(',')}`);
  }
  p.sync(forty.slice(0, 10));
  assert.is(p.effectiveIntervalMs(), 200, '10 nodes: within the cap');
  calls.clear();
  await clock.advance(2_000, 10);
  stop.abort();
  for (const t of forty.slice(0, 10)) assert.ok((calls.get(t.node)?.length ?? 0) >= 9, `${t.node}: ${calls.get(t.node)?.length}`);
});

test('a standby probes every --standby-probe-interval in whole intervals, at most 1 s, never faster than the leader', () => {
  assert.is(standbyStretch(100, 1_000), 10, 'the defaults: every 1 s instead of every 100 ms');
  assert.is(standbyStretch(100, 250), 2, 'whole intervals, rounded down');
  assert.is(standbyStretch(100, 100), 1, 'at the interval: as the leader');
  assert.is(standbyStretch(100, 50), 1, 'below it: as the leader');
  assert.is(standbyStretch(100, 0), 1, '0: as the leader');
  assert.is(standbyStretch(100, undefined), 1);
  assert.is(standbyStretch(25, 1_000), 40);
  assert.is(standbyStretch(2_000, 1_000), 1, 'an interval past 1 s stays as it is');
});

test('a standby probes each target once per standby interval; leading, every target is probed in the next round and then every interval', async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const { fn, calls } = recording(() => Promise.resolve(OK), clock);
  const p = new Prober(
    { probe: fn, intervalMs: 100, timeoutMs: 80, standbyIntervalMs: 1_000, clock, onResult: () => undefined },
    stop.signal,
  );
  const ten = Array.from({ length: 10 }, (_, i) => target(`n${i}`));
  p.setStandby(true);
  p.sync(ten);
  assert.is(p.effectiveIntervalMs(), 1_000);
  await clock.advance(5_000, 10);
  for (const t of ten) {
    const times = calls.get(t.node) ?? [];
    const gaps = times.slice(1).map((x, i) => x - (times[i] as number));
    assert.ok(times.length >= 4 && times.length <= 5 && gaps.every((g) => g === 1_000), `${t.node} as a standby: ${gaps.join(',')}`);
  }
  calls.clear();
  p.setStandby(false);
  assert.is(p.effectiveIntervalMs(), 100);
  await clock.advance(100, 10);
  for (const t of ten) assert.is(calls.get(t.node)?.length, 1, `${t.node}: probed within one interval of leading`);
  await clock.advance(1_000, 10);
  stop.abort();
  for (const t of ten) assert.ok((calls.get(t.node)?.length ?? 0) >= 10, `${t.node} leading: ${calls.get(t.node)?.length}`);
});

test('a standby and the rate cap: the longer of the two stretches wins', async () => {
  const stop = new AbortController();
  const p = new Prober(
    {
      probe: () => Promise.resolve(OK),
      intervalMs: 100,
      timeoutMs: 80,
      maxRate: 100,
      standbyIntervalMs: 300,
      clock: new ManualClock(),
      onResult: () => undefined,
    },
    stop.signal,
  );
  p.sync(Array.from({ length: 50 }, (_, i) => target(`n${i}`))); // 500/s against a cap of 100/s: every 500 ms
  assert.is(p.effectiveIntervalMs(), 500);
  p.setStandby(true);
  assert.is(p.effectiveIntervalMs(), 500, 'the cap stretches further than the standby interval');
  p.sync(Array.from({ length: 5 }, (_, i) => target(`n${i}`)));
  assert.is(p.effectiveIntervalMs(), 300, 'within the cap: the standby interval');
  stop.abort();
});

test('UDP misses: an answer resets them, a miss counts only once UDP has answered', () => {
  assert.is(udpMisses(null, false), null, 'never answered over UDP: still unknown');
  assert.is(udpMisses(null, true), 0);
  assert.is(udpMisses(0, false), 1);
  assert.is(udpMisses(2, true), 0);
});

test('an agent whose UDP answers come late stays on UDP alone: no HTTP probe is added', async () => {
  const { udp, http, used, set } = transports();
  const probe = udpFirstProbe(udp, http, { probeFailures: 3 });
  set.udp = true;
  await probe(target('a'), 100);
  set.udp = false; // each probe times out, and its answer comes after
  for (let i = 0; i < 10; i++) {
    assert.is((await probe(target('a'), 100)).ok, false, 'a late answer is still a failed probe');
    probe.lateAnswer(target('a'));
  }
  assert.equal(used.splice(0), ['udp', 'http', ...Array<string>(10).fill('udp')], 'UDP alone throughout');
  await probe(target('a'), 100);
  await probe(target('a'), 100);
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp', 'udp', 'udp', 'http'], 'no late answers: HTTP beside UDP after probeFailures - 1 misses');
});

test('a removed target is forgotten: the Prober tells the probe, which starts it over', async () => {
  const { udp, http, used, set } = transports();
  const probe = udpFirstProbe(udp, http, { probeFailures: 3 });
  set.udp = true;
  await probe(target('a'), 100);
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp', 'http', 'udp']);
  probe.forget(target('a'));
  await probe(target('a'), 100);
  assert.equal(used.splice(0), ['udp', 'http'], 'forgotten: as a new target');

  const clock = new ManualClock();
  const stop = new AbortController();
  const forgotten: string[] = [];
  const fn: ProbeFn = Object.assign(() => Promise.resolve(OK), { forget: (t: ProbeTarget) => void forgotten.push(`${t.node}:${t.port}`) });
  const p = prober(fn, clock, stop.signal);
  p.sync([target('a', 1), target('b', 1)]);
  p.sync([target('a', 2)]);
  assert.equal(forgotten.sort(), ['a:1', 'b:1'], 'removed, and the old address of one that moved');
  stop.abort();
  assert.equal(forgotten.sort(), ['a:1', 'a:2', 'b:1'], 'stopped: all forgotten');
});

test('firstOk: the first good answer, or the second failure when both fail', async () => {
  const never = new Promise<ProbeResult>(() => undefined);
  assert.equal(await firstOk(never, Promise.resolve(OK)), OK);
  assert.equal(await firstOk(Promise.resolve(OK), never), OK);
  const httpError: ProbeResult = { ok: false, error: 'connect ECONNREFUSED' };
  assert.equal(await firstOk(Promise.resolve(FAIL), Promise.resolve(httpError)), httpError);
  const late = new Promise<ProbeResult>((r) => setImmediate(() => r(FAIL)));
  assert.equal(await firstOk(late, Promise.resolve(httpError)), httpError);
});

test('HTTP probe: an answer waiting unread when the timeout comes (the scheduler did not run) still counts', async () => {
  let answered = (): void => undefined;
  const sent = new Promise<void>((r) => (answered = r));
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, node: 'a', draining: false }), answered);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const timeoutMs = 1_000;
    const started = performance.now();
    const result = httpProbe('s', systemClock)(target('a', port), timeoutMs);
    await sent;
    // Blocks this process past the deadline with the answer in its socket, as a starved scheduler is.
    while (performance.now() < started + timeoutMs + 50) {
      /* busy */
    }
    const r = await result;
    assert.ok(r.ok, JSON.stringify(r));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test.run();
