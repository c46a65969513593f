// The scheduler's Prometheus metrics: one module owning its Registry, speaking domain verbs.
// Built in main (or per test) and passed down; nothing registers globally.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

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

  constructor(registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.claims = new Gauge({
      name: `${P}claims`,
      help: 'IpClaims by status.phase (None before an agent reports)',
      labelNames: ['phase'],
      registers,
    });
    this.poolSize = new Gauge({
      name: `${P}pool_addresses`,
      help: 'Allocatable addresses per IpClaimPool (capped at 2^53-1)',
      labelNames: ['pool'],
      registers,
    });
    this.poolInUse = new Gauge({
      name: `${P}pool_addresses_in_use`,
      help: 'Allocated addresses per IpClaimPool',
      labelNames: ['pool'],
      registers,
    });
    this.allocations = new Counter({
      name: `${P}allocations_total`,
      help: 'Pool addresses allocated to Services',
      labelNames: ['pool'],
      registers,
    });
    this.allocationFailures = new Counter({
      name: `${P}allocation_failures_total`,
      help: 'Failed allocations by reason',
      labelNames: ['reason'],
      registers,
    });
    this.releases = new Counter({ name: `${P}releases_total`, help: 'Addresses released from Services', registers });
    this.failovers = new Counter({
      name: `${P}failovers_total`,
      help: 'Claims moved to another node, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.failoverSeconds = new Histogram({
      name: `${P}failover_duration_seconds`,
      help: 'Time from a node being found failed to the claim written to its new node',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers,
    });
    this.probeRtt = new Gauge({
      name: `${P}probe_rtt_seconds`,
      help: 'Round-trip time of the last successful probe per node',
      labelNames: ['node'],
      registers,
    });
    this.probeFailures = new Counter({ name: `${P}probe_failures_total`, help: 'Failed probes per node', labelNames: ['node'], registers });
    this.nodes = new Gauge({
      name: `${P}nodes`,
      help: 'Known nodes by state (candidate or the reason they are not)',
      labelNames: ['state'],
      registers,
    });
    this.leader = new Gauge({ name: `${P}leader`, help: '1 while this replica holds the leader Lease', registers });
    this.leaderTransitions = new Counter({
      name: `${P}leader_transitions_total`,
      help: 'Times this replica gained or lost leadership',
      registers,
    });
    this.reconcileErrors = new Counter({
      name: `${P}reconcile_errors_total`,
      help: 'Errors while reconciling, by stage',
      labelNames: ['stage'],
      registers,
    });
    this.reconcileSeconds = new Histogram({
      name: `${P}reconcile_duration_seconds`,
      help: 'Duration of one reconcile pass over all Services and claims',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.eventsDropped = new Counter({ name: `${P}events_dropped_total`, help: 'Events not sent because the queue was full', registers });
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
  allocationFailed(reason: string): void {
    this.allocationFailures.inc({ reason });
  }
  released(): void {
    this.releases.inc();
  }
  failover(reason: string, seconds: number | undefined): void {
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
  eventDropped(): void {
    this.eventsDropped.inc();
  }
  reconciled(seconds: number): void {
    this.reconcileSeconds.observe(seconds);
  }
}
