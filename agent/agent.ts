// The agent: keeps the addresses of the claims assigned to this node on its interfaces,
// announces them, reports back, heartbeats its IpNode, fences itself when cut off and drains
// on request. Decisions live in pure modules (addresses, fencing, status, strictarp); this file
// wires them to the ports passed in (Kubernetes, iproute2, frame sender, clock).
import { API_VERSION, NodeCondition, type Condition, type IpClaim, type IpNode, type IpNodeSpec } from '../api/types.js';
import { isNotFound } from '../api/client.js';
import type { Clock } from '../lib/clock.js';
import { startStatusServer, type HealthRequest, type StatusServer, type StatusServerOptions } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import {
  batchLines,
  isUp,
  planReconcile,
  primaryAddress,
  wantedAddress,
  type AddressOp,
  type Family,
  type HostLink,
  type WantedAddress,
} from './addresses.js';
import { Announcer, type AnnounceTarget } from './announcer.js';
import type { AgentConfig } from './config.js';
import { fenceDecision } from './fencing.js';
import type { FrameSender } from './frames.js';
import type { KubePort } from './kube.js';
import type { AgentMetrics } from './metrics.js';
import type { NetPort } from './net.js';
import { parseMac } from './packets.js';
import { ClaimNotOnThisNode } from './refusals.js';
import type { DeadmanPort } from './deadman.js';
import { claimStatusUpdate, setCondition, type ClaimOutcome } from './status.js';
import { IPVS_INTERFACE, strictArpCheck, type StrictArpResult } from './strictarp.js';
import { forEachLimit } from '../lib/concurrency.js';
import { ADDRESS_CONFLICT } from './conflict.js';
import { ConflictGuard, conflictMessage, type HeldTarget } from './guard.js';
import { startProbeResponder, type ProbeAnswer, type ProbeResponder, type ProbeResponderOptions } from './proberesponder.js';
import type { SightingSource } from './receiver.js';

/** Header the scheduler sets on its probes; only these count as "being probed" for fencing. */
export const PROBE_HEADER = 'x-ipcontroller-probe';
const STATUS_WRITE_CONCURRENCY = 16;
/** The stall ticker runs this often; a gap over STALL_MS means the process was frozen or starved. */
const STALL_TICK_MS = 100;
const STALL_MS = 1000;

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
  /** The HTTP server for /healthz, /readyz, /metrics (default lib/http's; tests pass an in-memory one). */
  serve?: (options: StatusServerOptions) => Promise<StatusServer>;
  /** The UDP probe responder on the status server's port number (default: the real one, unless serve is a test's). */
  probeResponder?: (options: ProbeResponderOptions) => Promise<ProbeResponder>;
}

export interface HeldAddress extends WantedAddress {
  iface: string;
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
  held(): HeldAddress[];
  fenced(): boolean;
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

class Agent {
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly announcer: Announcer;
  private server: StatusServer | undefined;
  private responder: ProbeResponder | undefined;
  private heldByClaim = new Map<string, HeldAddress>();
  /** claim -> cidr and when the agent first saw it assigned here, for the latency histogram. */
  private readonly assignedAt = new Map<string, { cidr: string; at: number }>();
  private readonly statusWritten = new Map<string, { key: string; at: number }>();
  private nodeConditions: Condition[] = [];
  private lastApiContact: number;
  private lastProbe: number;
  private isFenced = false;
  /** After fencing, addresses stay withdrawn until claims were listed again after this time. */
  private unfencedAt = 0;
  /** Last time the event loop ran the stall ticker; a long gap means the process was frozen. */
  private lastTick: number;
  /** Set when a stall is detected; cleared by the first reconcile on claims listed after it. */
  private stalledAt = 0;
  /** After a stall past --stall-withdraw, addresses stay withdrawn until claims were listed after this time. */
  private stallWithdrawAt = 0;
  private draining = false;
  /** Claims moved away while draining whose new node has not confirmed them yet. */
  private lingering = new Set<string>();
  private drained = false;
  private heartbeatFailing = 0;
  private strictArp: StrictArpResult = { missing: false };
  private firstReconcileDone = false;
  private dirty = false;
  private running: Promise<void> | undefined;
  private loops: Promise<void>[] = [];
  private ipNodeReady = false;
  private readonly guard: ConflictGuard | undefined;
  /** MACs of this node's interfaces (IpNode.status.macs) and of the other agents, by node. */
  private ownMacs: string[] = [];
  private readonly peerMacs = new Map<string, { macs: string[]; at: number }>();

