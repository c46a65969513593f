// The scheduler's flags, parsed once into a frozen, typed config.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { Level } from 'pino';
import { durationFlag } from '../lib/duration.js';
import type { Strategy } from './placement.js';

export interface SchedulerConfig {
  kubeconfig?: string;
  /** Prefix lengths of spec.externalIPs claims. */
  mask: { ipv4: number; ipv6: number };
  nodeFilter: Strategy;
  monitorMs: number;
  leaderElect: boolean;
  resyncMs: number;
  lbClass: string;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  probeFailures: number;
  /** Probes per second one replica sends at most; more nodes stretch the interval (prober.ts probeStretch). 0: no cap. */
  probeMaxRate: number;
  /** How often a replica that does not lead probes each agent (prober.ts standbyStretch); at most 1 s. */
  standbyProbeIntervalMs: number;
  rebalance: boolean;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  metricsHost: string;
  /** 0 picks a free port; -1 serves nothing (tests). */
  metricsPort: number;
  logLevel: Level;
  /** Parallel writes to the apiserver. */
  concurrency: number;
  /** How long an address a foreign host answered for is not allocated before it is probed again. */
  conflictRetryMs: number;
}

export const DEFAULTS: Omit<SchedulerConfig, 'identity'> = {
  mask: { ipv4: 32, ipv6: 128 },
  nodeFilter: 'fair',
  // Agents heartbeat every 2s (--hb); two missed beats fail the node, as in the original.
  monitorMs: 4_000,
  leaderElect: true,
  resyncMs: 20_000,
  lbClass: 'ipcontroller.ext/l2',
  // 3 failed probes 100ms apart, each given up after 80ms: a node silent for 280ms is failed
  // 0.28-0.38s after it died, and its claims answer again about 0.1s later. A failure that came
  // in after the scheduler's own loop stalled does not count (health.ts). The window cannot be
  // shorter than the longest time a healthy agent goes unscheduled: measured in the lab (README,
  // "Failover figures") with two busy loops on both cores and a load average of 7-19, no healthy
  // node failed a probe in 10 minutes; on a host starved far beyond that (load 30-40 on 2 cores)
  // agents stalled 300-450ms now and then, and there --probe-interval 200ms --probe-timeout 100ms
  // (0.5-0.7s, the defaults before) is the setting. The agent's --deadman and --stall-withdraw
  // (250ms) sit under the earliest failover; a longer interval only widens that margin.
  probeIntervalMs: 100,
  probeTimeoutMs: 80,
  probeFailures: 3,
  // 1,000 nodes at the 100ms interval: beyond that the interval stretches (2,000 nodes: 200ms),
  // so probing costs a replica no more than at 1,000 nodes (about 15-25% of a core, issue 14.2).
  probeMaxRate: 10_000,
  // A standby's probes only keep its view warm for a takeover: a tenth of the leader's rate.
  standbyProbeIntervalMs: 1_000,
  rebalance: false,
  // client-go's defaults are 15/10/2s; ours are shorter so a standby takes over within 4.5s.
  leaseDurationMs: 4_000,
  renewDeadlineMs: 2_000,
  retryPeriodMs: 500,
  leaseNamespace: 'kube-system',
  leaseName: 'ipcontroller-scheduler',
  metricsHost: '0.0.0.0',
  metricsPort: 9611,
  logLevel: 'info',
  // A cold start's burst (two writes per Service) with 64 in progress (over the API client's pool
  // of 32 connections, main.ts): the apiserver spends less CPU per write than with 16 (etcd and
  // the watch cache batch more); 5,000 Services 9.4-10.5 s against 10.6-11.1 s with 16 on this
  // lab's 2 cores (issue 14.4). Every write is still guarded and preconditioned; the burst is what the
  // apiserver's priority and fairness queues, if it must.
  concurrency: 64,
  conflictRetryMs: 10 * 60_000,
};

