// Node health as the scheduler keeps it: probes every agent (prober.ts), keeps each node's probe
// state (health.ts nextProbeState) and, after every probe result, cache change and probe
// interval, takes one health step (health.ts healthStep) over the caches. A step that changes
// what placement reads calls onChange (the reconcile loop's kick).
//
// Where a failover starts: a probe fails -> probed() -> check() -> healthStep drops the node
// from the candidates -> onChange -> the next reconcile pass moves its claims.
//
// Cost: a health step looks at every node, so one per probe result or per IpNode event made
// the work grow with the square of the nodes (every agent heartbeats its IpNode every --hb, 2 s:
// 500 events a second at 1,000 nodes). A probe result or IpNode change first asks nodeHealth
// about its own node (recheck); the full step runs only when that node's verdict moves, when
// agents come, go or move their probe address, and on the timer (which catches what time alone
// changes, such as a heartbeat going stale).
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { Logger } from '../lib/logger.js';
import type { SchedulerConfig } from './config.js';
import type { IpNode } from '../api/types.js';
import {
  emptyHealthView,
  healthStep,
  nextProbeState,
  nodeHealth,
  type HealthConfig,
  type HealthObservation,
  type HealthTransition,
  type HealthView,
  type ProbeResult,
  type ProbeState,
} from './health.js';
import type { SchedulerMetrics } from './metrics.js';
import { Prober, type ProbeFn } from './prober.js';
import { probeVerdictChanged, type ProbeReporter } from './probereport.js';
import type { Caches } from './reconciler.js';

export interface NodeMonitorDeps {
  caches: Pick<Caches, 'nodes' | 'ipNodes'>;
  config: Pick<SchedulerConfig, 'monitorMs' | 'probeFailures' | 'probeIntervalMs' | 'probeTimeoutMs'> &
    Partial<Pick<SchedulerConfig, 'probeMaxRate' | 'standbyProbeIntervalMs'>>;
  probe: ProbeFn;
  clock: Clock;
  log: Logger;
  metrics: Pick<SchedulerMetrics, 'probed' | 'forgetNode' | 'nodeStates'>;
  /** Publishes the probe view in IpNode status.probe (the leader only). */
  reporter: Pick<ProbeReporter, 'observe' | 'forget'> & Partial<Pick<ProbeReporter, 'useRules'>>;
  /** A step changed what placement reads. */
  onChange(): void;
}

/**
 * The period of the timer's full health step. It catches only what time alone changes: a
 * heartbeat going stale (--monitor) and a probe answer too old to hold a node (half of it).
 * Probe failures take a step at once (probed -> recheck), so the step does not follow the probe
 * interval: at 1,000 nodes a step over every node every 100 ms was work for nothing. A 16th of
 * --monitor (250 ms at the default 4 s), at least 25 ms, at most 250 ms. Pure.
 */
export function healthTickMs(monitorMs: number): number {
  return Math.max(25, Math.min(250, Math.floor(monitorMs / 16)));
}

export class NodeMonitor {
  private readonly probes = new Map<string, ProbeState>();
  private readonly prober: Prober;
  private current: HealthView = emptyHealthView();
  /** current.candidates as a set, for recheck. */
  private candidates = new Set<string>();
  /** The IpNode object last seen per node: the store replaces an object when it changes. */
  private readonly seen = new Map<string, IpNode>();
  /**
   * The failure rules as the prober runs now: the configured ones with the interval the rate cap
   * stretched it to, so that the stall rule (health.ts stallLimitMs) does not take the longer
   * gaps of a stretched interval for stalls of the scheduler.
   */
  private rules: HealthConfig;

  constructor(
    private readonly d: NodeMonitorDeps,
    signal: AbortSignal,
  ) {
    const { config, clock } = d;
    this.prober = new Prober(
      {
        probe: d.probe,
        intervalMs: config.probeIntervalMs,
        timeoutMs: config.probeTimeoutMs,
        ...(config.probeMaxRate !== undefined ? { maxRate: config.probeMaxRate } : {}),
        ...(config.standbyProbeIntervalMs !== undefined ? { standbyIntervalMs: config.standbyProbeIntervalMs } : {}),
        clock,
        onResult: (node, result) => this.probed(node, result),
      },
      signal,
    );
    this.rules = { ...config };
  }

  /** The view placement reads (the reconciler's health()). */
  view(): HealthView {
    return this.current;
  }

  /** Heartbeats expire without any event: a step every healthTickMs until signal aborts. */
  run(signal: AbortSignal): Promise<void> {
    return every(this.d.clock, healthTickMs(this.d.config.monitorMs), signal, () => this.check());
  }

  /**
   * This replica leads, or not (any more): a standby probes every --standby-probe-interval, and
   * the failure rules (the stall rule's cadence) follow the interval the prober runs at.
   */
  leadershipChanged(leading: boolean): void {
    this.prober.setStandby(!leading);
    this.syncTargets();
  }

