import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AGENT_DEFAULTS, parseAgentArgs, parseBind } from './config.js';

const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const parsed = parseAgentArgs(argv, env);
  if (parsed.help) throw new Error('help');
  return parsed.config;
};

test('defaults: 2s heartbeat, 20s resync, 5 announcements 1.1s apart, no refresh, 3s fence, 0.0.0.0:9610', () => {
  const c = config(['--hostname', 'node-a']);
  assert.equal(
    [
      c.nodeName,
      c.hbMs,
      c.resyncMs,
      c.garpCount,
      c.garpIntervalMs,
      c.garpRefreshMs,
      c.fenceAfterMs,
      c.drainTimeoutMs,
      c.metricsHost,
      c.metricsPort,
      c.logLevel,
    ],
    ['node-a', 2000, 20_000, 5, 1100, 0, 3000, 20_000, '0.0.0.0', 9610, 'info'],
  );
  assert.is(c.iface, undefined);
  assert.ok(Object.isFrozen(c));
  assert.is(AGENT_DEFAULTS.garpIntervalMs, 1100);
});

test('the node name comes from --hostname, then NODE_NAME', () => {
  assert.is(config([], { NODE_NAME: 'from-env' }).nodeName, 'from-env');
  assert.is(config(['--hostname', 'flag'], { NODE_NAME: 'from-env' }).nodeName, 'flag');
});

test('every flag is parsed into its typed field', () => {
  const c = config([
    '--iface',
    'eth1',
    '--kubeconfig',
    '/k',
    '--hostname',
    'n',
    '--mask',
    '24',
    '--hb',
    '500ms',
    '--resync',
    '1m',
    '--garp-count',
    '3',
    '--garp-interval',
    '200ms',
    '--garp-refresh',
    '30s',
    '--fence-after',
    '0',
    '--drain-timeout',
    '5s',
    '--probe-address',
    '192.0.2.11',
    '--metrics-bind',
    '[::1]:9999',
    '--log-level',
    'debug',
  ]);
  assert.equal(
    [
      c.iface,
      c.kubeconfig,
      c.mask,
      c.hbMs,
      c.resyncMs,
      c.garpCount,
      c.garpIntervalMs,
      c.garpRefreshMs,
      c.fenceAfterMs,
      c.drainTimeoutMs,
      c.probeAddress,
      c.metricsHost,
      c.metricsPort,
      c.logLevel,
    ],
    ['eth1', '/k', 24, 500, 60_000, 3, 200, 30_000, 0, 5000, '192.0.2.11', '::1', 9999, 'debug'],
  );
});

test('bad values are refused with the flag named', () => {
  assert.throws(() => config(['--hb', 'soon']), /--hb/);
  assert.throws(() => config(['--garp-count', '-1']), /--garp-count/);
  assert.throws(() => config(['--probe-address', 'node-a']), /--probe-address/);
  assert.throws(() => config(['--probe-address', '192.0.2.011']), /--probe-address: "192.0.2.011" must not have leading 0s/);
  assert.throws(() => config(['--probe-address', '127.1']), /--probe-address: "127.1" is not an IP address/);
  assert.throws(() => config(['--log-level', 'loud']), /--log-level/);
  assert.throws(() => config(['--metrics-bind', 'x:y']), /--metrics-bind/);
  assert.throws(() => config(['--nope']), /nope/);
  assert.ok(parseAgentArgs(['--help']).help);
});

test('bind addresses: host:port, [v6]:port, :port and a bare port', () => {
  assert.equal(parseBind('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.equal(parseBind('[::]:9610'), { host: '::', port: 9610 });
  assert.equal(parseBind(':9610'), { host: '0.0.0.0', port: 9610 });
  assert.equal(parseBind('9611'), { host: '0.0.0.0', port: 9611 });
});

test.run();
