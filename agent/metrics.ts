// The agent's metrics: one registry, owned here, built in main and passed down (fresh per
// test). Callers speak in domain verbs; names follow Prometheus conventions (base units,
// _total counters, bounded labels: no per-IP labels, which would grow with every Service).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AnnouncementKind } from './packets.js';
import type { InetFamily } from './addresses.js';
import type { ClaimFailureReason } from '../api/reasons.js';

const PREFIX = 'ipcontroller_agent_';

export class AgentMetrics {
  readonly registry: Registry;
  private readonly held: Gauge<'family'>;
  private readonly sent: Counter<'kind'>;
  private readonly sendErrors: Counter<'kind'>;
  private readonly ops: Counter<'op'>;
  private readonly opErrors: Counter<'op'>;
  private readonly restored: Counter;
  private readonly stallWithdrawals: Counter;
  private readonly latency: Histogram<'stage'>;
  private readonly heartbeatFailures: Counter;
  private readonly fenced: Gauge;
  private readonly draining: Gauge;
  private readonly strictArpMissing: Gauge;
  private readonly claimFailures: Counter<'reason'>;
  private readonly reconciles: Counter;
  private readonly reconcileErrors: Counter;
  private readonly probes: Counter;
  private readonly conflicts: Counter<'pool' | 'when'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [(this.registry = new Registry())];
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const counter = <L extends string = never>(name: string, help: string, labelNames: L[] = []): Counter<L> =>
      new Counter({ name: `${PREFIX}${name}`, help, labelNames, registers });
    const gauge = <L extends string = never>(name: string, help: string, labelNames: L[] = []): Gauge<L> =>
      new Gauge({ name: `${PREFIX}${name}`, help, labelNames, registers });
    this.held = gauge('addresses_held', 'Addresses this agent holds on its interfaces for claims.', ['family']);
    this.sent = counter('announcements_sent_total', 'Gratuitous ARP (request and reply forms) and unsolicited NA frames sent.', ['kind']);
    this.sendErrors = counter('announcement_errors_total', 'Announcement frames that could not be sent.', ['kind']);
    this.ops = counter('address_operations_total', 'Addresses added to or removed from an interface.', ['op']);
    this.opErrors = counter('address_operation_errors_total', 'Address additions or removals that failed.', ['op']);
    this.conflicts = counter(
      'address_conflicts_total',
      'Addresses a host that is not ours answered for (when=probe, before first use) or kept claiming while held (when=holding), by pool (none for spec.externalIPs).',
      ['pool', 'when'],
    );
    this.stallWithdrawals = counter(
      'stall_withdrawals_total',
      'Times the process had not run for longer than --stall-withdraw and withdrew every address on resume.',
    );
    this.restored = counter('addresses_restored_total', 'Held addresses removed by someone else and put back.');
    this.latency = new Histogram({
      name: `${PREFIX}claim_to_address_seconds`,
      help: 'Time from a claim being assigned to this node (seen by the agent) to its address up (stage="up") and its first announcement sent (stage="announced").',
      labelNames: ['stage'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.heartbeatFailures = counter('heartbeat_failures_total', 'IpNode heartbeat writes that failed.');
    this.fenced = gauge(
      'fenced',
      '1 while the agent has withdrawn its addresses because it can reach neither the API server nor be probed.',
    );
    this.draining = gauge('draining', '1 while the agent is shutting down and handing its claims over.');
    this.strictArpMissing = gauge('strict_arp_missing', '1 when kube-ipvs0 holds claimed addresses and strict ARP is off.');
    this.claimFailures = counter('claim_failures_total', 'Claims marked Failed by this agent, by reason.', ['reason']);
    this.reconciles = counter('reconciles_total', 'Address reconciles run.');
    this.reconcileErrors = counter('reconcile_errors_total', 'Address reconciles that failed.');
    this.probes = counter('probes_total', 'Health probes received from a scheduler (UDP, or HTTP with the x-ipcontroller-probe header).');
  }

  addressesHeld(family: InetFamily, count: number): void {
    this.held.set({ family: family === 'inet' ? 'ipv4' : 'ipv6' }, count);
  }
  announcementSent(kind: AnnouncementKind): void {
    this.sent.inc({ kind });
  }
  announcementFailed(kind: AnnouncementKind): void {
    this.sendErrors.inc({ kind });
  }
  addressOperation(op: 'add' | 'remove', failed: boolean): void {
    this.ops.inc({ op });
    if (failed) this.opErrors.inc({ op });
  }
  stallWithdrawal(): void {
    this.stallWithdrawals.inc();
  }
  addressRestored(): void {
    this.restored.inc();
  }
  addressUp(seconds: number): void {
    this.latency.observe({ stage: 'up' }, seconds);
  }
  firstAnnouncement(seconds: number): void {
    this.latency.observe({ stage: 'announced' }, seconds);
  }
  heartbeatFailed(): void {
    this.heartbeatFailures.inc();
  }
  setFenced(fenced: boolean): void {
    this.fenced.set(fenced ? 1 : 0);
  }
  setDraining(draining: boolean): void {
    this.draining.set(draining ? 1 : 0);
  }
  setStrictArpMissing(missing: boolean): void {
    this.strictArpMissing.set(missing ? 1 : 0);
  }
  claimFailed(reason: ClaimFailureReason): void {
    this.claimFailures.inc({ reason });
  }
  reconciled(failed: boolean): void {
    this.reconciles.inc();
    if (failed) this.reconcileErrors.inc();
  }
  probed(): void {
    this.probes.inc();
  }

  addressConflict(pool: string, when: 'probe' | 'holding'): void {
    this.conflicts.inc({ pool, when });
  }
}
