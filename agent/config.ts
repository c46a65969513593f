// Flags -> one frozen, typed configuration, parsed once in main.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import ipaddr from 'ipaddr.js';
import type { Level } from 'pino';
import { durationFlag } from '../lib/duration.js';
import { parseStrictIp } from '../api/ip.js';

export const AGENT_USAGE = `Usage: ipcontroller agent [flags]

Puts the IpClaims assigned to this node on its interface and announces them with gratuitous
ARP / unsolicited neighbour advertisements; heartbeats its IpNode, answers the scheduler's
health probes, fences itself when cut off and drains on SIGTERM.

Flags:
  --iface NAME            interface to add addresses to (default: the one whose subnet holds
                          the IP, else the default-route interface); a claim's spec.link wins
  --kubeconfig PATH       kubeconfig file (default: in-cluster, then $KUBECONFIG)
  --hostname NAME         this node's name (default: $NODE_NAME, then the host name)
  --mask BITS             prefix length for a claim address without one (default 32 / 128)
  --hb DURATION           heartbeat interval (default 2s)
  --resync DURATION       full resync interval (default 20s)
  --garp-count N          announcements per address after it is added (default 5)
  --garp-interval DUR     time between them (default 1.1s: past Linux's 1 s ARP locktime)
  --garp-refresh DUR      re-announce every held address this often (default 0 = off)
  --fence-after DUR       withdraw addresses after this long with neither API server
                          contact nor a scheduler probe (default 3s; 0 = never)
  --stall-withdraw DUR    a process that did not run for longer than this (frozen, starved)
                          removes every address at once on resume and takes back only what
                          freshly listed claims still give it (default 250ms; 0 = never)
  --deadman DUR           the kernel answers ARP / NS for this node's addresses only while the
                          agent has run within this long (nftables sets that time out), so a
                          frozen, starved or killed agent's node falls silent (default 250ms,
                          under the scheduler's earliest failover; 0 = off)
  --drain-timeout DUR     on SIGTERM, wait at most this long for claims to move (default 20s)
  --conflict-probes N     probes (ARP with sender 0.0.0.0 / NS from ::) before an address no
                          agent of ours held goes up (default 2; 0 = no probing, no defence)
  --conflict-window DUR   the probes go out evenly in this window and answers count until it
                          ends (default 60ms)
  --conflict-retry DUR    a probed address a foreign host answered for stays down this long,
                          then is probed again (default 10m)
  --conflict-withdraw     withdraw a held address a foreign host keeps claiming after one
                          defence (default: keep serving and report it)
  --probe-address IP      address written to IpNode.spec.probeAddress (default: the primary
                          address of --iface, else the Node's InternalIP)
  --metrics-bind H:PORT   /healthz, /readyz, /metrics listen address (default 0.0.0.0:9610)
  --log-level LEVEL       trace, debug, info, warn, error (default info)
  -h, --help              show this help
`;

export interface AgentConfig {
  nodeName: string;
  iface?: string;
  kubeconfig?: string;
  mask?: number;
  hbMs: number;
  resyncMs: number;
  garpCount: number;
  garpIntervalMs: number;
  garpRefreshMs: number;
  fenceAfterMs: number;
  stallWithdrawMs: number;
  deadmanMs: number;
  drainTimeoutMs: number;
  probeAddress?: string;
  conflictProbes: number;
  conflictWindowMs: number;
  conflictRetryMs: number;
  conflictWithdraw: boolean;
  metricsHost: string;
  metricsPort: number;
  logLevel: Level;
}

export const AGENT_DEFAULTS = {
  hbMs: 2000,
  resyncMs: 20_000,
  garpCount: 5,
  // MetalLB's choice: a second announcement lands after Linux's 1 s ARP locktime, so a
  // neighbour that ignored the first (entry updated < 1 s ago) takes the second.
  garpIntervalMs: 1100,
  garpRefreshMs: 0,
  // Just above the scheduler's failure window (3 failed probes 200 ms apart plus the probe
  // timeout, about 1 s), with room for a GC pause or a slow write.
  fenceAfterMs: 3000,
  // The scheduler's earliest failover of a node that stops answering: 3 probes 100 ms apart,
  // each failing after 80 ms, is 0.28 s. A process that did not run for longer than this may have
  // lost its claims, and its kernel answers ARP for them meanwhile, so it lets go at once. With
  // two busy loops on both cores (load 7-19) no agent stalled that long in 10 minutes; under a
  // load of 35 on 2 cores agents stalled 300-450 ms now and then and each withdrew everything
  // until a relist (README, "Failover figures"): there, run the scheduler at --probe-interval
  // 200ms --probe-timeout 100ms and give this 500ms.
  stallWithdrawMs: 250,
  // Under the scheduler's earliest failover (0.28 s at its defaults): once a frozen node's claims
  // can have moved, its kernel has stopped answering for them. Refreshed every 62 ms, so a busy
  // event loop has four chances.
  deadmanMs: 250,
  // Inside Kubernetes' default 30 s termination grace period.
  drainTimeoutMs: 20_000,
  // Two probes 30 ms apart, decided 60 ms after the first: a host on the LAN answers an ARP
  // request within a millisecond or two, and the whole window is what a new Service's first
  // client waits extra (measured in the lab). RFC 5227's own 1-2 s timings are for hosts
  // configuring themselves, not for a Service that is already waiting.
  conflictProbes: 2,
  conflictWindowMs: 60,
  conflictRetryMs: 10 * 60_000,
  conflictWithdraw: false,
  metricsHost: '0.0.0.0',
  metricsPort: 9610,
  logLevel: 'info' as Level,
} as const;

export type ParsedArgs = { help: true } | { help: false; config: Readonly<AgentConfig> };

const LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function integerFlag(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max)
    throw new Error(`--${flag}: ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`);
  return n;
}

/** "0.0.0.0:9610", "[::]:9610", ":9610" or "9610". */
export function parseBind(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim()) ?? /^()()(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`--metrics-bind: ${JSON.stringify(text)} is not host:port`);
  const host = m[1] || m[2] || '0.0.0.0';
  if (host !== 'localhost' && !ipaddr.isValid(host)) throw new Error(`--metrics-bind: ${JSON.stringify(host)} is not an IP address`);
  return { host, port: integerFlag('metrics-bind', m[3] ?? '', 0, 65535) };
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  iface: { type: 'string' },
  kubeconfig: { type: 'string' },
  hostname: { type: 'string' },
  mask: { type: 'string' },
  hb: { type: 'string' },
  resync: { type: 'string' },
  'garp-count': { type: 'string' },
  'garp-interval': { type: 'string' },
  'garp-refresh': { type: 'string' },
  'fence-after': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'stall-withdraw': { type: 'string' },
  deadman: { type: 'string' },
  'probe-address': { type: 'string' },
  'conflict-probes': { type: 'string' },
  'conflict-window': { type: 'string' },
  'conflict-retry': { type: 'string' },
  'conflict-withdraw': { type: 'boolean' },
  'metrics-bind': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

type DurationKey =
  | 'hbMs'
  | 'resyncMs'
  | 'garpIntervalMs'
  | 'garpRefreshMs'
  | 'fenceAfterMs'
  | 'stallWithdrawMs'
  | 'deadmanMs'
  | 'drainTimeoutMs'
  | 'conflictWindowMs'
  | 'conflictRetryMs';

const DURATIONS: Array<[keyof typeof OPTIONS, DurationKey]> = [
  ['hb', 'hbMs'],
  ['resync', 'resyncMs'],
  ['garp-interval', 'garpIntervalMs'],
  ['garp-refresh', 'garpRefreshMs'],
  ['fence-after', 'fenceAfterMs'],
  ['stall-withdraw', 'stallWithdrawMs'],
  ['deadman', 'deadmanMs'],
  ['drain-timeout', 'drainTimeoutMs'],
  ['conflict-window', 'conflictWindowMs'],
  ['conflict-retry', 'conflictRetryMs'],
];

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;

/** The flag's text, or undefined when it is absent or empty (an empty value means the default). */
function textOf(values: Values, flag: keyof typeof OPTIONS): string | undefined {
  const v = values[flag];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function checkProbeAddress(text: string | undefined): void {
  if (text === undefined) return;
  // It becomes IpNode spec.probeAddress, which the CRD checks as strictly as api/ip.ts does: refuse it here, once.
  const probe = parseStrictIp(text);
  if (!probe.ok) throw new Error(`--probe-address: ${JSON.stringify(text)} ${probe.reason}`);
}

function validate(config: AgentConfig): void {
  if (config.conflictProbes > 0 && config.conflictWindowMs <= 0)
    throw new Error('--conflict-window must be above 0 when --conflict-probes is');
  if (config.hbMs <= 0) throw new Error('--hb must be above 0');
  if (config.resyncMs <= 0) throw new Error('--resync must be above 0');
  if (config.garpIntervalMs <= 0) throw new Error('--garp-interval must be above 0');
}

/** The optional settings: absent from the config unless given. */
function optionals(values: Values): Pick<AgentConfig, 'iface' | 'kubeconfig' | 'mask' | 'probeAddress'> {
  const iface = textOf(values, 'iface');
  const kubeconfig = textOf(values, 'kubeconfig');
  const mask = textOf(values, 'mask');
  const probeAddress = textOf(values, 'probe-address');
  return {
    ...(iface !== undefined ? { iface } : {}),
    ...(kubeconfig !== undefined ? { kubeconfig } : {}),
    ...(mask !== undefined ? { mask: integerFlag('mask', mask, 0, 128) } : {}),
    ...(probeAddress !== undefined ? { probeAddress } : {}),
  };
}

export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  const values: Values = parseArgs({ args: argv, strict: true, allowPositionals: false, options: OPTIONS }).values;
  if (values.help) return { help: true };
  const nodeName = textOf(values, 'hostname') || env.NODE_NAME || hostname();
  const bind = parseBind(textOf(values, 'metrics-bind') ?? `${AGENT_DEFAULTS.metricsHost}:${AGENT_DEFAULTS.metricsPort}`);
  const logLevel = typeof values['log-level'] === 'string' ? values['log-level'] : AGENT_DEFAULTS.logLevel;
  if (!LEVELS.includes(logLevel)) throw new Error(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LEVELS.join(', ')}`);
  checkProbeAddress(typeof values['probe-address'] === 'string' ? values['probe-address'] : undefined);
  const garpCount = textOf(values, 'garp-count');
  const conflictProbes = textOf(values, 'conflict-probes');
  const config: AgentConfig = {
    ...AGENT_DEFAULTS,
    nodeName,
    garpCount: garpCount !== undefined ? integerFlag('garp-count', garpCount, 0, 1000) : AGENT_DEFAULTS.garpCount,
    conflictProbes: conflictProbes !== undefined ? integerFlag('conflict-probes', conflictProbes, 0, 10) : AGENT_DEFAULTS.conflictProbes,
    conflictWithdraw: values['conflict-withdraw'] === true || AGENT_DEFAULTS.conflictWithdraw,
    metricsHost: bind.host,
    metricsPort: bind.port,
    logLevel: logLevel as Level,
    ...optionals(values),
  };
  for (const [flag, key] of DURATIONS) {
    const text = textOf(values, flag);
    if (text !== undefined) config[key] = durationFlag(flag, text);
  }
  validate(config);
  return { help: false, config: Object.freeze(config) };
}
