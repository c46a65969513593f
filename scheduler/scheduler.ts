// Wires the scheduler together from named parts: caches fed by list+watch through the Kube port
// (kubeport.ts), node health (nodemonitor.ts: probes and health steps), the leader scope
// (leader.ts) and the reconcile loop (loop.ts). One AbortController stops it all. Two schedulers
// can run in one process (integration tests): nothing here is module-level.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { parseIpClaim, parseIpNode } from '../api/parse.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { startStatusServer, type StatusServer } from '../lib/http.js';
import { loadKubeConfig } from '../lib/kubeconfig.js';
import { createLogger, type Logger } from '../lib/logger.js';
import type { SchedulerConfig } from './config.js';
import type { HealthView } from './health.js';
import { EventRecorder } from './events.js';
import { parseClaimEntry, parseIpNodeEntry, parseNodeEntry, parsePoolEntry, parseServiceEntry, parseSliceEntry } from './kube.js';
import { kubePort, type SchedulerKube, type Watched } from './kubeport.js';
import { LeaderScope } from './leader.js';
import { ReconcileLoop, Trigger } from './loop.js';
import { SchedulerMetrics } from './metrics.js';
import { NodeMonitor } from './nodemonitor.js';
import { defaultProbe, type ProbeFn } from './prober.js';
import { ProbeReporter } from './probereport.js';
import { Reconciler, emptyCaches, type Caches } from './reconciler.js';
import type { Parsed, Store } from './watch.js';

export interface SchedulerDeps {
  /** The Kubernetes port (lists, watches, writes, Lease); built from kubeConfig when absent. */
  kube?: SchedulerKube;
  /** Used only to build the port when `kube` is absent; default: config.kubeconfig, or the usual places. */
  kubeConfig?: KubeConfig;
  logger?: Logger;
  metrics?: SchedulerMetrics;
  clock?: Clock;
  probe?: ProbeFn;
}

export interface SchedulerHandle {
  identity: string;
  metrics: SchedulerMetrics;
  registry: Registry;
  isLeader(): boolean;
  /** Resolves once every cache has listed. */
  synced(): Promise<void>;
  /** Port of the status server, when one runs. */
  statusPort?: number;
  /**
   * Stops everything; a leader gives up its Lease first so a standby takes over at once.
   * releaseLease: false stops as a crash would (for tests).
   */
  stop(options?: { releaseLease?: boolean }): Promise<void>;
}

/** What every part shares: the clock, the logger, the metrics and the Kube port. */
interface Env {
  clock: Clock;
  log: Logger;
  metrics: SchedulerMetrics;
  kube: SchedulerKube;
}

function environment(config: Readonly<SchedulerConfig>, deps: SchedulerDeps): Env {
  const clock = deps.clock ?? systemClock;
  const log = (deps.logger ?? createLogger('scheduler', config.logLevel)).child({ identity: config.identity });
  const metrics = deps.metrics ?? new SchedulerMetrics();
  const kube =
    deps.kube ??
    kubePort(deps.kubeConfig ?? loadKubeConfig(config.kubeconfig), {
      clock,
      log: log.child({ part: 'watch' }),
      writesInFlight: config.concurrency,
    });
  return { clock, log, metrics, kube };
}