  constructor(
    private readonly config: Readonly<AgentConfig>,
    private readonly deps: AgentDeps,
  ) {
    this.log = deps.logger.child({ node: config.nodeName });
    this.lastApiContact = deps.clock.now();
    this.lastProbe = deps.clock.now();
    this.lastTick = deps.clock.now();
    this.announcer = new Announcer(
      { sender: deps.sender, clock: deps.clock, metrics: deps.metrics, logger: this.log },
      { count: config.garpCount, intervalMs: config.garpIntervalMs, refreshMs: config.garpRefreshMs },
      this.abort.signal,
      () => !this.evaluateFence() && !this.drained && !this.stalled(),
    );
    if (deps.sightings && config.conflictProbes > 0) {
      this.guard = new ConflictGuard(
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
      readyz: () => ({ ok: this.ready(), detail: { node: this.config.nodeName, fenced: this.isFenced, draining: this.draining } }),
    });
    this.log.info({ port: this.server.port, iface: this.config.iface }, 'agent status server listening');
    await this.startProbeResponder(this.server.port);
    this.deps.net.watchAddresses((line) => {
      this.log.debug({ event: line }, 'address removed from an interface');
      this.requestReconcile();
    }, this.signal);
    this.deps.kube.claims.run(() => this.requestReconcile(), this.signal);
    this.loops.push(this.registerAndHeartbeat(), this.fenceLoop(), this.stallTicker(), this.deadmanLoop());
    const agent = this;
    return {
      port: this.server.port,
      drain: () => agent.drain(),
      stop: (o) => agent.stop(o),
      reconcileNow: () => agent.reconcileNow(),
      held: () => [...agent.heldByClaim.values()],
      fenced: () => agent.isFenced,
    };
  }

  private healthz(req: HealthRequest): { ok: boolean; detail: Record<string, unknown> } {
    if (req.headers[PROBE_HEADER] !== undefined) {
      this.lastProbe = this.deps.clock.now();
      this.deps.metrics.probed();
    }
    return { ok: true, detail: { node: this.config.nodeName, draining: this.draining } };
  }

  /** A scheduler's probe over UDP (proberesponder.ts): recorded for fencing as /healthz records one. */
  answerProbe(_identity: string): ProbeAnswer {
    this.lastProbe = this.deps.clock.now();
    this.deps.metrics.probed();
    return { ok: true, node: this.config.nodeName, draining: this.draining };
  }

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

