// The UDP probe transport (api/probewire.ts): one socket per address family for every target,
// probes told apart by a sequence number with a random start, one timer for all the timeouts.
// An answer counts only if it echoes a probe in flight, comes from that probe's address and
// port, and names the node probed. Per probe it does no more than it must (thousands a second
// at 1,000 nodes): the datagram is a copy of one encoded once with a new sequence number, and
// addresses are parsed into their canonical text once per address, not per probe and answer.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { randomInt } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { decodeAnswer, encodeProbe, type AnswerDatagram } from '../api/probewire.js';
import type { ProbeResult } from './health.js';
import type { ProbeFn, ProbeTarget } from './prober.js';

interface Pending {
  target: ProbeTarget;
  /** The target's address in one canonical text, to compare with where the answer came from. */
  from: string;
  startedAt: number;
  deadline: number;
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

/** The UDP ProbeFn; its sockets are unref'd (they never keep the process alive) and opened on first use. */
export function udpProber(identity: string): ProbeFn {
  const pending = new Map<number, Pending>();
  const canonicalOf = canonicalCache();
  let template: Buffer | null = null;
  const sockets = new Map<'udp4' | 'udp6', Socket>();
  let seq = randomInt(0, 2 ** 32);
  let timer: NodeJS.Timeout | null = null;
  let armedFor = Infinity;

  // The timeout timer only schedules the expiry: Node runs timers before it reads sockets, so a
  // scheduler that did not get the CPU for a while (a busy host) would fail probes whose answers
  // are waiting unread in the socket. setImmediate runs after this turn's socket reads.
  const expire = (): void => {
    timer = null;
    armedFor = Infinity;
    setImmediate(expireDue);
  };
  const expireDue = (): void => {
    const now = performance.now();
    let next = Infinity;
    for (const [s, p] of pending) {
      if (p.deadline <= now) {
        pending.delete(s);
        p.resolve({ ok: false, error: `no UDP answer within ${Math.round(p.deadline - p.startedAt)}ms` });
      } else next = Math.min(next, p.deadline);
    }
    arm(next);
  };
  const arm = (deadline: number): void => {
    if (deadline >= armedFor) return;
    if (timer !== null) clearTimeout(timer);
    armedFor = deadline;
    timer = setTimeout(expire, Math.max(0, deadline - performance.now()));
    timer.unref();
  };
  const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const answer = decodeAnswer(msg);
    const p = answer ? pending.get(answer.seq) : undefined;
    if (!answer || !p || rinfo.port !== p.target.port) return;
    // The probed address in canonical text is the common case: no parse needed to compare.
    const from = rinfo.address === p.from ? p.from : canonicalOf(rinfo.address);
    const result = judgeAnswer(p, answer, from, performance.now() - p.startedAt);
    if (!result) return;
    pending.delete(answer.seq);
    p.resolve(result);
  };
  const socketFor = (type: 'udp4' | 'udp6'): Socket => {
    let socket = sockets.get(type);
    if (!socket) {
      // Room for a slot's answers arriving together (the kernel caps it at net.core.rmem_max).
      socket = createSocket({ type, recvBufferSize: 1 << 20 });
      socket.on('message', onMessage);
      socket.on('error', () => undefined); // a send error is reported to its probe; nothing else is fatal
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
      pending.set(s, { target, from: canonicalOf(target.address), startedAt, deadline: startedAt + timeoutMs, resolve });
      arm(startedAt + timeoutMs);
      const socket = socketFor(isIPv6(target.address) ? 'udp6' : 'udp4');
      socket.send(datagram, target.port, target.address, (err) => {
        if (!err || !pending.delete(s)) return;
        resolve({ ok: false, error: `UDP send: ${err.message}` });
      });
    });
}
