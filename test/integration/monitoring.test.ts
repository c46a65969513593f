// The alert rules pass Prometheus's own checks: promtool from Debian's prometheus package
// validates monitoring/alerts.yaml and runs its unit tests (monitoring/alerts.test.yaml).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const monitoring = fileURLToPath(new URL('../../monitoring/', import.meta.url));

test('promtool check rules accepts the alert rules', async () => {
  const { stdout } = await run('promtool', ['check', 'rules', 'alerts.yaml'], { cwd: monitoring });
  assert.match(stdout, /SUCCESS: \d+ rules found/);
});

test('promtool test rules: every alert fires when it should and not before', async () => {
  const { stdout } = await run('promtool', ['test', 'rules', 'alerts.test.yaml'], { cwd: monitoring });
  assert.match(stdout, /SUCCESS/);
});

test.run();
