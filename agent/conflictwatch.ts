// The reconcile's side of address conflict detection (issue 12): which adds wait for a probe or
// stay down, which held addresses the guard (guard.ts) watches, and which MACs are ours (this
// node's interfaces, IpNode.status.macs, and the other agents'). Without a guard (no receive
// path, or --conflict-probes 0) every add goes ahead and nothing is watched.
import type { IpClaim } from '../api/types.js';
import type { Clock } from '../lib/clock.js';
import { forEachLimit } from '../lib/concurrency.js';
import type { Logger } from '../lib/logger.js';
import type { AddressOp, HostLink, WantedAddress } from './addresses.js';
import { ADDRESS_CONFLICT } from './conflict.js';
import { conflictMessage, type ConflictGuard, type HeldTarget } from './guard.js';
import type { KernelYieldPort } from './kernelyield.js';
import type { KubePort } from './kube.js';
import { parseMac } from './packets.js';
import type { HeldAddress } from './reconcile.js';
import type { ClaimOutcome } from './status.js';

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Adds let through, and the claims held back: waiting for a probe, or down for a conflict (claim -> message). */
export interface GuardedOps {
  ops: AddressOp[];
  waiting: Set<string>;
  conflicts: Map<string, string>;
}

export class ConflictWatch {
  /** MACs of this node's interfaces, as last listed (IpNode.status.macs). */
  ownMacs: string[] = [];
  /** The other agents' MACs, by node. */
  private readonly peerMacs = new Map<string, { macs: string[]; at: number }>();

  constructor(
    private readonly guard: ConflictGuard | undefined,
    private readonly config: { nodeName: string; resyncMs: number },
    private readonly deps: { kube: KubePort; clock: Clock; logger: Logger; kernelYield?: KernelYieldPort },
  ) {}

  /**
   * The wanted addresses still served: one yielded to another agent of ours that claimed it
   * (yielding.ts) stays down until a newer version of its claim still names this node; a held
   * address a foreign host keeps claiming comes down only with --conflict-withdraw.
   */
  serving(wanted: WantedAddress[], byName: Map<string, IpClaim> = new Map()): WantedAddress[] {
    return this.guard ? wanted.filter((w) => !this.guard?.withdraw(w.claim, byName.get(w.claim)?.metadata.resourceVersion)) : wanted;
  }

  /**
   * Adds of addresses no agent of ours held wait for a probe (the guard runs it and asks for
   * another reconcile when it ends); those a foreign host answered for stay down. A failover
   * move or a restart is never held back (conflict.ts needsProbe).
   */
  holdAdds(ops: AddressOp[], links: HostLink[], byName: Map<string, IpClaim>): GuardedOps {
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

  /** Adds the held addresses withdrawn for a conflict (--conflict-withdraw) to the conflicts to report. */
  addWithdrawn(wanted: WantedAddress[], conflicts: Map<string, string>): void {
    for (const w of wanted)
      if (this.guard?.conflictWithdraw(w.claim))
        conflicts.set(w.claim, conflictMessage(this.guard.conflict(w.claim) ?? { ip: w.ip, mac: '?', at: 0, holding: true }));
  }

  /** Hands the held addresses and our MACs to the guard, and reports conflicts found while holding. */
  watch(
    state: { links: HostLink[]; byName: Map<string, IpClaim>; held: Map<string, HeldAddress> },
    report: { outcomes: Map<string, ClaimOutcome>; conflicts: Map<string, string> },
  ): void {
    // The kernel yield (kernelyield.ts) needs the other agents' MACs with or without a guard.
    void this.refreshPeerMacs().then(() => this.deps.kernelYield?.setPeers(this.otherAgentsMacs()));
    if (!this.guard) return;
    const targets: HeldTarget[] = [];
    for (const [claim, h] of state.held) {
      const link = state.links.find((l) => l.name === h.iface);
      if (link?.mac)
        targets.push({
          claim,
          ip: h.ip,
          ifindex: link.ifindex,
          mac: parseMac(link.mac),
          pool: state.byName.get(claim)?.spec.pool ?? '',
          resourceVersion: state.byName.get(claim)?.metadata.resourceVersion,
        });
      const c = this.guard.conflict(claim);
      if (c?.holding) report.outcomes.set(claim, { kind: 'failed', reason: ADDRESS_CONFLICT, message: conflictMessage(c) });
    }
    for (const [claim, message] of report.conflicts) report.outcomes.set(claim, { kind: 'failed', reason: ADDRESS_CONFLICT, message });
    this.guard.setHeld(targets);
    this.guard.retain(new Set(state.byName.keys()));
    this.guard.setOwnMacs([...this.ownMacs, ...this.otherAgentsMacs()]);
  }

  /** The other agents' MACs (not this node's, should two nodes report one). */
  private otherAgentsMacs(): string[] {
    const own = new Set(this.ownMacs.map((m) => m.toLowerCase()));
    return [...this.peerMacs.values()].flatMap((p) => p.macs).filter((m) => !own.has(m.toLowerCase()));
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
        this.deps.logger.debug({ node: name, err: errText(err) }, 'could not read the MACs of another agent');
      }
    });
  }
}
