// NodeMonitor's cost rule: an IpNode event or probe result that moves no node's verdict takes no
// full health step (the timer's step catches what time changes); one that does, or an agent that
// comes, goes or moves its probe address, takes one at once, as before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import type { Logger } from '../lib/logger.js';
import { API_VERSION, type IpNode } from '../api/types.js';
import { flush, ManualClock } from '../lib/manualclock.js';
import { healthTickMs, NodeMonitor } from './nodemonitor.js';
import type { ProbeFn, ProbeTarget } from './prober.js';
import { emptyCaches } from './reconciler.js';

const config = { monitorMs: 60_000, probeFailures: 3, probeIntervalMs: 200, probeTimeoutMs: 100 };

function ipNode(name: string, at: number, more: { port?: number; draining?: boolean } = {}): IpNode {
  const time = new Date(at).toISOString();
  const cond = (type: string): { type: string; status: 'True'; reason: string; message: string; lastTransitionTime: string } => ({
    type,
    status: 'True',
    reason: type,
    message: '',
    lastTransitionTime: time,
  });
  return {
    apiVersion: API_VERSION,
    kind: 'IpNode',
    metadata: { name },
    spec: { probeAddress: '127.0.0.1', probePort: more.port ?? 1 },
    status: { renewTime: time, conditions: more.draining ? [cond('Ready'), cond('Draining')] : [cond('Ready')] },
  };
}

/** A monitor over nodes a, b, c that counts its full steps (each sets the nodes gauge once). */
function world(
  more: { probeMaxRate?: number; standbyProbeIntervalMs?: number } = {},
  log: Logger = pino({ level: 'silent' }),
): {
  clock: ManualClock;
  caches: ReturnType<typeof emptyCaches>;
  monitor: NodeMonitor;
  steps: () => number;
  targets: ProbeTarget[];
  answer: Map<string, boolean>;
  stop: AbortController;
} {
  const clock = new ManualClock();
  const caches = emptyCaches();
  const targets: ProbeTarget[] = [];
  const answer = new Map<string, boolean>();
  const probe: ProbeFn = (t) => {
    targets.push(t);
    return Promise.resolve(answer.get(t.node) === false ? { ok: false, error: 'no answer' } : { ok: true, draining: false, rttMs: 1 });
  };
  for (const name of ['a', 'b', 'c']) {
    caches.nodes.upsert(name, { name, labels: { ipcontroller: '' } }, '1');
    caches.ipNodes.upsert(name, ipNode(name, clock.now()), '1');
  }
  caches.nodes.synced = true;
  caches.ipNodes.synced = true;
  let steps = 0;
  const stop = new AbortController();
  const monitor = new NodeMonitor(
    {
      caches,
      config: { ...config, ...more },
      probe,
      clock,
      log,
      metrics: { probed: () => undefined, forgetNode: () => undefined, nodeStates: () => void steps++ },
      reporter: { observe: () => undefined, forget: () => undefined },
      onChange: () => undefined,
    },
    stop.signal,
  );
  monitor.ipNodesChanged();
  return { clock, caches, monitor, steps: () => steps, targets, answer, stop };
}

test('a heartbeat that changes no verdict takes no full step; a Draining condition takes one at once', () => {
  const w = world();
  assert.is(w.steps(), 1, 'the first list: one step');
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c']);
  w.caches.ipNodes.upsert('b', ipNode('b', w.clock.now() + 1000), '2');
  w.monitor.ipNodesChanged();
  assert.is(w.steps(), 1, 'heartbeat: nothing to decide again');
  w.caches.ipNodes.upsert('b', ipNode('b', w.clock.now() + 2000, { draining: true }), '3');
  w.monitor.ipNodesChanged();
  assert.is(w.steps(), 2);
  assert.equal(w.monitor.view().candidates, ['a', 'c'], 'draining: out at once');
  assert.is(w.monitor.view().failures.get('b'), 'draining');
  w.stop.abort();
});

test('an agent that comes, goes or moves its probe port: probes follow and a full step runs', async () => {
  const w = world();
  w.caches.nodes.upsert('d', { name: 'd', labels: { ipcontroller: '' } }, '1');
  w.caches.ipNodes.upsert('d', ipNode('d', w.clock.now()), '1');
  w.monitor.ipNodesChanged();
  assert.is(w.steps(), 2);
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c', 'd']);
  w.caches.ipNodes.upsert('a', ipNode('a', w.clock.now(), { port: 2 }), '2');
  w.monitor.ipNodesChanged();
  assert.is(w.steps(), 3);
  await w.clock.advance(250, 10);
  assert.ok(
    w.targets.some((t) => t.node === 'a' && t.port === 2),
    'probed on its new port',
  );
  const before = w.steps();
  w.caches.ipNodes.remove('c');
  w.monitor.ipNodesChanged();
  assert.is(w.steps(), before + 1);
  assert.is(w.monitor.view().failures.get('c'), 'no-ipnode');
  w.stop.abort();
});

test('probe results: a first answer or one failure moves no verdict; the failure that fails the node steps at once', async () => {
  const w = world();
  await w.clock.advance(250, 10);
  await flush();
  assert.ok(w.targets.length >= 3, 'every node probed');
  const ticks = w.steps(); // no timer here (run() is not started): only the steps results cause
  w.answer.set('b', false);
  w.monitor.probed('b', { ok: false, error: 'no answer' });
  w.monitor.probed('b', { ok: false, error: 'no answer' });
  assert.is(w.steps(), ticks, 'two failures: no full step');
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c']);
  w.monitor.probed('b', { ok: false, error: 'no answer' });
  assert.is(w.steps(), ticks + 1, 'the third: one step, at once');
  assert.equal(w.monitor.view().candidates, ['a', 'c']);
  w.monitor.probed('b', { ok: true, draining: false, rttMs: 1 });
  assert.is(w.steps(), ticks + 2, 'answered again: back at once');
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c']);
  w.stop.abort();
});

