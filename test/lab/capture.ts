// Captures announcement frames on the wire: tcpdump inside a lab namespace writes pcap to
// stdout (-w - -U, one packet at a time; --immediate-mode, or libpcap holds packets for up to
// a block timeout; -B 32 MiB so a burst of a thousand announcements is not dropped), which is decoded here into ARP and NA records with kernel timestamps.
// Use the filter `arp or (icmp6 and ip6[40] == 136)`: a `host IP` filter misses NAs, whose
// address is in the ICMPv6 payload.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Netns } from './lab.js';

export const ANNOUNCEMENT_FILTER = 'arp or (icmp6 and ip6[40] == 136)';

export interface CapturedFrame {
  /** Capture time, ms since the epoch (microsecond precision). */
  time: number;
  srcMac: string;
  dstMac: string;
  ethertype: number;
  arp?: { op: 'request' | 'reply' | number; senderMac: string; senderIp: string; targetMac: string; targetIp: string };
  na?: {
    target: string;
    source: string;
    destination: string;
    hopLimit: number;
    override: boolean;
    solicited: boolean;
    router: boolean;
    targetMac?: string;
  };
  bytes: Buffer;
}

const mac = (b: Buffer, at: number): string => Array.from(b.subarray(at, at + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
const ipv4 = (b: Buffer, at: number): string => Array.from(b.subarray(at, at + 4)).join('.');
function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + i * 2).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { start: i, len: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(':');
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.len).join(':')}`;
}

/** Decodes one Ethernet frame into the fields tests look at. */
export function decodeFrame(bytes: Buffer, time: number): CapturedFrame {
  const frame: CapturedFrame = { time, dstMac: mac(bytes, 0), srcMac: mac(bytes, 6), ethertype: bytes.readUInt16BE(12), bytes };
  if (frame.ethertype === 0x0806 && bytes.length >= 42) {
    const op = bytes.readUInt16BE(20);
    frame.arp = {
      op: op === 1 ? 'request' : op === 2 ? 'reply' : op,
      senderMac: mac(bytes, 22),
      senderIp: ipv4(bytes, 28),
      targetMac: mac(bytes, 32),
      targetIp: ipv4(bytes, 38),
    };
  } else if (frame.ethertype === 0x86dd && bytes.length >= 78 && bytes[20] === 58 && bytes[54] === 136) {
    const flags = bytes.readUInt32BE(58);
    frame.na = {
      source: ipv6(bytes, 22),
      destination: ipv6(bytes, 38),
      hopLimit: bytes[21] ?? 0,
      router: (flags & 0x80000000) !== 0,
      solicited: (flags & 0x40000000) !== 0,
      override: (flags & 0x20000000) !== 0,
      target: ipv6(bytes, 62),
      ...(bytes.length >= 86 && bytes[78] === 2 ? { targetMac: mac(bytes, 80) } : {}),
    };
  }
  return frame;
}

/** Incremental pcap (libpcap format, microsecond timestamps) reader. */
export class PcapReader {
  private buffer = Buffer.alloc(0);
  private headerSeen = false;
  private little = true;
  push(chunk: Buffer): CapturedFrame[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const out: CapturedFrame[] = [];
    if (!this.headerSeen) {
      if (this.buffer.length < 24) return out;
      const magic = this.buffer.readUInt32LE(0);
      if (magic === 0xa1b2c3d4) this.little = true;
      else if (magic === 0xd4c3b2a1) this.little = false;
      else throw new Error(`not a pcap stream (magic ${magic.toString(16)})`);
      this.buffer = this.buffer.subarray(24);
      this.headerSeen = true;
    }
    while (this.buffer.length >= 16) {
      const u32 = (at: number): number => (this.little ? this.buffer.readUInt32LE(at) : this.buffer.readUInt32BE(at));
      const caplen = u32(8);
      if (this.buffer.length < 16 + caplen) break;
      const time = u32(0) * 1000 + u32(4) / 1000;
      out.push(decodeFrame(Buffer.from(this.buffer.subarray(16, 16 + caplen)), time));
      this.buffer = this.buffer.subarray(16 + caplen);
    }
    return out;
  }
}

export interface Capture {
  frames: CapturedFrame[];
  /** Resolves with the first frame (already seen or still to come) that matches, or rejects at the deadline. */
  waitFor(what: string, match: (f: CapturedFrame) => boolean, timeoutMs: number): Promise<CapturedFrame>;
  stop(): Promise<CapturedFrame[]>;
  /** After stop(): packets tcpdump reported as dropped by the kernel (its buffer overflowed), if it said. */
  dropped(): number | undefined;
}

export interface CaptureOptions {
  /** Keep every frame in `frames` (default true; a long soak streams instead). */
  keep?: boolean;
  /** Called with each decoded frame, in capture order. */
  onFrame?: (f: CapturedFrame) => void;
  /** Called with the raw pcap stream, e.g. to save it as evidence. */
  onChunk?: (chunk: Buffer) => void;
}

/** Starts tcpdump on iface inside ns and resolves once it is capturing. */
export async function startCapture(ns: Netns, iface: string, filter = ANNOUNCEMENT_FILTER, options: CaptureOptions = {}): Promise<Capture> {
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns.name, 'tcpdump', '-i', iface, '-n', '-U', '--immediate-mode', '-B', '32768', '-s', '262144', '-w', '-', filter],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const frames: CapturedFrame[] = [];
  const waiters = new Set<{ match: (f: CapturedFrame) => boolean; resolve: (f: CapturedFrame) => void }>();
  const reader = new PcapReader();
  const keep = options.keep ?? true;
  child.stdout?.on('data', (chunk: Buffer) => {
    options.onChunk?.(chunk);
    for (const f of reader.push(chunk)) {
      if (keep) frames.push(f);
      options.onFrame?.(f);
      for (const w of waiters) if (w.match(f)) w.resolve(f);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump in ${ns.name} did not start: ${stderr}`)), 10_000);
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump in ${ns.name} exited ${code}: ${stderr}`));
    });
  });
  return {
    frames,
    waitFor(what, match, timeoutMs) {
      const seen = frames.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (f: CapturedFrame) => {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve(f);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no frame on the wire within ${timeoutMs} ms: ${what} (saw ${frames.length} frames)`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    dropped() {
      const m = /(\d+) packets? dropped by kernel/.exec(stderr);
      return m ? Number(m[1]) : undefined;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      return frames;
    },
  };
}
