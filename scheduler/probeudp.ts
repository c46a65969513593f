// The UDP probe transport (api/probewire.ts): one socket per address family for every target,
// probes told apart by a sequence number with a random start, one timer for all the timeouts.
// An answer counts only if it echoes a probe in flight, comes from that probe's address and
// port, and names the node probed. Per probe it does no more than it must (10,000 a second at
// 1,000 nodes and the default 100 ms): the datagram is a copy of one encoded once with a new
// sequence number, addresses are parsed into their canonical text once per address, a send
// takes no lookup and no callback, and a timeout check reads the probes in flight from the
// oldest to the first still in time. A timeout waits until the sockets have no answers queued
// (expiryWaits), and an answer that still comes late is reported (onLateAnswer): the agent
// answers UDP, so udpFirstProbe adds no HTTP probe for it.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP, isIPv6 } from 'node:net';
import { randomInt } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { decodeAnswer, encodeProbe, type AnswerDatagram } from '../api/probewire.js';
import type { ProbeResult } from './health.js';
import type { ProbeFn, ProbeTarget } from './prober.js';

export interface Pending {
  target: ProbeTarget;
  /** The target's address in one canonical text, to compare with where the answer came from. */
  from: string;
  startedAt: number;
  deadline: number;
  timeoutMs: number;
  resolve(result: ProbeResult): void;
}

function canonical(address: string): string {
  try {
    const parsed = ipaddr.process(address);
    return parsed.kind() === 'ipv6' ? parsed.toNormalizedString() : parsed.toString();
  } catch {
    return address;
  }
}

/** What an answer means for the probe it echoes. Pure. */
export function judgeAnswer(
  pending: { target: ProbeTarget; from: string },
  answer: AnswerDatagram,
  from: string,
  rttMs: number,
): ProbeResult | null {
  if (from !== pending.from) return null; // not from the probed address: ignore, the probe may still be answered
  if (answer.node !== pending.target.node) return { ok: false, error: `answered as node ${answer.node}` };
  if (!answer.ok) return { ok: false, error: 'answer says ok: false' };
  return { ok: true, draining: answer.draining, rttMs };
}

/** canonical(), remembered: the same few addresses come back with every probe. */
function canonicalCache(limit = 65_536): (address: string) => string {
  const known = new Map<string, string>();
  return (address) => {
    let c = known.get(address);
    if (c === undefined) {
      if (known.size >= limit) known.clear();
      c = canonical(address);
      known.set(address, c);
    }
    return c;
  };
}

/** The probe datagram for one sequence number: a copy of `template` (encodeProbe's) with that number. */
export function probeDatagram(template: Buffer, seq: number): Buffer {
  const buf = Buffer.allocUnsafe(template.length);
  template.copy(buf);
  buf.writeUInt32BE(seq >>> 0, 6);
  return buf;
}

/**
 * libuv reads at most this many datagrams from a socket per event-loop turn (uv__udp_recvmsg):
 * a turn that read this many may have left answers waiting in the socket.
 */
export const READS_PER_TURN = 32;

/** Turns the expiry waits at most for the sockets to drain (about 64 x 32 answers). */
export const MAX_EXPIRY_DEFERRALS = 64;

/**
 * Whether the timeout check waits one more event-loop turn: the last turn read a full batch,
 * so more answers may wait unread behind it (at 1,000 nodes a starved scheduler finds hundreds
 * queued, and failing their probes is a false failure). Bounded, so a flood cannot hold every
 * timeout off. Pure.
 */
export function expiryWaits(readLastTurn: number, deferrals: number): boolean {
  return readLastTurn >= READS_PER_TURN && deferrals < MAX_EXPIRY_DEFERRALS;
}

/**
 * The probes in flight by sequence number, and in one queue per timeout in the order sent, so
 * that each queue's deadlines only grow: a timeout check reads from each queue's front to the
 * first probe still in time, instead of every probe in flight at every check.
 */
export class InFlight {
  private readonly bySeq = new Map<number, Pending>();
  private readonly queues = new Map<number, Map<number, Pending>>();

  add(seq: number, p: Pending): void {
    this.bySeq.set(seq, p);
    let q = this.queues.get(p.timeoutMs);
    if (!q) this.queues.set(p.timeoutMs, (q = new Map()));
    q.set(seq, p);
  }

  get(seq: number): Pending | undefined {
    return this.bySeq.get(seq);
  }

  delete(seq: number): boolean {
    const p = this.bySeq.get(seq);
    if (!p) return false;
    this.bySeq.delete(seq);
    this.queues.get(p.timeoutMs)?.delete(seq);
    return true;
  }

  get size(): number {
    return this.bySeq.size;
  }

  /** Fails the probes past their deadline (each handed to `expired` first); returns the next deadline. */
  expire(now: number, expired: (p: Pending, seq: number) => void): number {
    let next = Infinity;
    for (const q of this.queues.values()) {
      for (const [seq, p] of q) {
        if (p.deadline > now) {
          next = Math.min(next, p.deadline);
          break;
        }
        q.delete(seq);
        this.bySeq.delete(seq);
        expired(p, seq);
        p.resolve({ ok: false, error: `no UDP answer within ${p.timeoutMs}ms` });
      }
    }
    return next;
  }
}

/** Probes that timed out, kept a while (the last LATE_KEPT) to recognise their late answers. */
export const LATE_KEPT = 8_192;

export class LateAnswers {
  private readonly bySeq = new Map<number, Pending>();

