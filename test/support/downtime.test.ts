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

test('a request sent into the outage counts when it ends, even after a later request was answered', () => {
  // The fault at 1000: requests sent at 1010 and 1030 time out at 1260 and 1280; the one sent
  // at 1150 (after the move) is answered at 1160. The client met no answer from 995 to 1160.
  const results = parseRequestLog(
    [
      { s: 990, t: 995, ok: true, body: 'node-a' },
      { s: 1150, t: 1160, ok: true, body: 'node-b' },
      { s: 1010, t: 1260, ok: false, error: 'timeout' },
      { s: 1030, t: 1280, ok: false, error: 'timeout' },
      { s: 1170, t: 1180, ok: true, body: 'node-b' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n'),
  );
  const d = downtimeAround(results, 1000);
  assert.is(d?.downtimeMs, 165);
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
