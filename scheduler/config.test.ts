import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSchedulerArgs } from './config.js';

function config(argv: string[]) {
  const r = parseSchedulerArgs(argv);
  if (r.help) throw new Error('help');
  return r.config;
}

test('defaults', () => {
  const c = config([]);
  assert.equal(c.mask, { ipv4: 32, ipv6: 128 });
  assert.is(c.nodeFilter, 'fair');
  assert.is(c.monitorMs, 4000);
  assert.is(c.leaderElect, true);
  assert.is(c.probeIntervalMs, 100);
  assert.is(c.probeTimeoutMs, 80);
  assert.is(c.probeFailures, 3);
  assert.is(c.leaseDurationMs, 4000);
  assert.is(c.renewDeadlineMs, 2000);
  assert.is(c.retryPeriodMs, 500);
  assert.is(c.leaseNamespace, 'kube-system');
  assert.is(c.lbClass, 'ipcontroller.ext/l2');
  assert.is(c.metricsHost, '0.0.0.0');
  assert.is(c.metricsPort, 9611);
  assert.is(c.rebalance, false);
  assert.is(c.standbyProbeIntervalMs, 1000);
  assert.match(c.identity, /_\d+$/);
  assert.ok(Object.isFrozen(c));
});

test('flags in the forms people write them', () => {
  const c = config([
    '--leader-elect=false',
    '--mask',
    '24,64',
    '--nodefilter=first-alive',
    '--monitor=3s',
    '--probe-interval',
    '250ms',
    '--probe-failures=4',
    '--rebalance',
    '--metrics-bind=[::1]:9000',
    '--identity=me',
    '--lb-class=x/y',
  ]);
  assert.is(c.leaderElect, false);
  assert.equal(c.mask, { ipv4: 24, ipv6: 64 });
  assert.is(c.nodeFilter, 'first-alive');
  assert.is(c.monitorMs, 3000);
  assert.is(c.probeIntervalMs, 250);
  assert.is(c.probeFailures, 4);
  assert.is(c.rebalance, true);
  assert.is(c.metricsHost, '::1');
  assert.is(c.metricsPort, 9000);
  assert.is(c.identity, 'me');
  assert.is(c.lbClass, 'x/y');
  assert.is(config(['--leader-elect']).leaderElect, true);
  assert.is(config(['--metrics-port=0']).metricsPort, 0);
  assert.is(config(['--standby-probe-interval=500ms']).standbyProbeIntervalMs, 500);
  assert.is(config([]).concurrency, 64);
  assert.is(config(['--writes-in-flight=16']).concurrency, 16);
});

test('bad values name the flag', () => {
  assert.throws(() => config(['--monitor=soon']), /--monitor: "soon" is not a duration/);
  assert.throws(() => config(['--nodefilter=random']), /--nodefilter/);
  assert.throws(() => config(['--leader-elect=maybe']), /--leader-elect/);
  assert.throws(() => config(['--probe-failures=0']), /--probe-failures/);
  assert.throws(() => config(['--leader-elect-renew-deadline=5s']), /renew-deadline must be shorter/);
  assert.throws(() => config(['--nope']), /Unknown option/);
  assert.throws(() => config(['--standby-probe-interval=2s']), /--standby-probe-interval must be at most 1s/);
  assert.throws(() => config(['--writes-in-flight=0']), /--writes-in-flight: "0" is not a whole number from 1 to 256/);
  assert.equal(parseSchedulerArgs(['--help']), { help: true });
});

test.run();