  add(p: Pending, seq: number): void {
    if (this.bySeq.size >= LATE_KEPT) {
      const oldest = this.bySeq.keys().next();
      if (!oldest.done) this.bySeq.delete(oldest.value);
    }
    this.bySeq.set(seq, p);
  }

  take(seq: number): Pending | undefined {
    const p = this.bySeq.get(seq);
    if (p) this.bySeq.delete(seq);
    return p;
  }
}

export interface UdpProberOptions {
  /**
   * An agent answered a probe after its timeout: it answers over UDP, only late (a busy host).
   * udpFirstProbe keeps such an agent on UDP alone: HTTP beside it would only add work.
   */
  onLateAnswer?(target: ProbeTarget): void;
}

/**
 * The socket's name lookup for probe addresses, which are IP literals (IpNode spec.probeAddress
 * is validated as one): the address as it is, at once. Node's default defers every send by a
 * tick through dns.lookup, even for a literal. A name that is not a literal fails its send.
 */
export function literalLookup(address: string, family: number | string | object, callback: LookupCallback): void {
  const kind = isIP(address);
  if (kind === 0) callback(new Error(`probe address ${address} is not an IP address`), '', 0);
  else callback(null, address, kind);
}

type LookupCallback = (err: Error | null, address: string, family: number) => void;

/** The UDP ProbeFn; its sockets are unref'd (they never keep the process alive) and opened on first use. */
export function udpProber(identity: string, opts: UdpProberOptions = {}): ProbeFn {
  const inFlight = new InFlight();
  const late = new LateAnswers();
  const canonicalOf = canonicalCache();
  let template: Buffer | null = null;
  const sockets = new Map<'udp4' | 'udp6', Socket>();
  let seq = randomInt(0, 2 ** 32);
  let timer: NodeJS.Timeout | null = null;
  let armedFor = Infinity;
  /** Answers read since the last expiry check: libuv's per-turn cap reached means more may be waiting. */
  let readSinceCheck = 0;
  let deferrals = 0;

  // The timeout timer only schedules the expiry: Node runs timers before it reads sockets, so a
  // scheduler that did not get the CPU for a while (a busy host) would fail probes whose answers
  // are waiting unread in the socket. setImmediate runs after this turn's socket reads, and the
  // check waits further turns while each of them read a full batch (expiryWaits).
  const expire = (): void => {
    timer = null;
    armedFor = Infinity;
    readSinceCheck = 0;
    deferrals = 0;
    setImmediate(expireDue);
  };
  const expireDue = (): void => {
    if (expiryWaits(readSinceCheck, deferrals)) {
      readSinceCheck = 0;
      deferrals++;
      return void setImmediate(expireDue);
    }
    arm(inFlight.expire(performance.now(), (p, seq) => late.add(p, seq)));
  };
  const arm = (deadline: number): void => {
    if (deadline >= armedFor) return;
    if (timer !== null) clearTimeout(timer);
    armedFor = deadline;
    timer = setTimeout(expire, Math.max(0, deadline - performance.now()));
    timer.unref();
  };
  const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    readSinceCheck++;
    const answer = decodeAnswer(msg);
    if (!answer) return;
    const p = inFlight.get(answer.seq);
    if (!p) return lateAnswer(answer, rinfo);
    if (rinfo.port !== p.target.port) return;
    // The probed address in canonical text is the common case: no parse needed to compare.
    const from = rinfo.address === p.from ? p.from : canonicalOf(rinfo.address);
    const result = judgeAnswer(p, answer, from, performance.now() - p.startedAt);
    if (!result) return;
    inFlight.delete(answer.seq);
    p.resolve(result);
  };
  /** An answer to a probe that already timed out: the agent answers UDP, only late (onLateAnswer). */
  const lateAnswer = (answer: AnswerDatagram, rinfo: RemoteInfo): void => {
    const p = late.take(answer.seq);
    if (!p || rinfo.port !== p.target.port) return;
    const from = rinfo.address === p.from ? p.from : canonicalOf(rinfo.address);
    if (judgeAnswer(p, answer, from, 0)?.ok) opts.onLateAnswer?.(p.target);
  };
  const socketFor = (type: 'udp4' | 'udp6'): Socket => {
    let socket = sockets.get(type);
    if (!socket) {
      // Room for a slot's answers arriving together (the kernel caps it at net.core.rmem_max).
      socket = createSocket({ type, recvBufferSize: 1 << 20, lookup: literalLookup });
      socket.on('message', onMessage);
      socket.on('error', () => undefined); // a send error: its probe fails at its timeout; nothing here is fatal
      socket.unref();
      sockets.set(type, socket);
    }
    return socket;
  };

  return (target, timeoutMs) =>
    new Promise<ProbeResult>((resolve) => {
      seq = (seq + 1) >>> 0;
      const s = seq;
      const startedAt = performance.now();
      // Encoded on first use, so an identity too long for the datagram fails each probe, not the start.
      template ??= encodeProbe({ seq: 0, identity });
      const datagram = probeDatagram(template, s);
      inFlight.add(s, { target, from: canonicalOf(target.address), startedAt, deadline: startedAt + timeoutMs, timeoutMs, resolve });
      arm(startedAt + timeoutMs);
      const socket = socketFor(isIPv6(target.address) ? 'udp6' : 'udp4');
      // No send callback: without one Node tries the send at once and queues nothing per probe
      // (with one, every send costs a callback on the next tick). A send that fails is then a
      // probe without an answer: it fails at its timeout, which is the same verdict.
      socket.send(datagram, target.port, target.address);
    });
}
