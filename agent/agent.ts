// The agent: keeps the addresses of the claims assigned to this node on its interfaces,
// announces them, reports back, heartbeats its IpNode, fences itself when cut off and drains
// on request. Decisions live in pure modules: the gate (gate.ts: announce, withdraw everything,
// ready, conditions; it composes fencing.ts and the stall rule), the reconcile's steps
// (reconcile.ts, addresses.ts), status.ts, strictarp.ts, drain.ts; the IpNode heartbeat, the
// claim status writes and the conflict guard's wiring are their own modules (heartbeat.ts,
// statuswriter.ts, conflictwatch.ts). This file wires them to the ports passed in (Kubernetes,
// iproute2, frame sender, clock), runs the reconcile and applies the gate's transitions in one
// place (applyTransitions).
import type { Clock } from '../lib/clock.js';
import { every } from '../lib/every.js';
import { startStatusServer, type HealthReport, type HealthRequest, type StatusServer, type StatusServerOptions } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { batchLines, planReconcile, type AddressOp, type HostLink, type InetFamily } from './addresses.js';
import { Announcer, type AnnounceTarget } from './announcer.js';
import type { AgentConfig } from './config.js';
import type { DeadmanPort } from './deadman.js';
import type { KernelYieldPort } from './kernelyield.js';
import { claimsAssignedHere, handingOver, waitForClaimsToMove } from './drain.js';
import type { FrameSender } from './frames.js';
import {
  deadmanPeriod,
  deadmanRound,
  gate,
  gatePeriod,
  initialMemory,
  stallCleared,
  type GateDecision,
  type GateMemory,
  type GateReason,
  type GateState,
  type Transition,
} from './gate.js';
import { ConflictWatch } from './conflictwatch.js';
import { ConflictGuard } from './guard.js';
import { Heartbeat, type NodeReport } from './heartbeat.js';
import type { KubePort } from './kube.js';
import type { AgentMetrics } from './metrics.js';
import type { NetPort } from './net.js';
import { parseMac } from './packets.js';
import type { SightingSource } from './receiver.js';
import { startProbeResponder, type ProbeResponder, type ProbeResponderOptions } from './proberesponder.js';
import { addressChanges, claimOutcomes, tallyOps, wantedClaims, type HeldAddress, type OpTally, type WantedClaims } from './reconcile.js';
import type { ClaimOutcome } from './status.js';
import { ClaimStatusWriter } from './statuswriter.js';
import { IPVS_INTERFACE, strictArpCheck, type StrictArpResult } from './strictarp.js';
// Only probes carrying the scheduler's header count as "being probed" for fencing.
import { PROBE_HEADER } from '../api/probe.js';

/** The gate loop runs at least this often; a gap over gate.ts STALL_MS means the process was frozen or starved. */
const STALL_TICK_MS = 100;

export type { AddressOp, HeldAddress };

export interface AgentDeps {
  kube: KubePort;
  net: NetPort;
  sender: FrameSender;
  clock: Clock;
  logger: Logger;
  metrics: AgentMetrics;
  /** Receive path for address conflict detection (issue 12); without it nothing is probed or defended. */
  sightings?: SightingSource;
  /** The kernel's dead-man switch (deadman.ts); without it a frozen agent's kernel keeps answering. */
  deadman?: DeadmanPort;
  /** The kernel's yield to other agents' announcements (kernelyield.ts); without it the agent yields alone (yielding.ts). */
  kernelYield?: KernelYieldPort;
  /** The HTTP server for /healthz, /readyz, /metrics (default lib/http's; tests pass an in-memory one). */
  serve?: (options: StatusServerOptions) => Promise<StatusServer>;
  /** The UDP probe responder on the status server's port number (default: the real one, unless serve is a test's). */
  probeResponder?: (options: ProbeResponderOptions) => Promise<ProbeResponder>;
}

/** The answer to a scheduler's probe, whatever transport carried it. */
export interface ProbeAnswer {
  ok: true;
  node: string;
  draining: boolean;
}