  private ready(): boolean {
    return this.ipNodeReady && this.deps.kube.claims.synced() && this.firstReconcileDone && !this.isFenced && !this.draining;
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

  private withdrawAll(): boolean {
    const listedAt = this.deps.kube.claims.listedAt();
    const relisted = listedAt > this.unfencedAt && listedAt > this.stallWithdrawAt;
    return this.isFenced || this.drained || !relisted;
  }

  /** Claims assigned to this node, as wanted addresses, plus the ones that cannot be served. */
  private wanted(): {
    wanted: WantedAddress[];
    invalid: { claim: string; reason: string; message: string }[];
    byName: Map<string, IpClaim>;
    lingering: Set<string>;
  } {
    const wanted: WantedAddress[] = [];
    const lingering = new Set<string>();
    const invalid: { claim: string; reason: string; message: string }[] = [];
    const byName = new Map<string, IpClaim>();
    const seen = new Set<string>();
    for (const entry of this.deps.kube.claims.entries()) {
      if (!entry.ok) {
        if (entry.nodeName === this.config.nodeName) invalid.push({ claim: entry.name, reason: 'InvalidClaim', message: entry.reason });
        continue;
      }
      const claim = entry.claim;
      const name = claim.metadata.name ?? '';
      if (claim.spec.nodeName !== this.config.nodeName) {
        if (this.handingOver(name, claim)) {
          const w = wantedAddress(name, claim.spec.cidr, claim.spec.link, this.config.mask);
          if (w.ok) wanted.push(w.value);
          lingering.add(name);
        }
        continue;
      }
      byName.set(name, claim);
      const w = wantedAddress(name, claim.spec.cidr, claim.spec.link, this.config.mask);
      if (!w.ok) {
        invalid.push({ claim: name, reason: w.reason, message: w.message });
        continue;
      }
      wanted.push(w.value);
      seen.add(name);
      if (this.assignedAt.get(name)?.cidr !== claim.spec.cidr)
        this.assignedAt.set(name, { cidr: claim.spec.cidr, at: this.deps.clock.now() });
    }
    for (const key of this.assignedAt.keys()) if (!seen.has(key)) this.assignedAt.delete(key);
    return { wanted, invalid, byName, lingering };
  }

  /**
   * Make-before-break on a planned handover: while draining, an address whose claim the
   * scheduler moved stays here until the new node's agent has confirmed it (status.node is the
   * new node), so no request arrives between this node letting go and the new one announcing.
   * It is no longer announced from here, and its status is no longer ours to write.
   */
  private handingOver(name: string, claim: IpClaim): boolean {
    if (!this.draining || this.drained || !this.heldByClaim.has(name) || !claim.spec.nodeName) return false;
    const confirmed = claim.status?.phase === 'Assigned' && claim.status.node === claim.spec.nodeName;
    return !confirmed;
  }

  private async reconcileOnce(): Promise<void> {
    // Before the first list nothing is known, except when fenced or drained: then everything goes.
    if (!this.deps.kube.claims.synced() && !this.drained && !this.evaluateFence()) return;
    this.evaluateFence();
    const stallBefore = this.stalled() ? this.stalledAt : 0;
    const listedAfterStall = stallBefore > 0 && this.deps.kube.claims.listedAt() > stallBefore;
    const t0 = this.deps.clock.now();
    const lap = (step: string): void => this.log.trace({ step, ms: this.deps.clock.now() - t0 }, 'reconcile');
    const { wanted, invalid, byName, lingering } = this.wanted();
    this.lingering = lingering;
    const withdraw = this.withdrawAll();
    // The default route only matters without --iface (a claim's spec.link never needs it).
    const [links, defaultRoute] = await Promise.all([this.deps.net.links(), this.config.iface ? {} : this.deps.net.defaultRoutes()]);
    lap('listed');
    // A held address a foreign host keeps claiming comes down only with --conflict-withdraw.
    const serving = this.guard ? wanted.filter((w) => !this.guard?.withdraw(w.claim)) : wanted;
    const plan = planReconcile(withdraw ? [] : serving, {
      links,
      defaultRoute,
      ...(this.config.iface ? { flagIface: this.config.iface } : {}),
    });
    const gate = this.gateAdds(plan.ops, links, byName);
    const ops = gate.ops;
    const errors = await this.deps.net.apply(batchLines(ops));
    lap('applied');
    const addedOk = new Set<string>();
    const addErrors = new Map<string, string>();
    let removed = 0;
    ops.forEach((op, i) => {
      const error = errors.get(i);
      this.deps.metrics.addressOperation(op.op, error !== undefined);
      if (error !== undefined) {
        this.log.warn({ op: op.op, ip: `${op.ip}/${op.prefixLength}`, iface: op.iface, error }, 'address operation failed');
        if (op.op === 'add' && op.claim) addErrors.set(op.claim, error);
      } else if (op.op === 'remove') {
        removed += 1;
        this.log.info({ ip: `${op.ip}/${op.prefixLength}`, iface: op.iface }, 'address removed');
      } else if (op.claim) addedOk.add(op.claim);
    });
    for (const r of plan.recovered)
      this.log.warn({ claim: r.claim, ip: r.ip, iface: r.iface }, 'address was in DAD-failed state; added it back without DAD');
    // ip -batch reports every failed line, so what is up follows from the listing plus the ops
    // that worked: no second listing before announcing (the next resync checks anyway).
    const outcomes = new Map<string, ClaimOutcome>();
    for (const f of plan.failed) outcomes.set(f.claim, { kind: 'failed', reason: f.reason, message: f.message });
    for (const f of invalid) outcomes.set(f.claim, { kind: 'failed', reason: f.reason, message: f.message });
    for (const w of wanted)
      if (this.guard?.withdraw(w.claim))
        gate.conflicts.set(w.claim, conflictMessage(this.guard.conflict(w.claim) ?? { ip: w.ip, mac: '?', at: 0, holding: true }));
    const held = new Map<string, HeldAddress>();
    for (const [claim, { iface, want }] of plan.placement) {
      if (gate.waiting.has(claim) || gate.conflicts.has(claim)) continue;
      const error = addErrors.get(claim);
      if (error === undefined && (addedOk.has(claim) || isUp(links, iface, want.ip))) {
        held.set(claim, { ...want, iface });
        outcomes.set(claim, { kind: 'up', ip: want.ip, iface });
      } else {
        outcomes.set(claim, { kind: 'failed', reason: 'AddFailed', message: error ?? `${want.ip} is not usable on ${iface}` });
      }
    }
    if (listedAfterStall && this.stalledAt === stallBefore) {
      this.stalledAt = 0; // this plan rests on claims listed after the stall
      this.log.info('claims listed again after the stall; announcing again');
    }
    this.announceChanges(held, addedOk, links);
    for (const name of lingering) {
      const h = held.get(name);
      if (h) this.announcer.withdraw(h.ip);
      outcomes.delete(name);
    }
    this.heldByClaim = held;
    this.updateHeldGauge();
    this.watchForConflicts(held, links, byName, gate.conflicts, outcomes);
    if (!this.firstReconcileDone && this.ipNodeReady) void this.heartbeatOnce(); // Ready=True now, not one --hb later
    this.firstReconcileDone = true;
    lap('announced');
    if (addedOk.size || removed || errors.size) {
      this.log.info(
        { added: addedOk.size, removed, failed: errors.size, held: held.size, ms: this.deps.clock.now() - t0 },
        'addresses changed',
      );
    }
    if (!withdraw) await this.writeClaimStatuses(outcomes, byName);
    lap('status written');
    await this.checkStrictArp(links);
  }

  private announceChanges(held: Map<string, HeldAddress>, addedOk: Set<string>, links: HostLink[]): void {
    const now = this.deps.clock.now();
    const targets: AnnounceTarget[] = [];
    const fresh: HeldAddress[] = [];
    for (const [claim, h] of held) {
      const prev = this.heldByClaim.get(claim);
      const moved = !prev || prev.ip !== h.ip || prev.iface !== h.iface;
      if (!moved && !addedOk.has(claim)) continue;
      if (!moved) {
        this.deps.metrics.addressRestored();
        this.log.warn({ claim, ip: h.ip, iface: h.iface }, 'address was removed from the interface by someone else; put it back');
      } else fresh.push(h);
      const link = links.find((l) => l.name === h.iface);
      if (!link?.mac || link.noArp) {
        this.log.warn({ claim, iface: h.iface }, 'interface has no Ethernet address or is NOARP; not announcing');
        continue;
      }
      targets.push({ ip: h.ip, iface: h.iface, ifindex: link.ifindex, mac: parseMac(link.mac) });
    }
    for (const [claim, prev] of this.heldByClaim) {
      const now2 = held.get(claim);
      if (!now2 || now2.ip !== prev.ip || now2.iface !== prev.iface) this.announcer.withdraw(prev.ip);
    }
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

  /**
   * Issue 12: adds of addresses no agent of ours held wait for a probe (the guard runs it and
   * asks for another reconcile when it ends); those a foreign host answered for stay down.
   * A failover move or a restart is never held back (conflict.ts needsProbe).
   */
  private gateAdds(
    ops: AddressOp[],
    links: HostLink[],
    byName: Map<string, IpClaim>,
  ): { ops: AddressOp[]; waiting: Set<string>; conflicts: Map<string, string> } {
    const waiting = new Set<string>();
    const conflicts = new Map<string, string>();
    this.ownMacs = [...new Set(links.map((l) => l.mac).filter((m): m is string => !!m && m !== '00:00:00:00:00:00'))].sort();
    if (!this.guard) return { ops, waiting, conflicts };
    const kept = ops.filter((op) => {
      if (op.op !== 'add' || !op.claim) return true;
      const link = links.find((l) => l.name === op.iface);
      if (!link?.mac || link.noArp) return true;
      const claim = byName.get(op.claim);
      const g = this.guard?.gate({
        claim: op.claim,
        ip: op.ip,
        ifindex: link.ifindex,
        mac: parseMac(link.mac),
        status: claim?.status,
        pool: claim?.spec.pool ?? '',
      }) ?? { kind: 'up' };
      if (g.kind === 'wait') waiting.add(op.claim);
      if (g.kind === 'conflict') conflicts.set(op.claim, g.message);
      return g.kind === 'up';
    });
    return { ops: kept, waiting, conflicts };
  }

  /** Hands the held addresses and our MACs to the guard, and reports conflicts found while holding. */
  private watchForConflicts(
    held: Map<string, HeldAddress>,
    links: HostLink[],
    byName: Map<string, IpClaim>,
    conflicts: Map<string, string>,
    outcomes: Map<string, ClaimOutcome>,
  ): void {
    if (!this.guard) return;
    const targets: HeldTarget[] = [];
    for (const [claim, h] of held) {
      const link = links.find((l) => l.name === h.iface);
      if (link?.mac)
        targets.push({ claim, ip: h.ip, ifindex: link.ifindex, mac: parseMac(link.mac), pool: byName.get(claim)?.spec.pool ?? '' });
      const c = this.guard.conflict(claim);
      if (c?.holding) outcomes.set(claim, { kind: 'failed', reason: ADDRESS_CONFLICT, message: conflictMessage(c) });
    }
    for (const [claim, message] of conflicts) outcomes.set(claim, { kind: 'failed', reason: ADDRESS_CONFLICT, message });
    this.guard.setHeld(targets);
    this.guard.retain(new Set(byName.keys()));
    void this.refreshPeerMacs();
    this.guard.setOwnMacs([...this.ownMacs, ...[...this.peerMacs.values()].flatMap((p) => p.macs)]);
  }

  /**
   * The other agents' MACs, from the IpNodes of the nodes our claims name (spec.nodeName,
   * status.node): the agent may get IpNodes but not list them. Read again every --resync.
   */
  private async refreshPeerMacs(): Promise<void> {
    const now = this.deps.clock.now();
    const names = new Set<string>();
    for (const e of this.deps.kube.claims.entries()) {
      if (!e.ok) continue;
      if (e.claim.spec.nodeName) names.add(e.claim.spec.nodeName);
      if (e.claim.status?.node) names.add(e.claim.status.node);
    }
    names.delete(this.config.nodeName);
    const due = [...names].filter((n) => now - (this.peerMacs.get(n)?.at ?? -Infinity) >= this.config.resyncMs);
    for (const name of due) this.peerMacs.set(name, { macs: this.peerMacs.get(name)?.macs ?? [], at: now });
    await forEachLimit(due, 4, async (name) => {
      try {
        const node = await this.deps.kube.getIpNode(name);
        this.peerMacs.set(name, { macs: node?.status?.macs ?? [], at: now });
      } catch (err) {
        this.log.debug({ node: name, err: errText(err) }, 'could not read the MACs of another agent');
      }
    });
  }

  private updateHeldGauge(): void {
    const count: Record<Family, number> = { inet: 0, inet6: 0 };
    for (const h of this.heldByClaim.values()) count[h.family] += 1;
    this.deps.metrics.addressesHeld('inet', count.inet);
    this.deps.metrics.addressesHeld('inet6', count.inet6);
  }

  private async writeClaimStatuses(outcomes: Map<string, ClaimOutcome>, byName: Map<string, IpClaim>): Promise<void> {
    const now = this.deps.clock.now();
    const nowIso = new Date(now).toISOString();
    const writes: { name: string; status: NonNullable<ReturnType<typeof claimStatusUpdate>>; key: string; outcome: ClaimOutcome }[] = [];
    for (const [name, outcome] of outcomes) {
      const status = claimStatusUpdate(byName.get(name)?.status, outcome, this.config.nodeName, nowIso, byName.get(name));
      if (!status) continue;
      const key = JSON.stringify([outcome, byName.get(name)?.spec.cidr]);
      const last = this.statusWritten.get(name);
      if (last && last.key === key && now - last.at < 10_000) continue; // written; the watch has not caught up yet
      writes.push({ name, status, key, outcome });
    }
    await forEachLimit(writes, STATUS_WRITE_CONCURRENCY, async (w) => {
      try {
        await this.deps.kube.patchClaimStatus(w.name, w.status);
        this.statusWritten.set(w.name, { key: w.key, at: now });
        if (w.outcome.kind === 'failed') {
          this.deps.metrics.claimFailed(w.outcome.reason);
          this.log.warn({ claim: w.name, reason: w.outcome.reason, message: w.outcome.message }, 'claim failed on this node');
        }
      } catch (err) {
        // Moved away between our last look and this write: refused, expected, not retried.
        if (err instanceof ClaimNotOnThisNode) this.log.debug({ claim: w.name, now: err.nodeName }, err.message);
        else if (!isNotFound(err)) this.log.warn({ claim: w.name, err: errText(err) }, 'could not write claim status');
      }
    });
    for (const name of this.statusWritten.keys()) if (!outcomes.has(name)) this.statusWritten.delete(name);
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

  // ---- IpNode: register, then heartbeat every --hb.

  private async probeAddress(): Promise<string> {
    if (this.config.probeAddress) return this.config.probeAddress;
    const links = await this.deps.net.links();
    const fromIface = primaryAddress(links, this.config.iface);
    if (fromIface) return fromIface;
    const internal = await this.deps.kube.nodeInternalIp(this.config.nodeName);
    if (internal) return internal;
    const routes = await this.deps.net.defaultRoutes();
    const fromRoute = primaryAddress(links, routes.inet) ?? primaryAddress(links, routes.inet6);
    if (fromRoute) return fromRoute;
    throw new Error('no probe address: give --probe-address, or --iface with an address, or set the Node InternalIP');
  }

  private async registerIpNode(): Promise<void> {
    const spec: IpNodeSpec = { probeAddress: await this.probeAddress(), probePort: this.server?.port ?? this.config.metricsPort };
    if (this.config.iface) spec.iface = this.config.iface;
    const existing = await this.deps.kube.getIpNode(this.config.nodeName);
    if (!existing) {
      const node: IpNode = { apiVersion: API_VERSION, kind: 'IpNode', metadata: { name: this.config.nodeName }, spec };
      await this.deps.kube.createIpNode(node);
      this.log.info({ spec }, 'IpNode created');
    } else if (JSON.stringify(existing.spec) !== JSON.stringify(spec)) {
      await this.deps.kube.patchIpNodeSpec(this.config.nodeName, spec);
      this.log.info({ spec }, 'IpNode spec updated');
    }
    this.nodeConditions = existing?.status?.conditions ?? [];
    this.ipNodeReady = true;
  }

  private conditions(nowIso: string): Condition[] {
    let list = this.nodeConditions;
    const ready = this.deps.kube.claims.synced() && this.firstReconcileDone && !this.isFenced && !this.draining;
    const readyReason = this.draining ? 'Draining' : this.isFenced ? 'Fenced' : ready ? 'Serving' : 'Starting';
    list = setCondition(
      list,
      {
        type: NodeCondition.Ready,
        status: ready ? 'True' : 'False',
        reason: readyReason,
        message: ready ? 'agent is holding its claims' : `agent is ${readyReason.toLowerCase()}`,
      },
      nowIso,
    );
    list = setCondition(
      list,
      {
        type: NodeCondition.Draining,
        status: this.draining ? 'True' : 'False',
        reason: this.draining ? 'ShuttingDown' : 'Running',
        message: this.draining ? 'agent is shutting down; move its claims' : '',
      },
      nowIso,
    );
    list = setCondition(
      list,
      {
        type: NodeCondition.Fenced,
        status: this.isFenced ? 'True' : 'False',
        reason: this.isFenced ? 'Isolated' : 'Connected',
        message: this.isFenced ? 'addresses withdrawn: neither API server nor scheduler probes reached this agent' : '',
      },
      nowIso,
    );
    list = setCondition(
      list,
      {
        type: NodeCondition.StrictARPMissing,
        status: this.strictArp.missing ? 'True' : 'False',
        reason: this.strictArp.missing ? 'IPVSWithoutStrictARP' : 'NotNeeded',
        message: this.strictArp.missing ? this.strictArp.message : '',
      },
      nowIso,
    );
    return list;
  }

  async heartbeatOnce(): Promise<boolean> {
    const now = this.deps.clock.now();
    const nowIso = new Date(now).toISOString();
    const conditions = this.conditions(nowIso);
    const addresses = [...this.heldByClaim.values()].map((h) => `${h.ip}/${h.prefixLength}`).sort();
    try {
      await this.deps.kube.patchIpNodeStatus(this.config.nodeName, {
        renewTime: nowIso,
        addresses,
        claimsHeld: this.heldByClaim.size,
        conditions,
        ...(this.ownMacs.length ? { macs: this.ownMacs } : {}),
      });
      this.nodeConditions = conditions;
      this.lastApiContact = this.deps.clock.now();
      if (this.heartbeatFailing) {
        this.log.info({ failures: this.heartbeatFailing }, 'heartbeat works again');
        this.heartbeatFailing = 0;
        this.deps.kube.claims.relist(); // the watch may have hung through the outage
        this.requestReconcile(); // status writes that failed meanwhile
      }
      return true;
    } catch (err) {
      this.deps.metrics.heartbeatFailed();
      this.heartbeatFailing += 1;
      if (this.heartbeatFailing === 1 || this.heartbeatFailing % 10 === 0)
        this.log.warn({ err: errText(err), failures: this.heartbeatFailing }, 'heartbeat failed');
      if (isNotFound(err)) this.ipNodeReady = false;
      return false;
    }
  }

  private async registerAndHeartbeat(): Promise<void> {
    let backoff = 250;
    while (!this.signal.aborted) {
      try {
        if (!this.ipNodeReady) {
          await this.registerIpNode();
          this.lastApiContact = this.deps.clock.now();
        }
        await this.heartbeatOnce();
        backoff = 250;
        await this.deps.clock.sleep(this.config.hbMs, this.signal);
      } catch (err) {
        if (this.signal.aborted) return;
        this.deps.metrics.heartbeatFailed();
        this.log.warn({ err: errText(err), backoffMs: backoff }, 'could not register IpNode; retrying');
        await this.deps.clock.sleep(backoff, this.signal).catch(() => undefined);
        backoff = Math.min(backoff * 2, this.config.hbMs);
      }
    }
  }

  // ---- fencing: evaluated a few times per --fence-after.

  /**
   * Applies the fencing rule now; returns whether the agent is fenced. Called by the loop, at
   * the start of every reconcile and before every announcement round, so a process that was
   * frozen (SIGSTOP, a long GC pause) withdraws before it acts on anything it knew before.
   */
  private evaluateFence(): boolean {
    const decision = fenceDecision({
      now: this.deps.clock.now(),
      lastApiContact: this.lastApiContact,
      lastProbe: this.lastProbe,
      fenceAfterMs: this.config.fenceAfterMs,
    });
    if (decision.fenced !== this.isFenced) {
      this.isFenced = decision.fenced;
      this.deps.metrics.setFenced(decision.fenced);
      if (decision.fenced)
        this.log.error(
          { isolatedForMs: decision.isolatedForMs },
          'fenced: no API server contact and no scheduler probe; withdrawing all addresses',
        );
      else {
        this.unfencedAt = this.deps.clock.now();
        this.deps.kube.claims.relist();
        this.log.warn({ reason: decision.reason }, 'unfenced; taking claims back once they are listed again');
      }
      this.requestReconcile();
    }
    return this.isFenced;
  }

  /**
   * A process frozen (SIGSTOP, a VM pause) for less than --fence-after is not fenced, but what it
   * knew may be stale: on resume its timers fire before the queued watch events are read, so an
   * announcement round due then would claim an address the scheduler already moved. After a
   * stall no round goes out until a reconcile has run on claims listed after it.
   */
  private stalled(): boolean {
    const now = this.deps.clock.now();
    const stalledMs = now - this.lastTick;
    // Record the tick first: requestReconcile() starts a reconcile synchronously, which calls
    // back in here, and must not see the same stall again (that recursed without end).
    this.lastTick = now;
    const withdraw = this.config.stallWithdrawMs > 0 && stalledMs > this.config.stallWithdrawMs;
    if (withdraw) {
      // Long enough for the scheduler to have moved our claims: the kernel would keep
      // answering ARP for them until the relist, so everything goes now and comes back only
      // as the fresh list says.
      this.log.warn(
        { stalledMs },
        'the process did not run for longer than --stall-withdraw; withdrawing every address until the claims are listed again',
      );
      this.stallWithdrawAt = now;
      this.deps.metrics.stallWithdrawal();
    }
    if (withdraw || stalledMs > STALL_MS) {
      if (!withdraw)
        this.log.warn({ stalledMs }, 'the process did not run for a while; holding announcements until the claims are listed again');
      this.stalledAt = now;
      this.deps.kube.claims.relist();
      this.requestReconcile();
    }
    return this.stalledAt > 0;
  }

  private async stallTicker(): Promise<void> {
    while (!this.signal.aborted) {
      this.stalled();
      try {
        await this.deps.clock.sleep(STALL_TICK_MS, this.signal);
      } catch {
        return;
      }
    }
  }

  /**
   * Keeps the kernel answering ARP / NS for the addresses held here, --deadman at a time. A
   * round that comes late (the process did not run) refreshes nothing: the stall rule decides
   * first, and while everything is withdrawn (fenced, drained, after a long stall) nothing is live.
   */
  private async deadmanLoop(): Promise<void> {
    const port = this.deps.deadman;
    const ttl = this.config.deadmanMs;
    if (!port || ttl <= 0) return;
    const every = Math.max(25, Math.floor(ttl / 4));
    let last = this.deps.clock.now();
    while (!this.signal.aborted) {
      const now = this.deps.clock.now();
      const late = now - last > Math.max(2 * every, Math.min(ttl, this.config.stallWithdrawMs || ttl));
      last = now;
      // Not before the first reconcile: what an earlier run left on the interface stays managed
      // and silent until this run has decided what is still its own.
      if (!late && this.firstReconcileDone) {
        const live = this.withdrawAll() ? [] : [...this.heldByClaim.values()].map((h) => h.ip);
        await port.refresh(live, ttl).catch((err: unknown) => this.log.warn({ err: String(err) }, 'deadman refresh failed'));
      }
      try {
        await this.deps.clock.sleep(every, this.signal);
      } catch {
        return;
      }
    }
  }

  private async fenceLoop(): Promise<void> {
    const every = Math.max(50, Math.min(250, Math.floor(this.config.fenceAfterMs / 4) || 250));
    while (!this.signal.aborted) {
      this.evaluateFence();
      try {
        await this.deps.clock.sleep(every, this.signal);
      } catch {
        return;
      }
    }
  }

  // ---- shutdown

  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.deps.metrics.setDraining(true);
    const mine = (): number =>
      this.deps.kube.claims.entries().filter((e) => (e.ok ? e.claim.spec.nodeName : e.nodeName) === this.config.nodeName).length;
    this.log.info(
      { claims: mine(), timeoutMs: this.config.drainTimeoutMs },
      "draining: waiting for the scheduler to move this node's claims",
    );
    await this.heartbeatOnce();
    const deadline = this.deps.clock.now() + this.config.drainTimeoutMs;
    while ((mine() > 0 || this.lingering.size > 0) && this.deps.clock.now() < deadline) {
      await this.deps.clock.sleep(100, this.signal).catch(() => undefined);
      if (this.signal.aborted) break;
    }
    const left = mine() + this.lingering.size;
    if (left > 0) this.log.warn({ claims: left }, 'drain timeout: claims still assigned here; removing their addresses anyway');
    else this.log.info('all claims moved away and confirmed by their new nodes');
    await this.stop({ removeAddresses: true });
  }

  async stop(options: { removeAddresses?: boolean } = {}): Promise<void> {
    if (options.removeAddresses && !this.signal.aborted) {
      this.drained = true;
      await this.reconcileNow();
      await this.heartbeatOnce();
    }
    this.abort.abort(new Error('agent stopped'));
    await this.running;
    await Promise.allSettled(this.loops);
    // Addresses removed: the switch has nothing left to guard. Left in place otherwise, so a
    // crash-like stop keeps the kernel silent for what stays on the interface.
    if (options.removeAddresses) await this.deps.deadman?.close().catch(() => undefined);
    await this.responder?.close();
    await this.server?.close();
    this.deps.sender.close();
    this.log.info({ removedAddresses: options.removeAddresses === true }, 'agent stopped');
  }
}

export type { AddressOp };

/** Starts an agent with the given ports; main builds the real ones. */
export async function startAgent(config: Readonly<AgentConfig>, deps: AgentDeps): Promise<RunningAgent> {
  return new Agent(config, deps).start();
}
