// Yielding an address to another agent of ours (issue 9). When the scheduler moves a claim
// away from a node that is still alive (a false failover: probes lost on a lossy link, a
// prober starved of CPU), that node learns it from its claims watch, hundreds of ms later on a
// busy machine, and its kernel answers ARP / NS for the address until then: two MACs on the
// wire. The new node's gratuitous ARP / unsolicited NA reaches it at once. Only the node a
// claim is assigned to announces it, and an agent that stalled withdraws before it announces
// again (--stall-withdraw), so another agent of ours claiming an address held here means the
// claim moved: the address comes down now, without a status write (the claim is no longer
// ours to report on), and goes up again only if the claim is still assigned here after a fresh
// version of it arrived or --yield-hold passed without one.
import type { Sighting } from './probes.js';

export interface Yielded {
  ip: string;
  /** The peer's MAC that claimed it. */
  mac: string;
  /** ms: when it was seen */
  at: number;
  /** The claim's resourceVersion when it was seen: a newer one that still names this node ends the yield. */
  resourceVersion: string | undefined;
}

const norm = (mac: string): string => mac.toLowerCase();

/** Whether a sighting is another agent of ours claiming address (not this node, not a foreign host, not a probe). */
export function isPeerClaim(s: Sighting, address: string, nodeMacs: ReadonlySet<string>, peerMacs: ReadonlySet<string>): boolean {
  const mac = norm(s.mac);
  return s.kind === 'claims' && s.address === address && peerMacs.has(mac) && !nodeMacs.has(mac);
}

/** The claims yielded to a peer, each until a newer version of it arrives or holdMs pass. */
export class YieldBook {
  private readonly entries = new Map<string, Yielded>();

  constructor(private readonly holdMs: number) {}

  /** Records a yield; false when the claim was already yielded. */
  note(claim: string, entry: Yielded): boolean {
    if (this.entries.has(claim)) return false;
    this.entries.set(claim, entry);
    return true;
  }

  /**
   * Whether the claim (still assigned here, at resourceVersion) stays down now. A newer version
   * that still names this node, or holdMs without one, ends the yield.
   */
  holds(claim: string, resourceVersion: string | undefined, now: number): boolean {
    const y = this.entries.get(claim);
    if (!y) return false;
    if (resourceVersion !== y.resourceVersion || now - y.at >= this.holdMs) {
      this.entries.delete(claim);
      return false;
    }
    return true;
  }

  get(claim: string): Yielded | undefined {
    return this.entries.get(claim);
  }

  /** Forgets claims no longer assigned here (the move arrived). */
  retain(claims: ReadonlySet<string>): void {
    for (const k of this.entries.keys()) if (!claims.has(k)) this.entries.delete(k);
  }
}