export interface RunningAgent {
  /** Port of the status server (/healthz, /readyz, /metrics). */
  port: number;
  /** SIGTERM path: report Draining, wait for the claims to move (bounded), remove addresses, stop. */
  drain(): Promise<void>;
  /** Stops every loop; addresses stay unless removeAddresses (as after a crash, for a restart). */
  stop(options?: { removeAddresses?: boolean }): Promise<void>;
  /** Runs a reconcile now and resolves when it is done. */
  reconcileNow(): Promise<void>;
  /** A scheduler probe arrived (see Agent.answerProbe). */
  answerProbe(identity: string): ProbeAnswer;
  held(): HeldAddress[];
  fenced(): boolean;
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** What one reconcile works on after listing the interfaces. */
/** Interface of the default route per family, as NetPort.defaultRoutes reads it. */
type DefaultRoutes = Awaited<ReturnType<NetPort['defaultRoutes']>>;

interface ReconcileView extends WantedClaims {
  links: HostLink[];
  withdraw: boolean;
}

class Agent {
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly announcer: Announcer;
  private readonly heartbeat: Heartbeat;
  private readonly conflicts: ConflictWatch;
  private readonly statuses: ClaimStatusWriter;
  private server: StatusServer | undefined;
  private responder: ProbeResponder | undefined;
  private heldByClaim = new Map<string, HeldAddress>();
  /** claim -> cidr and when the agent first saw it assigned here, for the latency histogram. */
  private readonly assignedAt = new Map<string, { cidr: string; at: number }>();
  // The gate's memory and the facts it reads that only this class observes.
  private gateMemory: GateMemory;
  private gateReason: GateReason | undefined;
  private lastProbe: number;
  private firstReconcileDone = false;
  private strictArp: StrictArpResult = { missing: false };
  private readonly drainState = { draining: false, drained: false };
  /** Claims moved away while draining whose new node has not confirmed them yet. */
  private lingering = new Set<string>();
  /** The default routes and when they were read (see defaultRoutes). */
  private routes: { at: number; value: DefaultRoutes } | undefined;
  private dirty = false;
  private running: Promise<void> | undefined;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly config: Readonly<AgentConfig>,
    private readonly deps: AgentDeps,
  ) {
    this.log = deps.logger.child({ node: config.nodeName });
    this.lastProbe = deps.clock.now();
    this.gateMemory = initialMemory(deps.clock.now());
    this.heartbeat = new Heartbeat(
      config,
      { ...deps, logger: this.log },
      {
        report: () => this.nodeReport(),
        recovered: (failures) => this.applyTransitions([{ kind: 'heartbeatRecovered', failures }]),
        probePort: () => this.server?.port ?? this.config.metricsPort,
      },
    );
    this.announcer = new Announcer(
      { sender: deps.sender, clock: deps.clock, metrics: deps.metrics, logger: this.log },
      { count: config.garpCount, intervalMs: config.garpIntervalMs, refreshMs: config.garpRefreshMs },
      this.abort.signal,
      () => this.step().announce,
    );
    this.conflicts = new ConflictWatch(this.conflictGuard(), config, { ...deps, logger: this.log });
    this.statuses = new ClaimStatusWriter(config.nodeName, { ...deps, logger: this.log });
  }

