import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { flush, ManualClock } from '../lib/manualclock.js';
import type { FrameSender } from './frames.js';
import { ConflictGuard, type Candidate } from './guard.js';
import { AgentMetrics } from './metrics.js';
import { formatMac, parseMac, type Frame } from './packets.js';
import type { Sighting } from './probes.js';
import type { SightingSource } from './receiver.js';

const OUR_MAC = parseMac('02:00:5e:00:53:01');
const FOREIGN = '02:00:5e:00:53:99';

function setup(overrides: Partial<{ withdrawOnConflict: boolean }> = {}) {
  const clock = new ManualClock();
  const sent: Array<{ kind: string; at: number; mac: string }> = [];
  const inbox: Sighting[] = [];
  let changes = 0;
  const sender: FrameSender = {
    send: (_ifindex: number, frame: Frame) => {
      sent.push({ kind: frame.kind, at: clock.now(), mac: formatMac(frame.bytes.subarray(6, 12)) });
      return { ok: true };
    },
    close: () => undefined,
  };
  const source: SightingSource = { open: () => ({ drain: () => inbox.splice(0), close: () => undefined }) };
  const abort = new AbortController();
  const metrics = new AgentMetrics();
  const guard = new ConflictGuard(
    { count: 2, windowMs: 60, retryMs: 600_000, withdrawOnConflict: overrides.withdrawOnConflict ?? false, pollMs: 50 },
    { source, sender, clock, logger: pino({ level: 'silent' }), metrics, changed: () => void changes++ },
    abort.signal,
  );
  guard.setOwnMacs(['02:00:5e:00:53:01', '02:00:5E:00:53:02']);
  return { clock, sent, inbox, guard, metrics, abort, changes: () => changes };
}

const candidate = (status?: Candidate['status'], ip = '192.0.2.10'): Candidate => ({
  claim: 'c1',
  ip,
  ifindex: 2,
  mac: OUR_MAC,
  status,
  pool: 'p',
});

test('a new address waits for the probe window, then goes up; probes are ARP from 0.0.0.0', async () => {
  const t = setup();
  assert.equal(t.guard.gate(candidate()), { kind: 'wait' });
  await flush();
  assert.equal(
    t.sent.map((s) => s.kind),
    ['arp_probe'],
  );
  await t.clock.advance(30, 5);
  assert.equal(
    t.sent.map((s) => s.kind),
    ['arp_probe', 'arp_probe'],
  );
  assert.is(t.changes(), 0);
  await t.clock.advance(40, 5);
  assert.is(t.changes(), 1, 'the agent is asked to reconcile when the window ends');
  assert.equal(t.guard.gate(candidate()), { kind: 'up' });
  t.abort.abort();
});

test('a failover move (claim Assigned by another node of ours) goes up without a probe', () => {
  const t = setup();
  assert.equal(t.guard.gate(candidate({ phase: 'Assigned', node: 'n2' })), { kind: 'up' });
  assert.equal(t.sent, []);
  t.abort.abort();
});

test('an answer from a foreign MAC is a conflict that holds until --conflict-retry; our other node is not', async () => {
  const t = setup();
  t.guard.gate(candidate());
  t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: '02:00:5e:00:53:02' });
  await t.clock.advance(10, 5);
  t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: FOREIGN });
  await t.clock.advance(10, 5);
  const gate = t.guard.gate(candidate());
  assert.is(gate.kind, 'conflict');
  assert.match(gate.kind === 'conflict' ? gate.message : '', FOREIGN);
  assert.equal(t.guard.conflict('c1')?.mac, FOREIGN);
  assert.match(await t.metrics.registry.metrics(), /ipcontroller_agent_address_conflicts_total\{pool="p",when="probe"\} 1/);
  await t.clock.advance(600_000, 60_000);
  assert.equal(t.guard.gate(candidate()), { kind: 'wait' }, 'probed again after the retry time');
  t.abort.abort();
});

test('holding: the first foreign claim is defended with an announcement, a second within 10 s is reported; serving goes on unless --conflict-withdraw', async () => {
  for (const withdraw of [false, true]) {
    const t = setup({ withdrawOnConflict: withdraw });
    t.guard.setHeld([{ claim: 'c1', ip: '192.0.2.10', ifindex: 2, mac: OUR_MAC, pool: 'p' }]);
    t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: FOREIGN });
    await t.clock.advance(60, 10);
    assert.equal(
      t.sent.map((s) => `${s.kind} ${s.mac}`),
      ['garp_request 02:00:5e:00:53:01', 'garp_reply 02:00:5e:00:53:01'],
    );
    assert.is(t.guard.conflict('c1'), undefined, 'one claim is only defended');
    t.inbox.push({ kind: 'probes', address: '192.0.2.10', mac: FOREIGN });
    await t.clock.advance(60, 10);
    assert.is(t.guard.conflict('c1'), undefined, 'a probe for a held address is answered by the kernel, not a conflict');
    t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: FOREIGN });
    await t.clock.advance(60, 10);
    assert.equal(t.guard.conflict('c1')?.holding, true);
    assert.is(t.guard.withdraw('c1', undefined), withdraw);
    assert.is(t.sent.length, 2, 'defended once');
    t.abort.abort();
  }
});

test('holding: another agent of ours claiming the address means the claim moved: it comes down at once, without a conflict, until the claim changes', async () => {
  const t = setup();
  t.guard.setHeld([{ claim: 'c1', ip: '192.0.2.10', ifindex: 2, mac: OUR_MAC, pool: 'p', resourceVersion: '7' }]);
  t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: '02:00:5e:00:53:02' });
  await t.clock.advance(60, 10);
  assert.is(t.changes(), 1, 'the agent reconciles at once');
  assert.ok(t.guard.withdraw('c1', '7'), 'down while the claim is as it was when the peer claimed it');
  assert.not.ok(t.guard.conflictWithdraw('c1'), 'not reported as a conflict');
  assert.is(t.guard.conflict('c1'), undefined);
  assert.is(t.sent.length, 0, 'not defended against our own agent');
  assert.not.ok(t.guard.withdraw('c1', '8'), 'a newer version still naming this node: up again');

  t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: '02:00:5e:00:53:02' });
  await t.clock.advance(60, 10);
  assert.ok(t.guard.withdraw('c1', '7'));
  await t.clock.advance(2000, 100);
  assert.not.ok(t.guard.withdraw('c1', '7'), 'no news of the claim for the hold: up again (the peer was stale)');

  t.inbox.push({ kind: 'claims', address: '192.0.2.10', mac: '02:00:5e:00:53:01' });
  await t.clock.advance(60, 10);
  assert.not.ok(t.guard.withdraw('c1', '7'), "this node's own announcement is not a peer's");
  t.abort.abort();
});

test.run();
