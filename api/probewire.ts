// The UDP probe: one datagram each way between a scheduler replica and an agent, on the agent's
// IpNode spec.probePort (the status server's TCP port number, bound again over UDP). Part of the
// wire contract between the two programs, beside the HTTP probe header. Pure encode / decode.
//
// Probe, scheduler -> agent (10 + n bytes):
//   0  "IPCP" magic (0x49 0x50 0x43 0x50)
//   4  version (1)
//   5  kind (1 = probe)
//   6  sequence, uint32 big-endian: echoed back; a random start per socket, so an answer that
//      does not echo a probe in flight (late, duplicated, or forged off-path) is dropped
//   10 identity length n (uint8), then n bytes of the scheduler's identity (UTF-8)
// Answer, agent -> scheduler (11 + n bytes):
//   0  "IPCP", 4 version (1), 5 kind (2 = answer)
//   6  sequence echoed, uint32 big-endian
//   10 flags: bit 0 ok, bit 1 draining (other bits 0, ignored when read)
//   11 node name length n (uint8), then n bytes of the node name (UTF-8)
// Node names are DNS subdomains (at most 253 bytes) and identities are Pod names, so one length
// byte is enough; longer text is refused rather than cut.

export const PROBE_MAGIC = Buffer.from('IPCP', 'ascii');
export const PROBE_WIRE_VERSION = 1;
export const PROBE_KIND = 1;
export const ANSWER_KIND = 2;
const FLAG_OK = 0x01;
const FLAG_DRAINING = 0x02;
const MAX_TEXT_BYTES = 255;

export interface ProbeDatagram {
  seq: number;
  identity: string;
}

export interface AnswerDatagram {
  seq: number;
  ok: boolean;
  draining: boolean;
  node: string;
}

function header(kind: number, seq: number, rest: number): Buffer {
  const buf = Buffer.alloc(10 + rest);
  PROBE_MAGIC.copy(buf, 0);
  buf[4] = PROBE_WIRE_VERSION;
  buf[5] = kind;
  buf.writeUInt32BE(seq >>> 0, 6);
  return buf;
}

function text(value: string, what: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > MAX_TEXT_BYTES) throw new Error(`${what} is ${bytes.length} bytes; the UDP probe carries at most ${MAX_TEXT_BYTES}`);
  return bytes;
}

export function encodeProbe(p: ProbeDatagram): Buffer {
  const identity = text(p.identity, 'scheduler identity');
  const buf = header(PROBE_KIND, p.seq, 1 + identity.length);
  buf[10] = identity.length;
  identity.copy(buf, 11);
  return buf;
}

export function encodeAnswer(a: AnswerDatagram): Buffer {
  const node = text(a.node, 'node name');
  const buf = header(ANSWER_KIND, a.seq, 2 + node.length);
  buf[10] = (a.ok ? FLAG_OK : 0) | (a.draining ? FLAG_DRAINING : 0);
  buf[11] = node.length;
  node.copy(buf, 12);
  return buf;
}

/** The kind of a well-formed header, or null for anything else (not ours, other version, short). */
function kindOf(buf: Buffer): number | null {
  if (buf.length < 10 || !buf.subarray(0, 4).equals(PROBE_MAGIC) || buf[4] !== PROBE_WIRE_VERSION) return null;
  return buf[5] ?? null;
}

/** Reads a length-prefixed text at `at` that must end the datagram exactly. */
function lengthPrefixed(buf: Buffer, at: number): string | null {
  const n = buf[at];
  if (n === undefined || buf.length !== at + 1 + n) return null;
  return buf.toString('utf8', at + 1, at + 1 + n);
}

export function decodeProbe(buf: Buffer): ProbeDatagram | null {
  if (kindOf(buf) !== PROBE_KIND) return null;
  const identity = lengthPrefixed(buf, 10);
  return identity === null ? null : { seq: buf.readUInt32BE(6), identity };
}

export function decodeAnswer(buf: Buffer): AnswerDatagram | null {
  if (kindOf(buf) !== ANSWER_KIND || buf.length < 12) return null;
  const flags = buf[10] ?? 0;
  const node = lengthPrefixed(buf, 11);
  return node === null ? null : { seq: buf.readUInt32BE(6), ok: (flags & FLAG_OK) !== 0, draining: (flags & FLAG_DRAINING) !== 0, node };
}
