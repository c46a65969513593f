import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { every } from './every.js';
import { flush, ManualClock } from './manualclock.js';

test('runs at once, then once per period measured from each start, until aborted', async () => {
  const clock = new ManualClock(0);
  const stop = new AbortController();
  const ran: number[] = [];
  const done = every(clock, 100, stop.signal, () => {
    ran.push(clock.now());
  });
  await flush();
  await clock.advance(350, 10);
  stop.abort();
  await done;
  assert.equal(ran, [0, 100, 200, 300]);
});

test('a step that throws ends the loop: it rejects with that error', async () => {
  const rejects = every(new ManualClock(0), 50, new AbortController().signal, () => {
    throw new Error('boom');
  });
  let caught = '';
  await rejects.catch((err: Error) => (caught = err.message));
  assert.is(caught, 'boom');
});

test('a period given as a function is read after each step', async () => {
  const clock = new ManualClock(0);
  const stop = new AbortController();
  const ran: number[] = [];
  let period = 100;
  const done = every(
    clock,
    () => period,
    stop.signal,
    () => {
      ran.push(clock.now());
      period = 200;
    },
  );
  await flush();
  await clock.advance(500, 10);
  stop.abort();
  await done;
  assert.equal(ran, [0, 200, 400]);
});

test.run();