  /** Probes follow the IpNodes: one loop per probe address; a node without an IpNode is forgotten. */
  syncTargets(): void {
    const { ipNodes } = this.d.caches;
    this.prober.sync(ipNodes.values().map((n) => ({ node: n.metadata.name ?? '', address: n.spec.probeAddress, port: n.spec.probePort })));
    const intervalMs = this.prober.effectiveIntervalMs();
    const standby = this.prober.isStandby();
    if (intervalMs !== this.rules.probeIntervalMs) {
      const fields = { nodes: ipNodes.size, intervalMs, maxRate: this.d.config.probeMaxRate, standby };
      // Every change of leadership (a stop included) changes the interval: routine, so debug. A
      // leader probing slower than --probe-interval (the rate cap stretched it) is worth telling.
      if (!standby && intervalMs !== this.d.config.probeIntervalMs)
        this.d.log.info(fields, 'probe interval stretched: --probe-max-rate caps the probes of this many agents');
      else this.d.log.debug(fields, `probing every ${intervalMs} ms while ${standby ? 'standby' : 'leading'}`);
      this.rules = { ...this.d.config, probeIntervalMs: intervalMs };
      this.d.reporter.useRules?.(this.rules);
    }
    for (const name of [...this.probes.keys()]) {
      if (ipNodes.get(name)) continue;
      this.probes.delete(name);
      this.d.metrics.forgetNode(name);
      this.d.reporter.forget(name);
    }
  }

  /**
   * The IpNode cache changed (a watch event or a list). An agent that came, went or moved its
   * probe address: the probes follow and a full step runs, as before. Otherwise (a heartbeat,
   * a condition) only the changed nodes are asked again (recheck).
   */
  ipNodesChanged(): void {
    const { ipNodes } = this.d.caches;
    let targets = ipNodes.size !== this.seen.size;
    const changed: string[] = [];
    for (const name of ipNodes.keys()) {
      const now = ipNodes.get(name);
      const before = this.seen.get(name);
      if (!now || now === before) continue;
      changed.push(name);
      this.seen.set(name, now);
      if (!before || before.spec.probeAddress !== now.spec.probeAddress || before.spec.probePort !== now.spec.probePort) targets = true;
    }
    if (!targets) return this.recheck(changed);
    for (const name of this.seen.keys()) if (!ipNodes.has(name)) this.seen.delete(name);
    this.syncTargets();
    this.check();
  }

  /** One probe result: the node's next probe state, then a health step. */
  probed(node: string, result: ProbeResult): void {
    const { clock, config } = this.d;
    const before = this.probes.get(node);
    const state = nextProbeState(before, result, clock.now(), config.probeFailures);
    this.probes.set(node, state);
    this.d.metrics.probed(node, result.ok ? result.rttMs / 1000 : null);
    this.d.reporter.observe(node, state, result.ok ? result.rttMs : null, clock.now());
    if (!result.ok) this.d.log.debug({ node, err: result.error }, 'probe failed');
    // Only a changed verdict is news (every node is looked at on the health tick anyway):
    // looking at all N nodes after each of N probes made probing cost grow with N squared.
    if (probeVerdictChanged(before, state, this.rules)) this.recheck([node]);
  }

  /**
   * A full step when one of these nodes' verdict (candidate, or failed for which reason, holding
   * or not) is not what the view says; nothing otherwise, since a step would change nothing for
   * them (and what time alone changes for the others is the timer's step).
   */
  private recheck(nodes: readonly string[]): void {
    const now = this.d.clock.now();
    const { failures, holding } = this.current;
    for (const name of nodes) {
      const h = nodeHealth(this.observation(name), now, this.rules);
      const same = h.candidate
        ? this.candidates.has(name)
        : failures.get(name) === h.reason && (h.holds === true) === holding.includes(name);
      if (!same) return this.check();
    }
  }

  /** One health step over what the caches and probes say now. */
  check(): void {
    const step = healthStep(this.current, this.observe(), this.d.clock.now(), this.rules);
    this.current = step.view;
    this.candidates = new Set(step.view.candidates);
    this.tell(step.transitions);
    this.d.metrics.nodeStates(step.view.states);
    if (step.changed) this.d.onChange();
  }

  private observe(): HealthObservation[] {
    const { nodes, ipNodes } = this.d.caches;
    const names = new Set([...nodes.keys(), ...ipNodes.keys()]);
    return [...names].map((name) => this.observation(name));
  }

  private observation(name: string): HealthObservation {
    const node = this.d.caches.nodes.get(name);
    const ipNode = this.d.caches.ipNodes.get(name);
    const probe = this.probes.get(name);
    return {
      name,
      ...(node ? { nodeLabels: node.labels, addresses: (node.addresses ?? []).map((a) => a.address) } : {}),
      ...(ipNode ? { ipNode } : {}),
      ...(probe ? { probe } : {}),
    };
  }

  /** Logs a node found failed, once, after the node caches have listed (not at start-up). */
  private tell(transitions: readonly HealthTransition[]): void {
    const { caches, log } = this.d;
    if (!caches.ipNodes.synced || !caches.nodes.synced) return;
    for (const t of transitions) {
      if (t.kind === 'failed') log.info({ node: t.node, reason: t.reason }, t.message);
    }
  }
}
