import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { ManualClock } from '../lib/manualclock.js';
import { EventRecorder } from './events.js';
import type { CoreEvent } from './kube.js';

function event(message: string, reason = 'IPAllocated'): CoreEvent {
  return { namespace: 'ns', serviceName: 'web', serviceUid: 'u', type: 'Normal', reason, message };
}

test('the same Event within the window is sent once; after it, again', async () => {
  const sent: string[] = [];
  const clock = new ManualClock(0);
  const r = new EventRecorder({ send: async (e) => void sent.push(e.message), clock, log: pino({ level: 'silent' }), dedupeMs: 1000 });
  r.emit(event('a'));
  r.emit(event('a'));
  r.emit(event('b'));
  await r.idle();
  assert.equal(sent, ['a', 'b']);
  await clock.advance(1500, 1500);
  r.emit(event('a'));
  await r.idle();
  assert.equal(sent, ['a', 'b', 'a']);
});

/** A recorder sending one at a time, whose sends wait until release(); counts drops. */
function gated(maxQueued?: number) {
  const seen = { dropped: 0, sent: [] as string[] };
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const r = new EventRecorder({
    send: async (e) => {
      await gate;
      seen.sent.push(e.message);
    },
    clock: new ManualClock(0),
    log: pino({ level: 'silent' }),
    ...(maxQueued ? { maxQueued } : {}),
    concurrency: 1,
    onDrop: () => seen.dropped++,
  });
  return { r, seen, release: () => release() };
}

test('a burst beyond the queue is dropped and counted, never blocking', async () => {
  const { r, seen, release } = gated(3);
  for (let i = 0; i < 10; i++) r.emit(event(`m${i}`));
  assert.is(seen.dropped, 6, 'one in flight, three queued');
  release();
  await r.idle();
  assert.equal(seen.sent, ['m0', 'm1', 'm2', 'm3']);
});

test('a failing send does not stop the queue', async () => {
  const sent: string[] = [];
  const r = new EventRecorder({
    send: async (e) => {
      if (e.message === 'bad') throw new Error('forbidden');
      sent.push(e.message);
    },
    clock: new ManualClock(0),
    log: pino({ level: 'silent' }),
  });
  r.emit(event('bad'));
  r.emit(event('good'));
  await r.idle();
  assert.equal(sent, ['good']);
});

test('close() drops what is queued and ignores later Events; the one in flight finishes', async () => {
  const { r, seen, release } = gated();
  for (const m of ['a', 'b', 'c']) r.emit(event(m));
  const idle = r.idle();
  r.close();
  r.emit(event('d'));
  release();
  await idle;
  assert.equal(seen.sent, ['a']);
  assert.is(seen.dropped, 2);
  assert.is(r.dropped, 2);
});

test.run();
