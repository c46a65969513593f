// The scheduler's Prometheus metrics: one module owning its Registry, speaking domain verbs.
// Built in main (or per test) and passed down; nothing registers globally.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AllocationProblem, MoveReason } from '../api/reasons.js';

const P = 'ipcontroller_scheduler_';

export class SchedulerMetrics {
  readonly registry: Registry;
  private readonly claims: Gauge<'phase'>;
  private readonly poolSize: Gauge<'pool'>;
  private readonly poolInUse: Gauge<'pool'>;
  private readonly allocations: Counter<'pool'>;
  private readonly allocationFailures: Counter<'reason'>;
  private readonly releases: Counter;
  private readonly failovers: Counter<'reason'>;
  private readonly failoverSeconds: Histogram;
  private readonly probeRtt: Gauge<'node'>;
  private readonly probeFailures: Counter<'node'>;
  private readonly nodes: Gauge<'state'>;
  private readonly leader: Gauge;
  private readonly leaderTransitions: Counter;
  private readonly reconcileErrors: Counter<'stage'>;
  private readonly reconcileSeconds: Histogram;
  private readonly eventsDropped: Counter;
  private readonly apiWrites: Counter<'kind'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> =>
      new Gauge<L>({ name: `${P}${name}`, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> =>
      new Counter<L>({ name: `${P}${name}`, help, labelNames, registers });
    this.claims = gauge('claims', 'IpClaims by status.phase (None before an agent reports)', ['phase']);
    this.poolSize = gauge('pool_addresses', 'Allocatable addresses per IpClaimPool (capped at 2^53-1)', ['pool']);
    this.poolInUse = gauge('pool_addresses_in_use', 'Allocated addresses per IpClaimPool', ['pool']);
    this.allocations = counter('allocations_total', 'Pool addresses allocated to Services', ['pool']);
    this.allocationFailures = counter('allocation_failures_total', 'Failed allocations by reason', ['reason']);
    this.releases = counter('releases_total', 'Addresses released from Services');
    this.failovers = counter('failovers_total', 'Claims moved to another node, by reason', ['reason']);
    this.failoverSeconds = new Histogram({
      name: `${P}failover_duration_seconds`,
      help: 'Time from a node being found failed to the claim written to its new node',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers,
    });
    this.probeRtt = gauge('probe_rtt_seconds', 'Round-trip time of the last successful probe per node', ['node']);
    this.probeFailures = counter('probe_failures_total', 'Failed probes per node', ['node']);
    this.nodes = gauge('nodes', 'Known nodes by state (candidate or the reason they are not)', ['state']);
    this.leader = gauge('leader', '1 while this replica holds the leader Lease');
    this.leaderTransitions = counter('leader_transitions_total', 'Times this replica gained or lost leadership');
    this.reconcileErrors = counter('reconcile_errors_total', 'Errors while reconciling, by stage', ['stage']);
    this.reconcileSeconds = new Histogram({
      name: `${P}reconcile_duration_seconds`,
      help: 'Duration of one reconcile pass over all Services and claims',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.eventsDropped = counter('events_dropped_total', 'Events not sent because the queue was full');
    this.apiWrites = counter('api_writes_total', 'Writes the reconcile made to the apiserver, by kind (Events not included)', ['kind']);
    this.leader.set(0);
  }

  claimPhases(counts: Record<string, number>): void {
    this.claims.reset();
    for (const [phase, n] of Object.entries(counts)) this.claims.set({ phase }, n);
  }
  pool(pool: string, size: number, inUse: number): void {
    this.poolSize.set({ pool }, size);
    this.poolInUse.set({ pool }, inUse);
  }
  forgetPool(pool: string): void {
    this.poolSize.remove({ pool });
    this.poolInUse.remove({ pool });
  }
  allocated(pool: string): void {
    this.allocations.inc({ pool });
  }
  allocationFailed(reason: AllocationProblem): void {
    this.allocationFailures.inc({ reason });
  }
  released(): void {
    this.releases.inc();
  }
  failover(reason: MoveReason, seconds: number | undefined): void {
    this.failovers.inc({ reason });
    if (seconds !== undefined) this.failoverSeconds.observe(seconds);
  }
  probed(node: string, rttSeconds: number | null): void {
    if (rttSeconds === null) this.probeFailures.inc({ node });
    else this.probeRtt.set({ node }, rttSeconds);
  }
  forgetNode(node: string): void {
    this.probeRtt.remove({ node });
  }
  nodeStates(counts: Record<string, number>): void {
    this.nodes.reset();
    for (const [state, n] of Object.entries(counts)) this.nodes.set({ state }, n);
  }
  leadership(isLeader: boolean): void {
    this.leader.set(isLeader ? 1 : 0);
    this.leaderTransitions.inc();
  }
  reconcileError(stage: string): void {
    this.reconcileErrors.inc({ stage });
  }
  apiWrite(kind: string): void {
    this.apiWrites.inc({ kind });
  }
  eventDropped(): void {
    this.eventsDropped.inc();
  }
  reconciled(seconds: number): void {
    this.reconcileSeconds.observe(seconds);
  }
}
