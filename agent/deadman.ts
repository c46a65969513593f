// A dead-man switch in the kernel. While the agent process is frozen (SIGSTOP, a VM pause),
// starved of CPU or dead (kill -9), its addresses stay on the interface and the kernel keeps
// answering ARP / neighbour solicitations for them, also after the scheduler has moved them to
// another node: two MACs answer for one address. Nothing in a process that does not run can
// stop that, so the kernel must: nftables drops this host's ARP replies and neighbour
// advertisements for the addresses the agent serves ("managed") unless the address is in a set
// whose elements time out ("live"), and only the running agent refreshes that set. A node whose
// agent has not run for --deadman stops answering; its own announcements (AF_PACKET frames)
// do not pass these hooks. Pure: the nft scripts; NftDeadman runs them.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { nftScript } from './nft.js';
import ipaddr from 'ipaddr.js';
import type { Logger } from '../lib/logger.js';

export const DEADMAN_TABLE = 'ipcontroller_deadman';

/** The port the agent refreshes; a no-op one when --deadman is 0. */
export interface DeadmanPort {
  /** Replaces the managed addresses and marks them live for ttlMs. */
  refresh(addresses: string[], ttlMs: number): Promise<void>;
  /**
   * Adds addresses about to go up as managed but not live: the kernel stays silent for them
   * until the next refresh, which the agent sends once their first announcement is out.
   */
  hold(addresses: string[]): Promise<void>;
  /** Removes the tables (a clean stop that also removed its addresses). */
  close(): Promise<void>;
}