  private conflictGuard(): ConflictGuard | undefined {
    const { deps, config } = this;
    if (!deps.sightings || config.conflictProbes <= 0) return undefined;
    return new ConflictGuard(
      {
        count: config.conflictProbes,
        windowMs: config.conflictWindowMs,
        retryMs: config.conflictRetryMs,
        withdrawOnConflict: config.conflictWithdraw,
        pollMs: 50,
      },
      {
        source: deps.sightings,
        sender: deps.sender,
        clock: deps.clock,
        logger: this.log,
        metrics: deps.metrics,
        changed: () => this.requestReconcile(),
      },
      this.abort.signal,
    );
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  async start(): Promise<RunningAgent> {
    this.server = await (this.deps.serve ?? startStatusServer)({
      host: this.config.metricsHost,
      port: this.config.metricsPort,
      registry: this.deps.metrics.registry,
      healthz: (req) => this.healthz(req),
      readyz: () => this.readyz(),
    });
    this.log.info({ port: this.server.port, iface: this.config.iface }, 'agent status server listening');
    await this.startProbeResponder(this.server.port);
    this.deps.net.watchAddresses((line) => {
      this.log.debug({ event: line }, 'address removed from an interface');
      this.requestReconcile();
    }, this.signal);
    this.deps.kube.claims.run(() => this.requestReconcile(), this.signal);
    this.loops.push(this.heartbeat.run(this.signal), this.gateLoop(), this.deadmanLoop());
    return {
      port: this.server.port,
      drain: () => this.drain(),
      stop: (o) => this.stop(o),
      reconcileNow: () => this.reconcileNow(),
      answerProbe: (identity) => this.answerProbe(identity),
      held: () => [...this.heldByClaim.values()],
      fenced: () => this.gateMemory.fenced,
    };
  }

  // ---- the gate: evaluated here, its transitions applied here, nowhere else.

  private gateState(): GateState {
    const { claims } = this.deps.kube;
    return {
      memory: this.gateMemory,
      config: { fenceAfterMs: this.config.fenceAfterMs, stallWithdrawMs: this.config.stallWithdrawMs },
      lastApiContact: this.heartbeat.lastApiContact,
      lastProbe: this.lastProbe,
      listedAt: claims.listedAt(),
      synced: claims.synced(),
      ipNodeReady: this.heartbeat.registered,
      firstReconcileDone: this.firstReconcileDone,
      draining: this.drainState.draining,
      drained: this.drainState.drained,
      strictArp: this.strictArp,
      nodeConditions: this.heartbeat.conditions,
    };
  }

  /**
   * Evaluates the gate now, stores what it remembers and applies its transitions; returns the
   * decision as it stands after them. The memory is stored before anything acts, so a
   * transition that starts a reconcile (which evaluates the gate again) sees nothing new.
   */
  private step(): GateDecision {
    const decision = gate(this.gateState(), this.deps.clock.now());
    this.gateMemory = decision.memory;
    if (decision.reason !== this.gateReason) {
      this.log.debug({ from: this.gateReason, to: decision.reason }, 'gate');
      this.gateReason = decision.reason;
    }
    if (decision.transitions.length === 0) return decision;
    this.applyTransitions(decision.transitions);
    return this.step();
  }

  private applyTransitions(transitions: Transition[]): void {
    for (const t of transitions) {
      switch (t.kind) {
        case 'fenced':
          this.deps.metrics.setFenced(true);
          this.log.error(
            { isolatedForMs: t.isolatedForMs },
            'fenced: no API server contact and no scheduler probe; withdrawing all addresses',
          );
          this.requestReconcile();
          break;
        case 'unfenced':
          this.deps.metrics.setFenced(false);
          this.deps.kube.claims.relist();
          this.log.warn({ reason: t.reason }, 'unfenced; taking claims back once they are listed again');
          this.requestReconcile();
          break;
        case 'stalled':
          this.stalled(t.stalledMs, t.withdraw);
          break;
        case 'stallCleared':
          this.log.info('claims listed again after the stall; announcing again');
          break;
        case 'heartbeatRecovered':
          this.log.info({ failures: t.failures }, 'heartbeat works again');
          this.deps.kube.claims.relist(); // the watch may have hung through the outage
          this.requestReconcile(); // status writes that failed meanwhile
          break;
      }
    }
  }

  private stalled(stalledMs: number, withdraw: boolean): void {
    if (withdraw) {
      // Long enough for the scheduler to have moved our claims: the kernel would keep
      // answering ARP for them until the relist, so everything goes now and comes back only
      // as the fresh list says.
      this.log.warn(
        { stalledMs },
        'the process did not run for longer than --stall-withdraw; withdrawing every address until the claims are listed again',
      );
      this.deps.metrics.stallWithdrawal();
    } else {
      this.log.warn({ stalledMs }, 'the process did not run for a while; holding announcements until the claims are listed again');
    }
    this.deps.kube.claims.relist();
    this.requestReconcile();
  }

  /** Evaluates the gate a few times per --fence-after, and often enough to notice a stall. */
  private gateLoop(): Promise<void> {
    return every(this.deps.clock, gatePeriod(this.config.fenceAfterMs, STALL_TICK_MS), this.signal, () => void this.step());
  }

  // ---- status server: probes, readiness

  /** Without it the scheduler probes over HTTP alone; the agent works on, and the log says why. */
  private async startProbeResponder(port: number): Promise<void> {
    const start = this.deps.probeResponder ?? (this.deps.serve ? undefined : startProbeResponder);
    if (!start) return;
    try {
      this.responder = await start({
        host: this.config.metricsHost,
        port,
        answer: (identity) => this.answerProbe(identity),
        onError: (err) => this.log.warn({ err: err.message }, 'UDP probe responder error'),
      });
    } catch (err) {
      this.log.error({ err: errText(err), port }, 'UDP probe responder not started; schedulers will probe over HTTP');
    }
  }

  /**
   * Answers a scheduler's probe: records when it came (being probed keeps the agent unfenced
   * through an API outage, fencing.ts) and says whether this node is draining. The HTTP
   * /healthz handler calls this for requests carrying PROBE_HEADER; the UDP probe transport
   * calls this same method, so both count alike. `identity` is the prober's (its header value).
   */
  answerProbe(identity: string): ProbeAnswer {
    this.lastProbe = this.deps.clock.now();
    this.deps.metrics.probed();
    this.log.trace({ prober: identity }, 'probed');
    return { ok: true, node: this.config.nodeName, draining: this.drainState.draining };
  }

  private healthz(req: HealthRequest): HealthReport {
    const prober = req.headers[PROBE_HEADER];
    const { ok, ...detail } =
      prober !== undefined
        ? this.answerProbe(Array.isArray(prober) ? prober.join(',') : prober)
        : { ok: true, node: this.config.nodeName, draining: this.drainState.draining };
    return { ok, detail };
  }

  private readyz(): HealthReport {
    const decision = this.step();
    return {
      ok: decision.ready,
      detail: { node: this.config.nodeName, fenced: decision.memory.fenced, draining: this.drainState.draining },
    };
  }

  private nodeReport(): NodeReport {
    return {
      conditions: this.step().conditions,
      addresses: [...this.heldByClaim.values()].map((h) => `${h.ip}/${h.prefixLength}`).sort(),
      claimsHeld: this.heldByClaim.size,
      macs: this.conflicts.ownMacs,
    };
  }

  // ---- reconcile, serialized: one runs at a time, requests during a run cause one more run.

  requestReconcile(): void {
    this.dirty = true;
    this.running ??= this.reconcileLoop();
  }

  private async reconcileLoop(): Promise<void> {
    while (this.dirty && !this.signal.aborted) {
      this.dirty = false;
      try {
        await this.reconcileOnce();
        this.deps.metrics.reconciled(false);
      } catch (err) {
        this.deps.metrics.reconciled(true);
        this.log.error({ err: errText(err) }, 'reconcile failed');
      }
    }
    this.running = undefined;
  }

  async reconcileNow(): Promise<void> {
    this.requestReconcile();
    while (this.running) await this.running;
  }

  /** Claims assigned to this node, as wanted addresses, plus the ones that cannot be served. */
  private wanted(): WantedClaims {
    const claims = wantedClaims(this.deps.kube.claims.entries(), { name: this.config.nodeName, mask: this.config.mask }, (name, claim) =>
      handingOver(this.drainState, this.heldByClaim.has(name), claim),
    );
    const invalid = new Set(claims.invalid.map((i) => i.claim));
    const now = this.deps.clock.now();
    for (const [name, claim] of claims.byName)
      if (!invalid.has(name) && this.assignedAt.get(name)?.cidr !== claim.spec.cidr)
        this.assignedAt.set(name, { cidr: claim.spec.cidr, at: now });
    for (const key of this.assignedAt.keys()) if (!claims.byName.has(key) || invalid.has(key)) this.assignedAt.delete(key);
    return claims;
  }

  private async reconcileOnce(): Promise<void> {
    const decision = this.step();
    // Before the first list nothing is known, except when fenced or drained: then everything goes.
    if (!this.deps.kube.claims.synced() && !this.drainState.drained && !decision.memory.fenced) return;
    const seen = { stalledAt: decision.memory.stalledAt, listedAt: this.deps.kube.claims.listedAt() };
    const t0 = this.deps.clock.now();
    const lap = (step: string): void => this.log.trace({ step, ms: this.deps.clock.now() - t0 }, 'reconcile');
    const claims = this.wanted();
    this.lingering = claims.lingering;
    // The default route only matters without --iface (a claim's spec.link never needs it).
    const [links, defaultRoute] = await Promise.all([this.deps.net.links(), this.config.iface ? {} : this.defaultRoutes()]);
    lap('listed');
    const view: ReconcileView = { ...claims, links, withdraw: decision.withdrawAll };
    const { held, outcomes, tally, errors, conflicts } = await this.applyPlan(view, defaultRoute);
    lap('applied');
    const cleared = stallCleared(this.gateMemory, seen); // this plan rests on claims listed after the stall
    if (cleared) {
      this.gateMemory = cleared;
      this.applyTransitions([{ kind: 'stallCleared' }]);
    }
    this.announceChanges(held, tally.addedOk, links);
    for (const name of claims.lingering) {
      const h = held.get(name);
      if (h) this.announcer.withdraw(h.ip);
    }
    this.heldByClaim = held;
    this.updateHeldGauge();
    this.conflicts.watch({ links, byName: claims.byName, held }, { outcomes, conflicts });
    if (!this.firstReconcileDone && this.heartbeat.registered) void this.heartbeat.beat(); // Ready=True now, not one --hb later
    this.firstReconcileDone = true;
    if (tally.addedOk.size) await this.deadmanNow();
    lap('announced');
    if (tally.addedOk.size || tally.removed || errors) {
      this.log.info(
        { added: tally.addedOk.size, removed: tally.removed, failed: errors, held: held.size, ms: this.deps.clock.now() - t0 },
        'addresses changed',
      );
    }
    if (!view.withdraw) await this.statuses.write(outcomes, claims.byName);
    lap('status written');
    await this.checkStrictArp(links);
  }

  /** Plans the address changes, runs them in one batch and reads what is held and each claim's outcome. */
  private async applyPlan(
    view: ReconcileView,
    defaultRoute: DefaultRoutes,
  ): Promise<{
    held: Map<string, HeldAddress>;
    outcomes: Map<string, ClaimOutcome>;
    tally: OpTally;
    errors: number;
    conflicts: Map<string, string>;
  }> {
    const { links } = view;
    const plan = planReconcile(view.withdraw ? [] : this.conflicts.serving(view.wanted, view.byName), {
      links,
      defaultRoute,
      ...(this.config.iface ? { flagIface: this.config.iface } : {}),
    });
    const guarded = this.conflicts.holdAdds(plan.ops, links, view.byName);
    await this.holdNewAddresses(guarded.ops);
    const errors = await this.deps.net.apply(batchLines(guarded.ops));
    this.reportOps(guarded.ops, errors);
    for (const r of plan.recovered)
      this.log.warn({ claim: r.claim, ip: r.ip, iface: r.iface }, 'address was in DAD-failed state; added it back without DAD');
    this.conflicts.addWithdrawn(view.wanted, guarded.conflicts);
    const tally = tallyOps(guarded.ops, errors);
    const { waiting, conflicts } = guarded;
    const { held, outcomes } = claimOutcomes({ plan, invalid: view.invalid, links, tally, waiting, conflicts, lingering: view.lingering });
    return { held, outcomes, tally, errors: errors.size, conflicts };
  }

  /**
   * The default routes (which interface a claim without a link goes on when --iface is not set),
   * read at most once per --resync: reading them is two `ip` processes, and on the failover's
   * path that cost 25-75 ms with other work on the CPUs. A route that changes is followed within
   * --resync. Nothing found is not kept (a node whose route comes up late is not held back).
   */
  private async defaultRoutes(): Promise<DefaultRoutes> {
    const now = this.deps.clock.now();
    if (this.routes && now - this.routes.at < this.config.resyncMs) return this.routes.value;
    const value = await this.deps.net.defaultRoutes();
    this.routes = Object.keys(value).length ? { at: now, value } : undefined;
    return value;
  }

  /**
   * Addresses about to go up stay unanswered by this kernel until their first announcement is
   * out (deadman.ts deadmanHold; reconcileOnce marks them live right after announcing), so a
   * request that comes before it is not answered here and by the node the claim moved from.
   */
  private async holdNewAddresses(ops: AddressOp[]): Promise<void> {
    const port = this.deps.deadman;
    if (!port || this.config.deadmanMs <= 0) return;
    const live = new Set([...this.heldByClaim.values()].map((h) => h.ip));
    const fresh = ops.filter((op) => op.op === 'add' && !live.has(op.ip)).map((op) => op.ip);
    if (fresh.length) await port.hold(fresh).catch((err: unknown) => this.log.warn({ err: String(err) }, 'deadman hold failed'));
  }

  /** Marks what is held live now (not at the next round): new addresses were just announced. */
  private async deadmanNow(): Promise<void> {
    const port = this.deps.deadman;
    if (!port || this.config.deadmanMs <= 0 || this.step().withdrawAll) return;
    const live = [...this.heldByClaim.values()].map((h) => h.ip);
    await port.refresh(live, this.config.deadmanMs).catch((err: unknown) => this.log.warn({ err: String(err) }, 'deadman refresh failed'));
  }

  private reportOps(ops: AddressOp[], errors: Map<number, string>): void {
    ops.forEach((op, i) => {
      const error = errors.get(i);
      this.deps.metrics.addressOperation(op.op, error !== undefined);
      if (error !== undefined)
        this.log.warn({ op: op.op, ip: `${op.ip}/${op.prefixLength}`, iface: op.iface, error }, 'address operation failed');
      else if (op.op === 'remove') this.log.info({ ip: `${op.ip}/${op.prefixLength}`, iface: op.iface }, 'address removed');
    });
  }

  private announceChanges(held: Map<string, HeldAddress>, addedOk: Set<string>, links: HostLink[]): void {
    const now = this.deps.clock.now();
    const { changed, withdrawn } = addressChanges(this.heldByClaim, held, addedOk);
    const targets: AnnounceTarget[] = [];
    const fresh: HeldAddress[] = [];
    for (const { address: h, restored } of changed) {
      if (restored) {
        this.deps.metrics.addressRestored();
        this.log.warn({ claim: h.claim, ip: h.ip, iface: h.iface }, 'address was removed from the interface by someone else; put it back');
      } else fresh.push(h);
      const link = links.find((l) => l.name === h.iface);
      if (!link?.mac || link.noArp) {
        this.log.warn({ claim: h.claim, iface: h.iface }, 'interface has no Ethernet address or is NOARP; not announcing');
        continue;
      }
      targets.push({ ip: h.ip, iface: h.iface, ifindex: link.ifindex, mac: parseMac(link.mac) });
    }
    for (const ip of withdrawn) this.announcer.withdraw(ip);
    // One line per address normally; a bulk change (start-up with many claims) logs them at
    // debug and the reconcile's summary line says how many.
    const level = fresh.length <= 50 ? 'info' : 'debug';
    for (const h of fresh) this.log[level]({ claim: h.claim, ip: `${h.ip}/${h.prefixLength}`, iface: h.iface }, 'address up');
    const upAt = this.deps.clock.now();
    this.announcer.announce(targets);
    const announcedAt = this.deps.clock.now();
    for (const h of fresh) {
      const assigned = this.assignedAt.get(h.claim)?.at ?? now;
      this.deps.metrics.addressUp(Math.max(0, upAt - assigned) / 1000);
      this.deps.metrics.firstAnnouncement(Math.max(0, announcedAt - assigned) / 1000);
    }
  }

  private updateHeldGauge(): void {
    const count: Record<InetFamily, number> = { inet: 0, inet6: 0 };
    for (const h of this.heldByClaim.values()) count[h.family] += 1;
    this.deps.metrics.addressesHeld('inet', count.inet);
    this.deps.metrics.addressesHeld('inet6', count.inet6);
  }

  private async checkStrictArp(links: HostLink[]): Promise<void> {
    const ipvs = links.find((l) => l.name === IPVS_INTERFACE);
    const result = strictArpCheck({
      ipvsAddresses: ipvs ? ipvs.addresses.filter((a) => a.family === 'inet').map((a) => a.ip) : null,
      held: [...this.heldByClaim.values()].filter((h) => h.family === 'inet').map((h) => h.ip),
      arpIgnore: ipvs ? await this.deps.net.sysctl('net/ipv4/conf/all/arp_ignore') : null,
      arpAnnounce: ipvs ? await this.deps.net.sysctl('net/ipv4/conf/all/arp_announce') : null,
    });
    if (result.missing && (!this.strictArp.missing || this.strictArp.message !== result.message)) this.log.warn(result.message);
    if (!result.missing && this.strictArp.missing) this.log.info('strict ARP warning cleared');
    this.strictArp = result;
    this.deps.metrics.setStrictArpMissing(result.missing);
  }

  // ---- dead-man switch

  /** Keeps the kernel answering ARP / NS for the addresses held here, --deadman at a time (gate.ts deadmanRound). */
  private deadmanLoop(): Promise<void> {
    const port = this.deps.deadman;
    const ttlMs = this.config.deadmanMs;
    if (!port || ttlMs <= 0) return Promise.resolve();
    const periodMs = deadmanPeriod(ttlMs);
    let last = this.deps.clock.now();
    return every(this.deps.clock, periodMs, this.signal, async () => {
      const now = this.deps.clock.now();
      const round = deadmanRound({
        sinceLastRoundMs: now - last,
        periodMs,
        ttlMs,
        stallWithdrawMs: this.config.stallWithdrawMs,
        firstReconcileDone: this.firstReconcileDone,
        withdrawAll: this.step().withdrawAll,
      });
      last = now;
      if (round === 'skip') return;
      const live = round === 'held' ? [...this.heldByClaim.values()].map((h) => h.ip) : [];
      await port.refresh(live, ttlMs).catch((err: unknown) => this.log.warn({ err: String(err) }, 'deadman refresh failed'));
    });
  }

  // ---- shutdown

  async drain(): Promise<void> {
    if (this.drainState.draining) return;
    this.drainState.draining = true;
    this.deps.metrics.setDraining(true);
    const left = (): number => claimsAssignedHere(this.deps.kube.claims.entries(), this.config.nodeName) + this.lingering.size;
    this.log.info(
      { claims: claimsAssignedHere(this.deps.kube.claims.entries(), this.config.nodeName), timeoutMs: this.config.drainTimeoutMs },
      "draining: waiting for the scheduler to move this node's claims",
    );
    await this.heartbeat.beat();
    const remaining = await waitForClaimsToMove(this.deps.clock, this.signal, this.deps.clock.now() + this.config.drainTimeoutMs, left);
    if (remaining > 0) this.log.warn({ claims: remaining }, 'drain timeout: claims still assigned here; removing their addresses anyway');
    else this.log.info('all claims moved away and confirmed by their new nodes');
    await this.stop({ removeAddresses: true });
  }

  async stop(options: { removeAddresses?: boolean } = {}): Promise<void> {
    if (options.removeAddresses && !this.signal.aborted) {
      this.drainState.drained = true;
      await this.reconcileNow();
      await this.heartbeat.beat();
    }
    this.abort.abort(new Error('agent stopped'));
    await this.running;
    await Promise.allSettled(this.loops);
    // Addresses removed: the switch has nothing left to guard. Left in place otherwise, so a
    // crash-like stop keeps the kernel silent for what stays on the interface.
    if (options.removeAddresses) await this.deps.deadman?.close().catch(() => undefined);
    // Nothing in it needs keeping: the next run makes it anew.
    await this.deps.kernelYield?.close().catch(() => undefined);
    await this.responder?.close();
    await this.server?.close();
    this.deps.sender.close();
    this.deps.net.close?.();
    this.log.info({ removedAddresses: options.removeAddresses === true }, 'agent stopped');
  }
}

/** Starts an agent with the given ports; main builds the real ones. */
export async function startAgent(config: Readonly<AgentConfig>, deps: AgentDeps): Promise<RunningAgent> {
  return new Agent(config, deps).start();
}
