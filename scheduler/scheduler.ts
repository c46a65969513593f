// Wires the scheduler together: caches fed by list+watch, the prober, node health, leader
// election and the reconcile loop. One AbortController stops it all. Two schedulers can run
// in one process (integration tests): nothing here is module-level.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { PLURAL } from '../api/types.js';
import { parseIpClaim, parseIpNode } from '../api/parse.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { startStatusServer, type StatusServer } from '../lib/http.js';
import { loadKubeConfig } from '../lib/kubeconfig.js';
import { createLogger, type Logger } from '../lib/logger.js';
import type { SchedulerConfig } from './config.js';
import { EventRecorder } from './events.js';
import { nextProbeState, nodeHealth, type NodeFailure, type ProbeResult, type ProbeState } from './health.js';
import {
  kubeFor,
  parseClaimEntry,
  parseIpNodeEntry,
  parseNodeEntry,
  parsePoolEntry,
  parseServiceEntry,
  parseSliceEntry,
  type Kube,
} from './kube.js';
import { kubeLeaseStore, LeaderElector } from './leader.js';
import { SchedulerMetrics } from './metrics.js';
import { defaultProbe, Prober, type ProbeFn } from './prober.js';
import { probeVerdictChanged, ProbeReporter } from './probereport.js';
import { Reconciler, emptyCaches, type Caches, type NodeHealthView } from './reconciler.js';
import { listWatch, Store, type ListWatchOptions, type Parsed } from './watch.js';

export interface SchedulerDeps {
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

/** Wakes the reconcile loop; coalesces any number of kicks into one pass. */
class Trigger {
  private dirty = true;
  private wake: (() => void) | null = null;
  kick(): void {
    this.dirty = true;
    this.wake?.();
  }
  /** Waits for a kick or the timeout; returns whether the loop was kicked. */
  async wait(clock: Clock, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.dirty) return;
    const ctl = new AbortController();
    const onAbort = (): void => ctl.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.wake = () => ctl.abort();
    try {
      await clock.sleep(timeoutMs, ctl.signal);
    } catch {
      /* kicked or stopped */
    } finally {
      this.wake = null;
      signal.removeEventListener('abort', onAbort);
    }
  }
  take(): boolean {
    const was = this.dirty;
    this.dirty = false;
    return was;
  }
}

