// Yielding in the kernel (issue 9: two MACs for one address). When the scheduler moves a claim
// off a node that is still alive (its link flapped, its probes were lost), the new node's
// gratuitous ARP / unsolicited NA reaches the old one at once, but the old agent lets go only
// after it has read that frame (yielding.ts) or the claims watch, and then removed the
// address: a few ms on a quiet machine, more under load. A client's "who has" in that window
// gets two answers. So the old node's kernel stops answering by itself, on the frame: an
// nftables input rule puts every address that another agent of ours (its MAC in `peers`, from
// the IpNodes our claims name) announces into `yielded`, whose elements time out
// KERNEL_YIELD_MS after the last such frame, and an output rule drops this host's ARP replies
// and neighbour advertisements for those addresses. The agent's own announcements are
// AF_PACKET frames and do not pass these hooks, and nothing here ever makes the kernel answer.
// The cost of a wrong yield (a stale peer still announcing an address that moved here) is this
// kernel not answering requests for that address until a second after the peer's last frame;
// the agent's own announcements keep the clients' caches right meanwhile.
// Pure: the nft scripts. nftKernelYield runs them.
import { nftScript } from './nft.js';
import type { Logger } from '../lib/logger.js';

export const YIELD_TABLE = 'ipcontroller_yield';

/** How long after a peer's last announcement of an address this kernel stays silent for it. */
export const KERNEL_YIELD_MS = 1000;

/** The port the agent tells who its peers are; closing removes the tables. */
export interface KernelYieldPort {
  setPeers(macs: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Tables, sets and rules, created anew (an older copy is deleted first: nothing in them needs keeping). */
export function yieldTables(table = YIELD_TABLE, holdMs = KERNEL_YIELD_MS): string {
  const sets = (key: string): string[] => [
    '  set peers { type ether_addr; }',
    `  set yielded { ${key}; flags dynamic,timeout; timeout ${holdMs}ms; }`,
  ];
  return [
    `table arp ${table} {}`,
    `delete table arp ${table}`,
    `table arp ${table} {`,
    ...sets('type ipv4_addr'),
    '  chain in {',
    '    type filter hook input priority 0; policy accept;',
    // Any ARP frame a peer sends with an address as its sender: a GARP (request or reply form)
    // or an answer it gives. `update` restarts the timeout on every one.
    '    arp saddr ether @peers update @yielded { arp saddr ip }',
    '  }',
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    '    arp operation reply arp saddr ip @yielded drop',
    '  }',
    '}',
    `table ip6 ${table} {}`,
    `delete table ip6 ${table}`,
    `table ip6 ${table} {`,
    // The NA's target address: bytes 8-23 of the ICMPv6 header (as in deadman.ts).
    ...sets('typeof @th,64,128'),
    '  chain in {',
    '    type filter hook input priority 0; policy accept;',
    '    icmpv6 type nd-neighbor-advert ether saddr @peers update @yielded { @th,64,128 }',
    '  }',
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    '    icmpv6 type nd-neighbor-advert @th,64,128 @yielded drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The MACs in nft's form: lower case, deduplicated, sorted (so an unchanged list is seen as unchanged). */
export function peerList(macs: readonly string[]): string[] {
  return [...new Set(macs.map((m) => m.toLowerCase()).filter((m) => /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m)))].sort();
}

/** One transaction: the peers of both families are exactly these MACs. */
export function yieldPeers(macs: readonly string[], table = YIELD_TABLE): string {
  const lines = [`flush set arp ${table} peers`, `flush set ip6 ${table} peers`];
  if (macs.length) {
    lines.push(`add element arp ${table} peers { ${macs.join(', ')} }`);
    lines.push(`add element ip6 ${table} peers { ${macs.join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

/** The tables through the nft command, in the agent's network namespace; peers change rarely, so one `nft -f` each time. */
export async function nftKernelYield(logger: Logger): Promise<KernelYieldPort> {
  const made = await nftScript(yieldTables());
  if (made.code !== 0) throw new Error(`nft: ${made.stderr.trim()}`);
  let current = '';
  return {
    async setPeers(macs) {
      const list = peerList(macs);
      const key = list.join(',');
      if (key === current) return;
      const done = await nftScript(yieldPeers(list));
      if (done.code !== 0) {
        logger.warn({ err: done.stderr.trim() }, 'kernel yield: could not set the peers; yielding is left to the agent');
        return;
      }
      current = key;
      logger.debug({ peers: list }, 'kernel yield: peers set');
    },
    async close() {
      await nftScript(`delete table arp ${YIELD_TABLE}\ndelete table ip6 ${YIELD_TABLE}\n`);
    },
  };
}
