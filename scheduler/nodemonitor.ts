// Node health as the scheduler keeps it: probes every agent (prober.ts), keeps each node's probe
// state (health.ts nextProbeState) and, after every probe result, cache change and probe
// interval, takes one health step (health.ts healthStep) over the caches. A step that changes
// what placement reads calls onChange (the reconcile loop's kick).
//
// Where a failover starts: a probe fails -> probed() -> check() -> healthStep drops the node
// from the candidates -> onChange -> the next reconcile pass moves its claims.
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import type { Logger } from '../lib/logger.js';
import type { SchedulerConfig } from './config.js';
import {
  emptyHealthView,
  healthStep,
  nextProbeState,
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
  config: Pick<SchedulerConfig, 'monitorMs' | 'probeFailures' | 'probeIntervalMs' | 'probeTimeoutMs'>;
  probe: ProbeFn;
  clock: Clock;
  log: Logger;
  metrics: Pick<SchedulerMetrics, 'probed' | 'forgetNode' | 'nodeStates'>;
  /** Publishes the probe view in IpNode status.probe (the leader only). */
  reporter: Pick<ProbeReporter, 'observe' | 'forget'>;
  /** A step changed what placement reads. */
  onChange(): void;
}

export class NodeMonitor {
  private readonly probes = new Map<string, ProbeState>();
  private readonly prober: Prober;
  private current: HealthView = emptyHealthView();

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
        clock,
        onResult: (node, result) => this.probed(node, result),
      },
      signal,
    );
  }

  /** The view placement reads (the reconciler's health()). */
  view(): HealthView {
    return this.current;
  }

  /** Heartbeats expire without any event: a step every probe interval (at most 250 ms) until signal aborts. */
  run(signal: AbortSignal): Promise<void> {
    return every(this.d.clock, Math.min(this.d.config.probeIntervalMs, 250), signal, () => this.check());
  }

  /** Probes follow the IpNodes: one loop per probe address; a node without an IpNode is forgotten. */
  syncTargets(): void {
    const { ipNodes } = this.d.caches;
    this.prober.sync(ipNodes.values().map((n) => ({ node: n.metadata.name ?? '', address: n.spec.probeAddress, port: n.spec.probePort })));
    for (const name of [...this.probes.keys()]) {
      if (ipNodes.get(name)) continue;
      this.probes.delete(name);
      this.d.metrics.forgetNode(name);
      this.d.reporter.forget(name);
    }
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
    if (probeVerdictChanged(before, state, config.probeFailures)) this.check();
  }

  /** One health step over what the caches and probes say now. */
  check(): void {
    const step = healthStep(this.current, this.observe(), this.d.clock.now(), this.d.config);
    this.current = step.view;
    this.tell(step.transitions);
    this.d.metrics.nodeStates(step.view.states);
    if (step.changed) this.d.onChange();
  }

  private observe(): HealthObservation[] {
    const { nodes, ipNodes } = this.d.caches;
    const names = new Set([...nodes.keys(), ...ipNodes.keys()]);
    return [...names].map((name) => {
      const node = nodes.get(name);
      const ipNode = ipNodes.get(name);
      const probe = this.probes.get(name);
      return {
        name,
        ...(node ? { nodeLabels: node.labels, addresses: (node.addresses ?? []).map((a) => a.address) } : {}),
        ...(ipNode ? { ipNode } : {}),
        ...(probe ? { probe } : {}),
      };
    });
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