export const SCHEDULER_USAGE = `Usage: ipcontroller scheduler [flags]

Turns Services into IpClaims, allocates pool addresses and places claims on healthy agents.

Flags:
  --kubeconfig PATH              kubeconfig file (default: in-cluster, then $KUBECONFIG)
  --mask BITS[,BITS6]            prefix length of spec.externalIPs claims (default 32,128)
  --nodefilter NAME              fair | first-alive (default fair)
  --monitor DURATION             heartbeat age after which a node is failed (default 4s)
  --leader-elect BOOL            elect a leader through a Lease (default true)
  --resync DURATION              full resync interval (default 20s)
  --lb-class NAME                loadBalancerClass handled besides none (default ipcontroller.ext/l2)
  --probe-interval DURATION      agent probe interval (default 100ms)
  --probe-timeout DURATION       agent probe timeout (default 80ms; keep it at most the interval:
                                 probes run one at a time, so a longer one delays the next)
  --probe-failures N             consecutive failed probes that fail a node (default 3). A node is
                                 failed after (N-1) x interval + timeout of silence, found up to one
                                 interval later; a failure that came in after the scheduler itself
                                 did not run (interval + timeout + max(50ms, interval/2) after the
                                 result before it) does not count
  --probe-max-rate N             probes per second one replica sends at most (default 10000: 1,000
                                 nodes at 100ms). More nodes stretch the interval to whole multiples
                                 of it (at most 1s), and a node is failed that much later; 0 = no cap
  --standby-probe-interval DURATION  how often a replica that does not lead probes each agent (default
                                 1s, at most 1s; at or below --probe-interval: as the leader). It
                                 probes at the leader's rate from the moment it leads
  --writes-in-flight N           API writes a reconcile pass has in flight at once (default 64, 1-256).
                                 Only a burst uses them all (a cold start with thousands of Services)
  --conflict-retry DURATION      how long an address a foreign host answered for is not allocated before it is probed again (default 10m)
  --rebalance                    move healthy claims to even out nodes (default off: no churn)
  --leader-elect-lease-duration DURATION   (default 4s)
  --leader-elect-renew-deadline DURATION   (default 2s)
  --leader-elect-retry-period DURATION     (default 500ms)
  --lease-namespace NAME         namespace of the leader Lease (default kube-system)
  --lease-name NAME              name of the leader Lease (default ipcontroller-scheduler)
  --identity NAME                this replica's identity (default hostname_pid)
  --metrics-bind HOST:PORT       /metrics, /healthz, /readyz (default 0.0.0.0:9611)
  --metrics-port PORT            port only, overrides the port of --metrics-bind
  --log-level LEVEL              trace | debug | info | warn | error (default info)
  -h, --help                     show this help

Pools are tried in name order; annotation ipcontroller.ext/pool picks one.
`;

const LEVELS: Level[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function int(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || n < min || n > max)
    throw new Error(`--${flag}: ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`);
  return n;
}

function bool(flag: string, text: string): boolean {
  if (['true', '1', 'yes', ''].includes(text)) return true;
  if (['false', '0', 'no'].includes(text)) return false;
  throw new Error(`--${flag}: ${JSON.stringify(text)} is not true or false`);
}

export type ParsedArgs = { help: true } | { help: false; config: Readonly<SchedulerConfig> };

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  kubeconfig: { type: 'string' },
  mask: { type: 'string' },
  nodefilter: { type: 'string' },
  monitor: { type: 'string' },
  'leader-elect': { type: 'string' },
  resync: { type: 'string' },
  'lb-class': { type: 'string' },
  'probe-interval': { type: 'string' },
  'probe-timeout': { type: 'string' },
  'probe-failures': { type: 'string' },
  'probe-max-rate': { type: 'string' },
  'standby-probe-interval': { type: 'string' },
  'writes-in-flight': { type: 'string' },
  rebalance: { type: 'string' },
  'conflict-retry': { type: 'string' },
  'leader-elect-lease-duration': { type: 'string' },
  'leader-elect-renew-deadline': { type: 'string' },
  'leader-elect-retry-period': { type: 'string' },
  'lease-namespace': { type: 'string' },
  'lease-name': { type: 'string' },
  identity: { type: 'string' },
  'metrics-bind': { type: 'string' },
  'metrics-port': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;

const DURATIONS: Array<[keyof typeof OPTIONS, keyof SchedulerConfig]> = [
  ['monitor', 'monitorMs'],
  ['resync', 'resyncMs'],
  ['probe-interval', 'probeIntervalMs'],
  ['probe-timeout', 'probeTimeoutMs'],
  ['standby-probe-interval', 'standbyProbeIntervalMs'],
  ['conflict-retry', 'conflictRetryMs'],
  ['leader-elect-lease-duration', 'leaseDurationMs'],
  ['leader-elect-renew-deadline', 'renewDeadlineMs'],
  ['leader-elect-retry-period', 'retryPeriodMs'],
];

const STRINGS: Array<[keyof typeof OPTIONS, 'kubeconfig' | 'lbClass' | 'leaseNamespace' | 'leaseName' | 'identity']> = [
  ['kubeconfig', 'kubeconfig'],
  ['lb-class', 'lbClass'],
  ['lease-namespace', 'leaseNamespace'],
  ['lease-name', 'leaseName'],
  ['identity', 'identity'],
];

