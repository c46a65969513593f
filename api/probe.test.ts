import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { judgeProbeAnswer } from './probe.js';

test('an answer from the probed node is a success and carries draining', () => {
  assert.equal(judgeProbeAnswer('node-a', 200, '{"ok":true,"node":"node-a","draining":false}'), { ok: true, draining: false });
  assert.equal(judgeProbeAnswer('node-a', 200, '{"ok":true,"node":"node-a","draining":true}'), { ok: true, draining: true });
});

test('anything else is a failed probe that says why', () => {
  assert.equal(judgeProbeAnswer('node-a', 503, ''), { ok: false, error: 'HTTP 503' });
  assert.equal(judgeProbeAnswer('node-a', 200, 'not json'), { ok: false, error: 'answer is not JSON' });
  assert.equal(judgeProbeAnswer('node-a', 200, '{"ok":false}'), { ok: false, error: 'answer says ok: false' });
  assert.equal(judgeProbeAnswer('node-a', 200, 'null'), { ok: false, error: 'answer says ok: false' });
  assert.equal(judgeProbeAnswer('node-a', 200, '{"ok":true,"node":"node-b"}'), { ok: false, error: 'answered as node node-b' });
});

test.run();
