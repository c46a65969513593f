import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { downtimeAround, parseRequestLog } from './downtime.js';

const log = [
  { t: 1000, ok: true, body: 'node-a' },
  { t: 1020, ok: true, body: 'node-a' },
  { t: 1300, ok: false, error: 'timeout' },
  { t: 1320, ok: false, error: 'timeout' },
  { t: 1650, ok: true, body: 'node-b' },
  { t: 1670, ok: true, body: 'node-b' },
]
  .map((r) => JSON.stringify(r))
  .join('\n');

test('downtime runs from the last success before the fault to the first success after', () => {
  const d = downtimeAround(parseRequestLog(log), 1030);
  assert.ok(d);
  assert.is(d?.downtimeMs, 630);
  assert.is(d?.servedBefore, 'node-a');
  assert.is(d?.servedAfter, 'node-b');
});

test('no failure after the fault means no downtime', () => {
  const clean = parseRequestLog(['{"t":1,"ok":true,"body":"a"}', '{"t":5,"ok":true,"body":"b"}'].join('\n'));
  assert.is(downtimeAround(clean, 2)?.downtimeMs, 0);
});

test('no success after the fault cannot be measured', () => {
  const dead = parseRequestLog(['{"t":1,"ok":true}', '{"t":5,"ok":false,"error":"x"}', 'garbage line'].join('\n'));
  assert.is(downtimeAround(dead, 2), null);
});

test.run();