test('the timer step follows --monitor (what only time changes), not the probe interval', () => {
  assert.is(healthTickMs(4_000), 250, 'the default --monitor 4s: every 250 ms');
  assert.is(healthTickMs(60_000), 250, 'at most 250 ms');
  assert.is(healthTickMs(1_000), 62);
  assert.is(healthTickMs(100), 25, 'at least 25 ms');
});

test('failures counted after a stall of the scheduler fail the node at once when they reach the threshold', async () => {
  const w = world();
  await w.clock.advance(250, 10);
  w.stop.abort(); // probes stop: only the results below count
  await flush();
  const fail = (): void => w.monitor.probed('b', { ok: false, error: 'no answer' });
  fail();
  await w.clock.advance(200);
  fail();
  await w.clock.advance(1_000); // the scheduler did not run: the next failure says nothing of b
  fail();
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c'], '3 failures in a row, but the third came after a stall');
  await w.clock.advance(200);
  fail();
  await w.clock.advance(200);
  fail();
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c'], '2 counted');
  await w.clock.advance(200);
  fail();
  assert.equal(w.monitor.view().candidates, ['a', 'c'], 'the third counted failure: failed at once, with no timer step');
});

test('a stretched interval (--probe-max-rate) widens the stall rule with it: failures at the stretched pace count', async () => {
  const w = world({ probeMaxRate: 10 }); // 3 nodes per 200 ms = 15/s: every 400 ms
  await w.clock.advance(1_000, 10);
  w.stop.abort();
  await flush();
  for (let i = 0; i < 3; i++) {
    await w.clock.advance(450); // past the unstretched stall limit (200 + 100 + 100 ms)
    w.monitor.probed('b', { ok: false, error: 'no answer' });
  }
  assert.equal(w.monitor.view().candidates, ['a', 'c'], 'three failures 450 ms apart at a 400 ms interval: failed');
});

/** A logger at debug that keeps its lines as { level, msg }. */
function collectingLog(): { log: Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { log, lines };
}
const INFO = 30;
const probeLines = (lines: Array<{ level: number; msg: string }>): Array<{ level: number; msg: string }> =>
  lines.filter((l) => /prob(e|ing)/.test(l.msg)).map(({ level, msg }) => ({ level, msg }));

test('a change of leadership (a stop included) logs the new probe interval at debug; a leader stretched by --probe-max-rate at info', () => {
  const plain = collectingLog();
  const w = world({ standbyProbeIntervalMs: 1_000 }, plain.log);
  w.monitor.leadershipChanged(true);
  w.monitor.leadershipChanged(false); // what a stopping leader does
  w.stop.abort();
  assert.equal(probeLines(plain.lines), [{ level: 20, msg: 'probing every 1000 ms while standby' }]);

  // 3 agents at 200 ms is 15 probes a second; a cap of 5 stretches the leader's interval to 600 ms.
  const capped = collectingLog();
  const c = world({ standbyProbeIntervalMs: 1_000, probeMaxRate: 5 }, capped.log);
  c.monitor.leadershipChanged(false);
  c.monitor.leadershipChanged(true);
  c.stop.abort();
  const stretched = 'probe interval stretched: --probe-max-rate caps the probes of this many agents';
  assert.equal(probeLines(capped.lines), [
    { level: INFO, msg: stretched },
    { level: 20, msg: 'probing every 1000 ms while standby' },
    { level: INFO, msg: stretched },
  ]);
});

test("a standby probes at --standby-probe-interval and its stall rule follows; leading, the failure rules are the leader's again", async () => {
  const w = world({ standbyProbeIntervalMs: 1_000 }); // the interval is 200 ms: every 1 s as a standby
  w.monitor.leadershipChanged(false);
  w.targets.length = 0;
  await w.clock.advance(3_000, 10);
  const probesOfA = w.targets.filter((t) => t.node === 'a').length;
  assert.ok(probesOfA >= 2 && probesOfA <= 3, `a standby probed a ${probesOfA} times in 3 s`);
  w.answer.set('b', false);
  await w.clock.advance(3_000, 10);
  assert.equal(w.monitor.view().candidates, ['a', 'c'], 'failures 1 s apart count for a standby (its stall rule is at its own pace)');
  w.answer.set('b', true);
  await w.clock.advance(1_000, 10);
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c']);
  w.monitor.leadershipChanged(true);
  w.targets.length = 0;
  await w.clock.advance(1_000, 10);
  w.stop.abort();
  await flush();
  assert.ok(w.targets.filter((t) => t.node === 'a').length >= 4, 'leading: every 200 ms again');
  for (let i = 0; i < 3; i++) {
    await w.clock.advance(1_000); // far past the leader's stall limit (200 + 100 + 100 ms)
    w.monitor.probed('c', { ok: false, error: 'no answer' });
  }
  assert.equal(w.monitor.view().candidates, ['a', 'b', 'c'], 'leading: failures 1 s apart are stalls of the scheduler, not counted');
});

test.run();