function parseMask(text: string): SchedulerConfig['mask'] {
  const [v4, v6] = text.split(',');
  return { ipv4: int('mask', v4 ?? '', 1, 32), ipv6: v6 !== undefined ? int('mask', v6, 1, 128) : 128 };
}

function parseNodeFilter(text: string): Strategy {
  if (text !== 'fair' && text !== 'first-alive') throw new Error(`--nodefilter: ${JSON.stringify(text)} is not fair or first-alive`);
  return text;
}

function parseMetricsBind(text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  if (!m) throw new Error(`--metrics-bind: ${JSON.stringify(text)} is not HOST:PORT`);
  return { host: (m[1] ?? '').replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port: int('metrics-bind', m[2] ?? '', 0, 65535) };
}

function parseLevel(text: string): Level {
  if (!LEVELS.includes(text as Level)) throw new Error(`--log-level: ${JSON.stringify(text)} is not one of ${LEVELS.join(', ')}`);
  return text as Level;
}

/** Flags whose value is parsed by a function of their own, applied in this order. */
const PARSERS: Array<[keyof typeof OPTIONS, (c: SchedulerConfig, text: string) => void]> = [
  ['mask', (c, t) => (c.mask = parseMask(t))],
  ['nodefilter', (c, t) => (c.nodeFilter = parseNodeFilter(t))],
  ['leader-elect', (c, t) => (c.leaderElect = bool('leader-elect', t))],
  ['rebalance', (c, t) => (c.rebalance = bool('rebalance', t))],
  ['probe-failures', (c, t) => (c.probeFailures = int('probe-failures', t, 1, 100))],
  ['probe-max-rate', (c, t) => (c.probeMaxRate = int('probe-max-rate', t, 0, 1_000_000))],
  ['writes-in-flight', (c, t) => (c.concurrency = int('writes-in-flight', t, 1, 256))],
  [
    'metrics-bind',
    (c, t) => {
      const { host, port } = parseMetricsBind(t);
      c.metricsHost = host;
      c.metricsPort = port;
    },
  ],
  ['metrics-port', (c, t) => (c.metricsPort = int('metrics-port', t, 0, 65535))],
  ['log-level', (c, t) => (c.logLevel = parseLevel(t))],
];

function validate(c: SchedulerConfig): void {
  if (c.probeTimeoutMs <= 0 || c.probeIntervalMs <= 0) throw new Error('--probe-interval and --probe-timeout must be above 0');
  // Agents count probes as contact for fencing (--fence-after, 3 s by default): keep three in it.
  if (c.standbyProbeIntervalMs > 1_000) throw new Error('--standby-probe-interval must be at most 1s');
  if (c.renewDeadlineMs >= c.leaseDurationMs)
    throw new Error('--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration');
  if (c.retryPeriodMs >= c.renewDeadlineMs)
    throw new Error('--leader-elect-retry-period must be shorter than --leader-elect-renew-deadline');
}

/** Parses argv; throws an Error naming the flag on bad input. */
export function parseSchedulerArgs(argv: string[]): ParsedArgs {
  // --leader-elect without a value means true; parseArgs wants a value for string options.
  const args = argv.map((a) => (a === '--leader-elect' ? '--leader-elect=true' : a === '--rebalance' ? '--rebalance=true' : a));
  const values: Values = parseArgs({ args, strict: true, options: OPTIONS }).values;
  if (values.help) return { help: true };
  const c: SchedulerConfig = { ...DEFAULTS, mask: { ...DEFAULTS.mask }, identity: `${hostname()}_${process.pid}` };
  const text = (flag: keyof typeof OPTIONS): string | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? v : undefined;
  };
  for (const [flag, key] of STRINGS) {
    const v = text(flag);
    if (v !== undefined && (v !== '' || flag !== 'kubeconfig')) c[key] = v;
  }
  for (const [flag, key] of DURATIONS) {
    const v = text(flag);
    if (v !== undefined) (c as unknown as Record<string, number>)[key] = durationFlag(flag, v);
  }
  for (const [flag, apply] of PARSERS) {
    const v = text(flag);
    if (v !== undefined) apply(c, v);
  }
  validate(c);
  return { help: false, config: Object.freeze(c) };
}

/** A full config from defaults and overrides, for programmatic use and tests. */
export function schedulerConfig(overrides: Partial<SchedulerConfig> = {}): Readonly<SchedulerConfig> {
  return Object.freeze({ ...DEFAULTS, identity: `${hostname()}_${process.pid}`, ...overrides });
}
