import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { durationFlag, parseDuration } from './duration.js';

test('durations in the units the flags use', () => {
  assert.is(parseDuration('200ms'), 200);
  assert.is(parseDuration('2s'), 2000);
  assert.is(parseDuration('1.1s'), 1100);
  assert.is(parseDuration('1m30s'), 90_000);
  assert.is(parseDuration('0'), 0);
});

test('anything else is not a duration', () => {
  for (const bad of ['', '2', 's', '2x', '-1s', '2s junk', '1e3ms']) assert.is(parseDuration(bad), null, bad);
});

test('durationFlag names the flag in its error', () => {
  assert.throws(() => durationFlag('hb', 'soon'), /--hb: "soon" is not a duration/);
});

test.run();
