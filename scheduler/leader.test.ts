import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import type { Clock } from '../lib/clock.js';
import { LeaderElector, type LeaseRecord, type LeaseStore } from './leader.js';

/** An in-memory Lease with resourceVersion semantics. */
class MemoryLease implements LeaseStore {
  record: LeaseRecord | null = null;
  private rv = 0;
  down = false;
  async get(): Promise<LeaseRecord | null> {
    if (this.down) throw new Error('apiserver unreachable');
    return this.record ? { ...this.record } : null;
  }
  async create(r: LeaseRecord): Promise<boolean> {
    if (this.down) throw new Error('apiserver unreachable');
    if (this.record) return false;
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return true;
  }
  async update(r: LeaseRecord): Promise<boolean> {
    if (this.down) throw new Error('apiserver unreachable');
    if (!this.record || r.resourceVersion !== this.record.resourceVersion) return false;
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return true;
  }
}

class FakeClock implements Clock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
  sleep(): Promise<void> {
    return Promise.resolve();
  }
}

const cfg = (identity: string) => ({ identity, leaseMs: 4000, renewDeadlineMs: 2000, retryMs: 500 });
const log = pino({ level: 'silent' });

test('one of two candidates leads; the other waits a full lease duration of an unchanged record', async () => {
  const lease = new MemoryLease();
  const clock = new FakeClock();
  const a = new LeaderElector(lease, cfg('a'), clock, log, () => {});
  const b = new LeaderElector(lease, cfg('b'), clock, log, () => {});
  await a.tick();
  await b.tick();
  assert.ok(a.isLeader());
  assert.not.ok(b.isLeader());
  // a dies (stops ticking). b takes over only after leaseMs of an unchanged record.
  clock.t += 3900;
  await b.tick();
  assert.not.ok(b.isLeader());
  clock.t += 200;
  await b.tick();
  assert.ok(b.isLeader(), 'unchanged for 4.1s since b first saw it');
});

test('standby takes over after the lease duration; transitions count up', async () => {
  const lease = new MemoryLease();
  const clock = new FakeClock();
  const changes: string[] = [];
  const a = new LeaderElector(lease, cfg('a'), clock, log, (l) => changes.push(`a:${l}`));
  const b = new LeaderElector(lease, cfg('b'), clock, log, (l) => changes.push(`b:${l}`));
  await a.tick();
  await b.tick(); // b first sees the record now
  clock.t += 4000;
  await b.tick();
  assert.ok(b.isLeader());
  assert.is(lease.record?.holder, 'b');
  assert.is(lease.record?.transitions, 1);
  // a comes back: it sees b's record and steps down at once.
  await a.tick();
  assert.not.ok(a.isLeader());
  assert.is(lease.record?.holder, 'b');
  assert.equal(changes, ['a:true', 'b:true', 'a:false']);
});

test('a leader that cannot reach the apiserver steps down after the renew deadline', async () => {
  const lease = new MemoryLease();
  const clock = new FakeClock();
  const a = new LeaderElector(lease, cfg('a'), clock, log, () => {});
  await a.tick();
  lease.down = true;
  clock.t += 1500;
  await a.tick();
  assert.ok(a.isLeader());
  clock.t += 600;
  await a.tick();
  assert.not.ok(a.isLeader());
});

test('release hands over at once; a racing update gets a conflict, not a second leader', async () => {
  const lease = new MemoryLease();
  const clock = new FakeClock();
  const a = new LeaderElector(lease, cfg('a'), clock, log, () => {});
  const b = new LeaderElector(lease, cfg('b'), clock, log, () => {});
  const c = new LeaderElector(lease, cfg('c'), clock, log, () => {});
  await a.tick();
  await a.release();
  assert.not.ok(a.isLeader());
  assert.is(lease.record?.holder, '');
  await Promise.all([b.tick(), c.tick()]);
  assert.is([b.isLeader(), c.isLeader()].filter(Boolean).length, 1);
});

test.run();