export async function startScheduler(config: Readonly<SchedulerConfig>, deps: SchedulerDeps = {}): Promise<SchedulerHandle> {
  const env = environment(config, deps);
  const { clock, log, metrics, kube } = env;
  const stopAll = new AbortController();
  const signal = stopAll.signal;
  const trigger = new Trigger(clock);
  const caches = emptyCaches();
  const synced = (): boolean => Object.values(caches).every((s: Store<unknown>) => s.synced);
  const leader = new LeaderScope(clock, (leading) => {
    metrics.leadership(leading);
    monitor.leadershipChanged(leading);
    if (leading) trigger.kick();
  });
  const monitor = nodeMonitor(config, env, { caches, leader, onChange: () => trigger.kick(), probe: deps.probe }, signal);
  // Until it wins the Lease a replica probes as a standby (without an election it leads at once).
  if (config.leaderElect) monitor.leadershipChanged(false);
  const recorder = eventRecorder(env);
  const reconciler = reconcilerFor(config, env, { caches, recorder, leader, health: () => monitor.view() });
  const firstSync = deferred();
  const loop = new ReconcileLoop(
    {
      trigger,
      clock,
      leader,
      pass: (scope, validUntil) => reconciler.pass(scope, validUntil),
      refreshHealth: () => monitor.check(),
      synced,
      onSynced: firstSync.resolve,
      metrics,
      log,
      resyncMs: config.resyncMs,
    },
    signal,
  );
  const running: Array<Promise<unknown>> = [
    ...feedCaches(env, caches, monitor, { kick: () => trigger.kick(), signal }),
    monitor.run(signal),
    leader.run(election(config, kube, log), signal),
    loop.run(),
  ];
  const server = await statusServer(config, metrics, { live: () => !signal.aborted, synced, isLeader: () => leader.isLeader() });
  log.info({ leaderElect: config.leaderElect, nodeFilter: config.nodeFilter, lbClass: config.lbClass }, 'scheduler started');

  let stopped: Promise<void> | null = null;
  const stop = (options: { releaseLease?: boolean } = {}): Promise<void> => {
    stopped ??= (async () => {
      await leader.stop(options.releaseLease !== false);
      stopAll.abort();
      await Promise.allSettled(running);
      await server?.close();
      await Promise.race([recorder.idle(), clock.sleep(2_000).catch(() => undefined)]);
      recorder.close();
      log.info('scheduler stopped');
    })();
    return stopped;
  };
  return {
    identity: config.identity,
    metrics,
    registry: metrics.registry,
    isLeader: () => leader.isLeader(),
    synced: () => firstSync.promise,
    ...(server ? { statusPort: server.port } : {}),
    stop,
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Node health: probes (published in IpNode status.probe by the leader) and health steps; a change kicks the loop. */
function nodeMonitor(
  config: Readonly<SchedulerConfig>,
  env: Env,
  parts: { caches: Caches; leader: LeaderScope; onChange(): void; probe: ProbeFn | undefined },
  signal: AbortSignal,
): NodeMonitor {
  const { clock, log, metrics, kube } = env;
  const reporter = new ProbeReporter({
    write: (node, report) => kube.writes.patchIpNodeProbe(node, report),
    isLeader: () => parts.leader.isLeader(),
    log,
    identity: config.identity,
    cfg: config,
  });
  const probe = parts.probe ?? defaultProbe(config.identity, clock, config.probeFailures);
  return new NodeMonitor({ caches: parts.caches, config, probe, clock, log, metrics, reporter, onChange: parts.onChange }, signal);
}

/**
 * Starts one list+watch per cache, each until the signal aborts. Nodes and IpNodes feed node
 * health (IpNodes also the probe targets); the rest only the reconcile.
 */
function feedCaches(env: Env, caches: Caches, monitor: NodeMonitor, on: { kick(): void; signal: AbortSignal }): Array<Promise<void>> {
  const invalid = new InvalidObjects(env.log);
  const feed = <T>(what: Watched, store: Store<T>, parse: (raw: unknown) => Parsed<T> | null, onChange: () => void): Promise<void> =>
    env.kube.listWatch(what, { store, parse, onChange, onError: () => env.metrics.reconcileError(`watch-${what}`) }, on.signal);
  return [
    feed('services', caches.services, parseServiceEntry, on.kick),
    feed('nodes', caches.nodes, parseNodeEntry, () => monitor.check()),
    feed('endpointslices', caches.slices, parseSliceEntry, on.kick),
    feed('ipnodes', caches.ipNodes, invalid.reporting('IpNode', parseIpNode, parseIpNodeEntry), () => monitor.ipNodesChanged()),
    feed('ipclaims', caches.claims, invalid.reporting('IpClaim', parseIpClaim, parseClaimEntry), on.kick),
    feed('ipclaimpools', caches.pools, parsePoolEntry, on.kick),
  ];
}

/** A hand-written IpClaim or IpNode the parser refuses is left out of the caches; says so once per object and reason. */
class InvalidObjects {
  private readonly reported = new Map<string, string>();
  constructor(private readonly log: Logger) {}

  reporting<T>(
    kind: string,
    parse: (raw: unknown) => { ok: true; value: unknown } | { ok: false; reason: string },
    entry: (raw: unknown) => Parsed<T> | null,
  ): (raw: unknown) => Parsed<T> | null {
    return (raw) => {
      const checked = parse(raw);
      if (!checked.ok) this.report(kind, String((raw as { metadata?: { name?: unknown } } | null)?.metadata?.name ?? ''), checked.reason);
      return entry(raw);
    };
  }

  private report(kind: string, name: string, reason: string): void {
    if (this.reported.get(`${kind}/${name}`) === reason) return;
    this.reported.set(`${kind}/${name}`, reason);
    this.log.warn({ kind, name, reason }, `${kind} ignored: it does not parse`);
  }
}

/** The Lease election from the config, or null for a single replica that always leads (--leader-elect=false). */
function election(config: Readonly<SchedulerConfig>, kube: SchedulerKube, log: Logger): Parameters<LeaderScope['run']>[0] {
  if (!config.leaderElect) return null;
  return {
    store: kube.lease(config.leaseNamespace, config.leaseName),
    cfg: {
      identity: config.identity,
      leaseMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryMs: config.retryPeriodMs,
    },
    log: log.child({ part: 'leader' }),
  };
}

function eventRecorder(env: Env): EventRecorder {
  return new EventRecorder({
    send: (e) => env.kube.writes.createEvent(e),
    clock: env.clock,
    log: env.log.child({ part: 'events' }),
    onDrop: () => env.metrics.eventDropped(),
  });
}

function reconcilerFor(
  config: Readonly<SchedulerConfig>,
  env: Env,
  p: { caches: Caches; recorder: EventRecorder; leader: LeaderScope; health: () => HealthView },
): Reconciler {
  return new Reconciler({
    caches: p.caches,
    writes: env.kube.writes,
    // Events only while leading: a standby or a stale leader tells users nothing.
    events: { emit: (e) => (p.leader.isLeader() ? p.recorder.emit(e) : undefined) },
    metrics: env.metrics,
    log: env.log.child({ part: 'reconcile' }),
    clock: env.clock,
    cfg: {
      lbClass: config.lbClass,
      mask: config.mask,
      strategy: config.nodeFilter,
      rebalance: config.rebalance,
      concurrency: config.concurrency,
      conflictRetryMs: config.conflictRetryMs,
    },
    health: p.health,
  });
}

/** /metrics, /healthz and /readyz, unless the config says no port (-1). */
async function statusServer(
  config: Readonly<SchedulerConfig>,
  metrics: SchedulerMetrics,
  state: { live(): boolean; synced(): boolean; isLeader(): boolean },
): Promise<StatusServer | undefined> {
  if (config.metricsPort < 0) return undefined;
  return startStatusServer({
    host: config.metricsHost,
    port: config.metricsPort,
    registry: metrics.registry,
    healthz: () => ({ ok: state.live() }),
    readyz: () => ({ ok: state.synced(), detail: { leader: state.isLeader() } }),
  });
}
