// The loop's small parts on a ManualClock: kicks coalesce, the retry of a failed pass comes after
// a growing delay with one timer at a time, and a clean pass resets it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../lib/manualclock.js';
import { nextRetryDelay, RetryBackoff, Trigger } from './loop.js';

test('the retry delay: 250 ms, doubling, at most 10 s', () => {
  const delays: number[] = [];
  let d = 0;
  for (let i = 0; i < 8; i++) delays.push((d = nextRetryDelay(d)));
  assert.equal(delays, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
});

test('a failed pass kicks the loop after the delay; failures meanwhile grow the delay but add no timer; success resets', async () => {
  const clock = new ManualClock(0);
  const kicks: number[] = [];
  const retry = new RetryBackoff(clock, new AbortController().signal, () => kicks.push(clock.now()));
  retry.failed();
  retry.failed(); // while the first timer runs
  assert.is(retry.delayMs(), 500);
  await clock.advance(1000, 10);
  assert.equal(kicks, [250], 'one kick, from the first timer');
  retry.failed();
  await clock.advance(2000, 10);
  assert.equal(kicks, [250, 1000 + 1000], 'the next after 1 s');
  retry.succeeded();
  assert.is(retry.delayMs(), 0);
  retry.failed();
  await clock.advance(1000, 10);
  assert.equal(kicks, [250, 2000, 3000 + 250], 'back to 250 ms');
});

test('kicks coalesce into one wake; wait returns at the timeout without a kick', async () => {
  const clock = new ManualClock(0);
  const trigger = new Trigger(clock);
  const signal = new AbortController().signal;
  assert.ok(trigger.take(), 'dirty at start: the first pass runs at once');
  let woke = false;
  const waiting = trigger.wait(5000, signal).then(() => (woke = true));
  trigger.kick();
  trigger.kick();
  await waiting;
  assert.ok(woke);
  assert.ok(trigger.take());
  assert.not.ok(trigger.take(), 'two kicks, one pass');
  let timedOut = false;
  const idle = trigger.wait(5000, signal).then(() => (timedOut = true));
  await clock.advance(4900);
  assert.not.ok(timedOut);
  await clock.advance(100);
  await idle;
  assert.ok(timedOut);
  assert.not.ok(trigger.take(), 'woken by the timeout, not a kick');
});

test.run();
