import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeCondition, setCondition } from './conditions.js';
import type { Condition } from './types.js';

const T1 = '2026-01-01T00:00:00.000Z';
const T2 = '2026-01-01T00:00:05.000Z';

test('setCondition updates a condition where it stands and appends a new type (apimachinery order)', () => {
  let list: Condition[] = setCondition(undefined, { type: 'A', status: 'True', reason: 'One', message: '' }, T1);
  list = setCondition(list, { type: 'B', status: 'False', reason: 'Two', message: '' }, T1);
  const before = list;
  list = setCondition(list, { type: 'A', status: 'False', reason: 'Three', message: 'changed' }, T2);
  assert.equal(
    list.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime]),
    [
      ['A', 'False', 'Three', T2],
      ['B', 'False', 'Two', T1],
    ],
  );
  assert.is(before[0]?.reason, 'One', 'the input list is not changed');
});

test('setCondition keeps lastTransitionTime while the status stays', () => {
  const one = setCondition([], { type: 'A', status: 'True', reason: 'One', message: '' }, T1);
  assert.is(setCondition(one, { type: 'A', status: 'True', reason: 'Other', message: 'x' }, T2)[0]?.lastTransitionTime, T1);
});

test('removeCondition drops one type and tolerates an absent list', () => {
  const list = setCondition(
    setCondition([], { type: 'A', status: 'True', reason: 'r', message: '' }, T1),
    { type: 'B', status: 'True', reason: 'r', message: '' },
    T1,
  );
  assert.equal(
    removeCondition(list, 'A').map((c) => c.type),
    ['B'],
  );
  assert.equal(removeCondition(undefined, 'A'), []);
});

test.run();