/** Tables, sets and rules, created anew (any older copy of the tables is deleted first). */
export function deadmanTables(table = DEADMAN_TABLE): string {
  return [
    // "table X {}" then "delete table X": the usual way to make a script idempotent.
    `table arp ${table} {}`,
    `delete table arp ${table}`,
    `table arp ${table} {`,
    '  set managed { type ipv4_addr; }',
    '  set live { type ipv4_addr; flags timeout; }',
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    '    arp operation reply arp saddr ip @managed arp saddr ip != @live drop',
    '  }',
    '}',
    `table ip6 ${table} {}`,
    `delete table ip6 ${table}`,
    `table ip6 ${table} {`,
    // nft 1.0 has no named selector for the NA's target address: bytes 8-23 of the ICMPv6
    // header, keyed as 128-bit integers.
    '  set managed { typeof @th,64,128; }',
    '  set live { typeof @th,64,128; flags timeout; }',
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    '    icmpv6 type nd-neighbor-advert @th,64,128 @managed @th,64,128 != @live drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** An IPv6 address as the 128-bit integer the ip6 sets are keyed by. */
export function ipv6Key(address: string): string {
  const bytes = ipaddr.IPv6.parse(address).toByteArray();
  return `0x${bytes.map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** One transaction: the sets say exactly these addresses are managed and live for ttlMs. */
export function deadmanRefresh(addresses: string[], ttlMs: number, table = DEADMAN_TABLE): string {
  const v4 = addresses.filter((a) => ipaddr.IPv4.isValid(a) && !a.includes(':'));
  const v6 = addresses.filter((a) => a.includes(':')).map(ipv6Key);
  const ttl = Math.max(1, Math.round(ttlMs));
  const lines = [
    `flush set arp ${table} managed`,
    `flush set arp ${table} live`,
    `flush set ip6 ${table} managed`,
    `flush set ip6 ${table} live`,
  ];
  if (v4.length) {
    lines.push(`add element arp ${table} managed { ${v4.join(', ')} }`);
    lines.push(`add element arp ${table} live { ${v4.map((a) => `${a} timeout ${ttl}ms`).join(', ')} }`);
  }
  if (v6.length) {
    lines.push(`add element ip6 ${table} managed { ${v6.join(', ')} }`);
    lines.push(`add element ip6 ${table} live { ${v6.map((a) => `${a} timeout ${ttl}ms`).join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * One transaction: the addresses join the managed set without being live. A new owner's kernel
 * would otherwise answer an ARP request that comes between the address going up and its first
 * gratuitous ARP, while the old owner (a live node the claim moved from) answers too: the
 * old one yields only on that announcement (kernelyield.ts).
 */
export function deadmanHold(addresses: string[], table = DEADMAN_TABLE): string {
  const v4 = addresses.filter((a) => ipaddr.IPv4.isValid(a) && !a.includes(':'));
  const v6 = addresses.filter((a) => a.includes(':')).map(ipv6Key);
  const lines: string[] = [];
  if (v4.length) lines.push(`add element arp ${table} managed { ${v4.join(', ')} }`);
  if (v6.length) lines.push(`add element ip6 ${table} managed { ${v6.join(', ')} }`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Whether `nft list tables` shows both of the switch's tables. */
export function hasTables(listing: string, table = DEADMAN_TABLE): boolean {
  const lines = listing.split('\n').map((l) => l.trim());
  return lines.includes(`table arp ${table}`) && lines.includes(`table ip6 ${table}`);
}

function listTables(): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('nft', ['list', 'tables'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(out));
  });
}

/** A script as one line: `nft -i` runs each line as one transaction. */
export function asOneLine(script: string): string {
  return `${script.trim().split('\n').join('; ')}\n`;
}

/**
 * A listing whose output ends with a line "}" (the table's close): nft -i runs lines in order,
 * so once it is out every line written before it has been applied.
 */
export const ACK_LINE = `list chain arp ${DEADMAN_TABLE} out\n`;

/** How long a hold waits for nft before the addresses go up anyway (as they did before holds were confirmed). */
const HOLD_ACK_TIMEOUT_MS = 1_000;

/** Count of ACK_LINE listings completed in some nft output: its lines that are exactly "}". Pure. */
export function acksIn(text: string): number {
  return text.split('\n').filter((l) => l === '}').length;
}

/**
 * Waiters for ACK_LINE listings: the k-th one written is confirmed by the k-th "}" read, so a
 * waiter that gave up does not let a later one pass on its late listing. All fail when nft exits.
 */
class AckWaiters {
  private sent = 0;
  private received = 0;
  private partial = '';
  private readonly waiting = new Map<number, (ok: boolean) => void>();

  /** Call right before writing ACK_LINE; resolves true once it has run, false after timeoutMs or an exit. */
  next(timeoutMs: number): Promise<boolean> {
    const k = ++this.sent;
    return new Promise((resolve) => {
      const settle = (ok: boolean): void => {
        clearTimeout(timer);
        this.waiting.delete(k);
        resolve(ok);
      };
      const timer = setTimeout(() => settle(false), timeoutMs);
      this.waiting.set(k, settle);
    });
  }

  read(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    this.received += acksIn(lines.join('\n'));
    for (const [k, settle] of [...this.waiting]) if (k <= this.received) settle(true);
  }

  /** nft exited: a new process counts from zero. */
  endAll(): void {
    for (const settle of [...this.waiting.values()]) settle(false);
    this.sent = 0;
    this.received = 0;
    this.partial = '';
  }
}

/**
 * The switch through the nft command (Debian's nftables), in the agent's network namespace:
 * the tables once with `nft -f -`, then every refresh as one line to a long-lived `nft -i`
 * (a process per refresh cost about 15 ms of CPU with 200 addresses, a line about 5 ms).
 */
export async function nftDeadman(logger: Logger): Promise<DeadmanPort> {
  // Tables left by an earlier run (a crash, kill -9) are kept as they are: their managed set
  // still names what that run left on the interface, and with nothing live the kernel stays
  // silent for it until this run's first reconcile has decided (agent.ts refreshes only after it).
  // (`nft list tables`, not `list table` lines in one -f batch: nft 1.0.6 fails those.)
  const present = hasTables(await listTables());
  if (!present) {
    const made = await nftScript(deadmanTables());
    if (made.code !== 0) throw new Error(`nft: ${made.stderr.trim()}`);
  }
  let shell: ChildProcessWithoutNullStreams | undefined;
  let lastError = 0;
  const acks = new AckWaiters();
  const open = (): ChildProcessWithoutNullStreams => {
    const child = spawn('nft', ['-i']);
    child.stdout.on('data', (d: Buffer) => acks.read(d.toString()));
    child.stdin.on('error', () => undefined); // it exited: the next refresh starts another
    child.stderr.on('data', (d: Buffer) => {
      // A refresh that fails leaves the addresses unanswered once the last one expires: safe,
      // but it takes this node's service down, so it is an error (at most one line a minute).
      if (Date.now() - lastError < 60_000) return;
      lastError = Date.now();
      logger.error({ err: d.toString().trim() }, 'deadman: refresh failed; this node stops answering for its addresses');
    });
    child.on('exit', () => {
      if (shell !== child) return;
      shell = undefined;
      acks.endAll();
    });
    return child;
  };
  return {
    async refresh(addresses, ttlMs) {
      shell ??= open();
      shell.stdin.write(asOneLine(deadmanRefresh(addresses, ttlMs)));
    },
    async hold(addresses) {
      const script = deadmanHold(addresses);
      if (!script) return;
      shell ??= open();
      // Awaited: the addresses go up right after, through a long-lived ip process that is
      // quicker than this line, and the hold must be in the kernel first.
      const acked = acks.next(HOLD_ACK_TIMEOUT_MS);
      shell.stdin.write(asOneLine(script) + ACK_LINE);
      if (!(await acked)) logger.warn({ addresses: addresses.length }, 'deadman: hold not confirmed in time; adding the addresses anyway');
    },
    async close() {
      shell?.stdin.end();
      shell = undefined;
      await nftScript(`delete table arp ${DEADMAN_TABLE}\ndelete table ip6 ${DEADMAN_TABLE}\n`);
    },
  };
}
