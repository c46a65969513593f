import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoized } from './memo.js';

test('an answer is computed once per argument, null answers included', () => {
  const asked: string[] = [];
  const f = memoized((s: string) => {
    asked.push(s);
    return s === 'bad' ? null : s.length;
  }, 10);
  assert.equal([f('ab'), f('ab'), f('bad'), f('bad'), f('abc')], [2, 2, null, null, 3]);
  assert.equal(asked, ['ab', 'bad', 'abc']);
});

test('when full it starts over: older answers are computed again, the newest is kept', () => {
  const asked: number[] = [];
  const f = memoized((n: number) => (asked.push(n), n * 2), 2);
  for (const n of [1, 2, 3, 3, 1]) f(n);
  assert.equal(asked, [1, 2, 3, 1]);
});

test('a throwing function keeps nothing for that argument', () => {
  let calls = 0;
  const f = memoized((s: string) => {
    calls++;
    if (s === 'x') throw new Error('bad');
    return s;
  }, 4);
  assert.throws(() => f('x'));
  assert.throws(() => f('x'));
  assert.is(calls, 2);
});

test.run();
