import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { flush, ManualClock } from '../lib/manualclock.js';
import { MemoryLease } from '../test/support/memorykube.js';
import { LeaderElector } from './leader.js';

const cfg = (identity: string) => ({ identity, leaseMs: 4000, renewDeadlineMs: 2000, retryMs: 500 });
const log = pino({ level: 'silent' });

test('one of two candidates leads; the other waits a full lease duration of an unchanged record', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const a = new LeaderElector(lease, cfg('a'), { clock, log, onChange: () => {} });
  const b = new LeaderElector(lease, cfg('b'), { clock, log, onChange: () => {} });
  await a.tick();
  await b.tick();
  assert.ok(a.isLeader());
  assert.not.ok(b.isLeader());
  // a dies (stops ticking). b takes over only after leaseMs of an unchanged record.
  await clock.advance(3900);
  await b.tick();
  assert.not.ok(b.isLeader());
  await clock.advance(200);
  await b.tick();
  assert.ok(b.isLeader(), 'unchanged for 4.1s since b first saw it');
});

test('standby takes over after the lease duration; transitions count up', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const changes: string[] = [];
  const a = new LeaderElector(lease, cfg('a'), { clock, log, onChange: (l) => changes.push(`a:${l}`) });
  const b = new LeaderElector(lease, cfg('b'), { clock, log, onChange: (l) => changes.push(`b:${l}`) });
  await a.tick();
  await b.tick(); // b first sees the record now
  await clock.advance(4000);
  await b.tick();
  assert.ok(b.isLeader());
  assert.is(lease.record?.holder, 'b');
  assert.is(lease.record?.transitions, 1);
  // a stopped renewing: it stepped down on its own clock at its renew deadline (2 s), before
  // b could take over (4 s); coming back it sees b's record and stays a follower.
  await a.tick();
  assert.not.ok(a.isLeader());
  assert.is(lease.record?.holder, 'b');
  assert.equal(changes, ['a:true', 'a:false', 'b:true']);
});

test('a leader that cannot reach the apiserver steps down after the renew deadline', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const a = new LeaderElector(lease, cfg('a'), { clock, log, onChange: () => {} });
  await a.tick();
  lease.down = true;
  await clock.advance(1500);
  await a.tick();
  assert.ok(a.isLeader());
  await clock.advance(600);
  assert.not.ok(a.isLeader(), 'stepped down at the deadline without waiting for a tick');
  await a.tick();
  assert.not.ok(a.isLeader());
});

test('a leader whose Lease request hangs (partition, frozen apiserver) stops leading at its renew deadline, on its own clock', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const changes: boolean[] = [];
  const a = new LeaderElector(lease, cfg('a'), { clock, log, onChange: (l) => changes.push(l) });
  await a.tick();
  const until = a.validUntil();
  assert.is(until, clock.now() + 2000);
  lease.hang = true;
  await clock.advance(500);
  const pending = a.tick(); // never answered
  await clock.advance(1400);
  assert.ok(a.isLeader(), 'still inside the renew deadline');
  await clock.advance(200);
  assert.not.ok(a.isLeader());
  assert.equal(changes, [true, false], 'the step-down was reported while the request still hung');
  await clock.advance(1000);
  await pending; // the request timed out (half the renew deadline) instead of hanging for ever
});

test('a renew answered only after the renew deadline does not extend leadership', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const changes: boolean[] = [];
  const a = new LeaderElector(lease, { ...cfg('a'), requestTimeoutMs: 10_000 }, { clock, log, onChange: (l) => changes.push(l) });
  await a.tick();
  const slowGet = lease.get.bind(lease);
  lease.get = async (signal) => {
    await clock.sleep(2500, signal);
    return slowGet(signal);
  };
  const pending = a.tick();
  await clock.advance(3000);
  await pending;
  assert.not.ok(a.isLeader(), 'a renew sent 2.5 s ago proves nothing about the last 2 s');
  assert.equal(changes, [true, false], 'no second "became leader" from the late answer');
});

test('release hands over at once; a racing update gets a conflict, not a second leader', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const a = new LeaderElector(lease, cfg('a'), { clock, log, onChange: () => {} });
  const b = new LeaderElector(lease, cfg('b'), { clock, log, onChange: () => {} });
  const c = new LeaderElector(lease, cfg('c'), { clock, log, onChange: () => {} });
  await a.tick();
  await a.release();
  assert.not.ok(a.isLeader());
  assert.is(lease.record?.holder, '');
  await Promise.all([b.tick(), c.tick()]);
  assert.is([b.isLeader(), c.isLeader()].filter(Boolean).length, 1);
});

test('a release while a renew is in flight still gives the Lease up (the renew lands first, the release after it)', async () => {
  const lease = new MemoryLease();
  const clock = new ManualClock();
  const changes: boolean[] = [];
  const a = new LeaderElector(lease, cfg('a'), { clock, log, onChange: (l) => changes.push(l) });
  await a.tick();
  // The next renew has read the Lease and its write is on the wire when the process is told to stop.
  let land: () => void = () => {};
  const onTheWire = new Promise<void>((r) => (land = r));
  // Writes reach the apiserver in the order they were sent: the renew's first.
  const update = lease.update.bind(lease);
  let wire: Promise<unknown> = onTheWire;
  lease.update = (r) => {
    const sent = wire.then(() => update(r));
    wire = sent.catch(() => undefined);
    return sent;
  };
  const renewing = a.tick();
  await flush();
  const releasing = a.release();
  await flush();
  land();
  await Promise.all([renewing, releasing]);
  assert.is(lease.record?.holder, '', 'released: a standby takes over at once');
  assert.not.ok(a.isLeader());
  assert.equal(changes, [true, false], 'the late renew does not make it leader again');
});

test.run();