export async function startScheduler(config: Readonly<SchedulerConfig>, deps: SchedulerDeps = {}): Promise<SchedulerHandle> {
  const clock = deps.clock ?? systemClock;
  const log = (deps.logger ?? createLogger('scheduler', config.logLevel)).child({ identity: config.identity });
  const metrics = deps.metrics ?? new SchedulerMetrics();
  const kc = deps.kubeConfig ?? loadKubeConfig(config.kubeconfig);
  const kube: Kube = kubeFor(kc, 'ipcontroller-scheduler');
  const stopAll = new AbortController();
  const signal = stopAll.signal;
  const trigger = new Trigger();
  const running: Array<Promise<unknown>> = [];

  const caches: Caches = emptyCaches();
  const allSynced = (): boolean => Object.values(caches).every((s: Store<unknown>) => s.synced);

  // Node health: probe states + API state -> candidates; a change kicks the reconcile.
  const probes = new Map<string, ProbeState>();
  const failedAt = new Map<string, number>();
  let healthView: NodeHealthView = { candidates: [], failures: new Map(), failedAt };
  let healthKey = '';
  const checkHealth = (): void => {
    const now = clock.now();
    const names = new Set([...caches.nodes.keys(), ...caches.ipNodes.keys()]);
    const candidates: string[] = [];
    const failures = new Map<string, NodeFailure>();
    const holding: string[] = [];
    const states: Record<string, number> = {};
    for (const name of names) {
      const node = caches.nodes.get(name);
      const ipNode = caches.ipNodes.get(name);
      const probe = probes.get(name);
      const h = nodeHealth(
        { name, ...(node ? { nodeLabels: node.labels } : {}), ...(ipNode ? { ipNode } : {}), ...(probe ? { probe } : {}) },
        now,
        config,
      );
      if (h.candidate) {
        candidates.push(name);
        failedAt.delete(name);
        states.candidate = (states.candidate ?? 0) + 1;
      } else {
        failures.set(name, h.reason);
        if (h.holds) holding.push(name);
        if (!failedAt.has(name)) {
          failedAt.set(name, Math.min(h.since ?? now, now));
          if (caches.ipNodes.synced && caches.nodes.synced) log.info({ node: name, reason: h.reason }, h.message);
        }
        states[h.reason] = (states[h.reason] ?? 0) + 1;
      }
    }
    for (const name of [...failedAt.keys()]) if (!names.has(name)) failedAt.set(name, failedAt.get(name) ?? now);
    candidates.sort();
    healthView = { candidates, failures, failedAt, holding: holding.sort() };
    metrics.nodeStates(states);
    // Node addresses are in the key too: a Node gaining a pool address must stop its allocation at once.
    const addresses = caches.nodes
      .values()
      .map((n) => `${n.name}=${(n.addresses ?? []).map((a) => a.address).join('+')}`)
      .sort()
      .join(',');
    const key = `${candidates.join(',')}|${[...failures]
      .map(([n, r]) => `${n}=${r}${holding.includes(n) ? '(holds)' : ''}`)
      .sort()
      .join(',')}|${addresses}`;
    if (key !== healthKey) {
      healthKey = key;
      trigger.kick();
    }
  };

  // Published in IpNode status.probe by the leader (isLeader is defined below, called later).
  const reporter = new ProbeReporter({
    write: (node, report) => kube.writes.patchIpNodeProbe(node, report),
    isLeader: () => isLeader(),
    log,
    identity: config.identity,
    cfg: config,
  });
  const probeFn = deps.probe ?? defaultProbe(config.identity, clock);
  const prober = new Prober(
    {
      probe: probeFn,
      intervalMs: config.probeIntervalMs,
      timeoutMs: config.probeTimeoutMs,
      clock,
      onResult: (node: string, result: ProbeResult) => {
        const before = probes.get(node);
        const after = nextProbeState(before, result, clock.now(), config.probeFailures);
        probes.set(node, after);
        metrics.probed(node, result.ok ? result.rttMs / 1000 : null);
        reporter.observe(node, after, result.ok ? result.rttMs : null, clock.now());
        if (!result.ok) log.debug({ node, err: result.error }, 'probe failed');
        // Only a changed verdict is news (all nodes are looked at every 250 ms anyway): looking
        // at all N nodes after each of N probes made probing cost grow with N squared.
        if (probeVerdictChanged(before, after, config.probeFailures)) checkHealth();
      },
    },
    signal,
  );
  const syncProbes = (): void => {
    const targets = caches.ipNodes
      .values()
      .map((n) => ({ node: n.metadata.name ?? '', address: n.spec.probeAddress, port: n.spec.probePort }));
    prober.sync(targets);
    for (const name of [...probes.keys()]) {
      if (!caches.ipNodes.get(name)) {
        probes.delete(name);
        metrics.forgetNode(name);
        reporter.forget(name);
      }
    }
  };

  // Caches.
  const watchLog = log.child({ part: 'watch' });
  const start = <T>(
    what: string,
    path: string,
    store: Store<T>,
    list: () => Promise<{ items: unknown[]; resourceVersion: string }>,
    parse: (raw: unknown) => Parsed<T> | null,
    onChange: () => void,
  ): void => {
    const opts: ListWatchOptions<T> = {
      what,
      path,
      list,
      parse,
      store,
      onChange,
      kubeConfig: kc,
      clock,
      log: watchLog,
      onError: () => metrics.reconcileError(`watch-${what}`),
    };
    running.push(listWatch(opts, signal));
  };
  const kick = (): void => trigger.kick();
  // A hand-written IpClaim or IpNode the parser refuses is left out of the caches; say so once per object and reason.
  const reported = new Map<string, string>();
  const reportingInvalid =
    <T>(
      kind: string,
      parse: (raw: unknown) => { ok: true; value: unknown } | { ok: false; reason: string },
      entry: (raw: unknown) => Parsed<T> | null,
    ) =>
    (raw: unknown): Parsed<T> | null => {
      const checked = parse(raw);
      if (!checked.ok) {
        const name = String((raw as { metadata?: { name?: unknown } } | null)?.metadata?.name ?? '');
        if (reported.get(`${kind}/${name}`) !== checked.reason) {
          reported.set(`${kind}/${name}`, checked.reason);
          log.warn({ kind, name, reason: checked.reason }, `${kind} ignored: it does not parse`);
        }
      }
      return entry(raw);
    };
  start('services', '/api/v1/services', caches.services, kube.lists.services, parseServiceEntry, kick);
  start('nodes', '/api/v1/nodes', caches.nodes, kube.lists.nodes, parseNodeEntry, checkHealth);
  start('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', caches.slices, kube.lists.slices, parseSliceEntry, kick);
  start(
    'ipnodes',
    kube.clients.nodes.watchPath,
    caches.ipNodes,
    () => kube.lists.custom(PLURAL.IpNode),
    reportingInvalid('IpNode', parseIpNode, parseIpNodeEntry),
    () => {
      syncProbes();
      checkHealth();
    },
  );
  start(
    'ipclaims',
    kube.clients.claims.watchPath,
    caches.claims,
    () => kube.lists.custom(PLURAL.IpClaim),
    reportingInvalid('IpClaim', parseIpClaim, parseClaimEntry),
    kick,
  );
  start('ipclaimpools', kube.clients.pools.watchPath, caches.pools, () => kube.lists.custom(PLURAL.IpClaimPool), parsePoolEntry, kick);

  // Heartbeats expire without any event: look again every probe interval.
  running.push(
    (async () => {
      while (!signal.aborted) {
        checkHealth();
        try {
          await clock.sleep(Math.min(config.probeIntervalMs, 250), signal);
        } catch {
          return;
        }
      }
    })(),
  );

  // Leadership: writes happen only under a leader-scoped signal.
  let leaderScope: AbortController | null = null;
  const currentScope = (): AbortController | null => leaderScope;
  const setLeading = (leading: boolean): void => {
    metrics.leadership(leading);
    if (leading) {
      leaderScope = new AbortController();
      trigger.kick();
    } else {
      leaderScope?.abort();
      leaderScope = null;
    }
  };
  let elector: LeaderElector | null = null;
  if (config.leaderElect) {
    elector = new LeaderElector(
      kubeLeaseStore(kube.coordination, config.leaseNamespace, config.leaseName),
      {
        identity: config.identity,
        leaseMs: config.leaseDurationMs,
        renewDeadlineMs: config.renewDeadlineMs,
        retryMs: config.retryPeriodMs,
      },
      clock,
      log.child({ part: 'leader' }),
      setLeading,
    );
    running.push(elector.run(signal));
  } else {
    setLeading(true);
  }
  // Leadership ends on this replica's clock at the Lease's renew deadline, whatever the
  // apiserver has (not yet) told it.
  const leaseValidUntil = (): number => (elector ? elector.validUntil() : Infinity);
  const isLeader = (): boolean => leaderScope !== null && !leaderScope.signal.aborted && clock.now() < leaseValidUntil();

  const recorder = new EventRecorder({
    send: (e) => kube.writes.createEvent(e),
    clock,
    log: log.child({ part: 'events' }),
    onDrop: () => metrics.eventDropped(),
  });
  const reconciler = new Reconciler({
    caches,
    writes: kube.writes,
    events: { emit: (e) => (isLeader() ? recorder.emit(e) : undefined) },
    metrics,
    log: log.child({ part: 'reconcile' }),
    clock,
    cfg: {
      lbClass: config.lbClass,
      mask: config.mask,
      strategy: config.nodeFilter,
      rebalance: config.rebalance,
      concurrency: config.concurrency,
      conflictRetryMs: config.conflictRetryMs,
    },
    health: () => healthView,
  });

  let syncedResolve: () => void = () => {};
  const syncedPromise = new Promise<void>((r) => (syncedResolve = r));
  // Failed writes are retried by a later pass, kicked after a growing delay; passes that
  // events trigger meanwhile still run, so one failing write never holds up a failover.
  let retryDelay = 0;
  let retryPending = false;
  const retryLater = (): void => {
    retryDelay = Math.min(Math.max(retryDelay * 2, 250), 10_000);
    if (retryPending) return;
    retryPending = true;
    clock
      .sleep(retryDelay, signal)
      .then(() => trigger.kick())
      .catch(() => undefined)
      .finally(() => (retryPending = false));
  };
  running.push(
    (async () => {
      while (!signal.aborted) {
        await trigger.wait(clock, allSynced() ? config.resyncMs : 50, signal);
        if (signal.aborted) return;
        trigger.take();
        if (!allSynced()) continue;
        syncedResolve();
        const scope = currentScope();
        if (!scope || scope.signal.aborted || !isLeader()) continue;
        checkHealth();
        trigger.take();
        const started = clock.now();
        try {
          const result = await reconciler.pass(scope.signal, leaseValidUntil);
          if (result.errors > 0) retryLater();
          else retryDelay = 0;
          if (result.writes > 0) log.debug({ writes: result.writes, ms: clock.now() - started }, 'reconciled');
        } catch (err) {
          if (!scope.signal.aborted && isLeader()) {
            metrics.reconcileError('pass');
            log.error({ err: String(err) }, 'reconcile pass failed');
            retryLater();
          }
        }
        metrics.reconciled((clock.now() - started) / 1000);
      }
    })(),
  );

  let server: StatusServer | undefined;
  if (config.metricsPort >= 0) {
    server = await startStatusServer({
      host: config.metricsHost,
      port: config.metricsPort,
      registry: metrics.registry,
      healthz: () => ({ ok: !signal.aborted }),
      readyz: () => ({ ok: allSynced(), detail: { leader: isLeader() } }),
    });
  }
  log.info({ leaderElect: config.leaderElect, nodeFilter: config.nodeFilter, lbClass: config.lbClass }, 'scheduler started');

  let stopped: Promise<void> | null = null;
  const stop = (options: { releaseLease?: boolean } = {}): Promise<void> => {
    stopped ??= (async () => {
      if (options.releaseLease !== false) await elector?.release();
      leaderScope?.abort();
      stopAll.abort();
      await Promise.allSettled(running);
      await server?.close();
      await Promise.race([recorder.idle(), clock.sleep(2_000).catch(() => undefined)]);
      log.info('scheduler stopped');
    })();
    return stopped;
  };

  return {
    identity: config.identity,
    metrics,
    registry: metrics.registry,
    isLeader,
    synced: () => syncedPromise,
    ...(server ? { statusPort: server.port } : {}),
    stop,
  };
}
