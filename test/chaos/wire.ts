// Invariant 1, read from the wire: for each external IP, which MACs answer for it (ARP replies,
// solicited NAs) or claim it (gratuitous ARP, unsolicited NA, an ARP request with it as the
// sender). Pure: frames go in (in capture order), moves and violations come out.
//
// The rule, as issue 9 states it: after a node's first announcement of an address, no other
// MAC may answer for it or claim it. So per address:
// - the owner is the MAC of the latest announcement (or the only MAC answering);
// - an announcement from another MAC moves the address (a move, not a violation);
// - an answer from another MAC while the owner still answers is held for announceGraceMs: if
//   that MAC announces the address within it, it was the new node's kernel answering between
//   the address going up and its agent's first announcement (a move); if not, it was a second
//   MAC answering beside the owner, a violation (a frozen or killed agent's kernel, a node that
//   came back before withdrawing, a node that never announced);
// - an owner silent for longer than silentMs hands the address to whoever answers then
//   (a node that died; its successor's kernel may answer before its agent announces); answers
//   held before that are still judged, since only an announcement excuses them.
// Violations inside an allowed window (a graceful handover's make-before-break, which
// agent/README.md allows) are counted as overlap instead, with their length.
import type { CapturedFrame } from '../lab/capture.js';

export type WireKind = 'announce' | 'answer';

/** One frame that says "this MAC has this IP". */
export interface WireClaim {
  t: number;
  ip: string;
  mac: string;
  kind: WireKind;
  /** Short text for evidence, e.g. "arp reply 192.0.2.50 is-at 02:..:11". */
  what: string;
}

/** Reads what a captured frame says about an address, if anything; our own probes say nothing. */
export function wireClaim(f: CapturedFrame): WireClaim | null {
  if (f.arp) {
    const { op, senderIp, targetIp, senderMac, targetMac } = f.arp;
    if (senderIp === '0.0.0.0') return null; // an RFC 5227 probe: asks, claims nothing
    if (op === 'request') {
      const gratuitous = senderIp === targetIp;
      return {
        t: f.time,
        ip: senderIp,
        mac: senderMac,
        kind: gratuitous ? 'announce' : 'answer',
        what: gratuitous ? `garp request ${senderIp} from ${senderMac}` : `arp request with sender ${senderIp} from ${senderMac}`,
      };
    }
    if (op === 'reply') {
      const gratuitous = senderIp === targetIp || targetMac === senderMac || f.dstMac === 'ff:ff:ff:ff:ff:ff';
      return {
        t: f.time,
        ip: senderIp,
        mac: senderMac,
        kind: gratuitous ? 'announce' : 'answer',
        what: `${gratuitous ? 'garp reply' : 'arp reply'} ${senderIp} is-at ${senderMac}`,
      };
    }
    return null;
  }
  if (f.na) {
    const mac = f.na.targetMac ?? f.srcMac;
    const kind: WireKind = f.na.solicited ? 'answer' : 'announce';
    return {
      t: f.time,
      ip: f.na.target,
      mac,
      kind,
      what: `${f.na.solicited ? 'solicited' : 'unsolicited'} na ${f.na.target} is-at ${mac}`,
    };
  }
  return null;
}

export interface WireMove {
  ip: string;
  t: number;
  from: string | null;
  to: string;
}

/** Two MACs for one IP: consecutive offending frames of one address, less than episodeGapMs apart. */
export interface WireEpisode {
  ip: string;
  start: number;
  end: number;
  /** When the owner at the episode's start announced (or first answered). */
  ownerSince: number;
  macs: string[];
  frames: number;
  /** The first offending frames and the owner's frames around them. */
  evidence: string[];
  /** True when every offending frame fell in an allowed make-before-break window. */
  allowed: boolean;
}

export interface AllowedOverlap {
  mac: string;
  from: number;
  to: number;
}

export interface WireOptions {
  silentMs: number;
  announceGraceMs: number;
  episodeGapMs: number;
  evidenceFrames: number;
}

export const WIRE_DEFAULTS: WireOptions = { silentMs: 350, announceGraceMs: 500, episodeGapMs: 1000, evidenceFrames: 12 };

interface AddressState {
  owner: string;
  ownerSince: number;
  lastSeen: Map<string, number>;
  /** Answers from other MACs while the owner answered, waiting for their own announcement. */
  held: { c: WireClaim; owner: string; ownerSince: number; evidence: string[] }[];
  recent: WireClaim[];
  episode: WireEpisode | null;
}

const fmt = (c: WireClaim): string => `${new Date(c.t).toISOString()} ${c.what}`;

export class WireJudge {
  readonly moves: WireMove[] = [];
  readonly episodes: WireEpisode[] = [];
  private readonly state = new Map<string, AddressState>();
  private readonly allowed: AllowedOverlap[] = [];
  private readonly options: WireOptions;
  frames = 0;

  constructor(options: Partial<WireOptions> = {}) {
    this.options = { ...WIRE_DEFAULTS, ...options };
  }

  /** Frames from mac between from and to may overlap with the new owner (a graceful handover). */
  allowOverlap(window: AllowedOverlap): void {
    this.allowed.push(window);
  }

  push(frame: CapturedFrame): void {
    const claim = wireClaim(frame);
    if (claim) this.observe(claim);
  }

  observe(c: WireClaim): void {
    this.frames++;
    let s = this.state.get(c.ip);
    if (!s) {
      s = { owner: c.mac, ownerSince: c.t, lastSeen: new Map(), held: [], recent: [], episode: null };
      this.state.set(c.ip, s);
      this.moves.push({ ip: c.ip, t: c.t, from: null, to: c.mac });
    }
    this.flush(s, c.t);
    s.recent.push(c);
    if (s.recent.length > this.options.evidenceFrames) s.recent.shift();
    const ownerLast = s.lastSeen.get(s.owner) ?? s.ownerSince;
    s.lastSeen.set(c.mac, c.t);
    if (c.mac === s.owner) return;
    const ownerActive = c.t - ownerLast <= this.options.silentMs;
    if (c.kind === 'announce' || !ownerActive) {
      this.moveTo(s, c, c.kind === 'announce');
      return;
    }
    s.held.push({ c, owner: s.owner, ownerSince: s.ownerSince, evidence: s.recent.map(fmt) });
  }

  /** Held answers older than the grace whose MAC never announced are violations. */
  private flush(s: AddressState, now: number): void {
    while (s.held.length && (s.held[0]?.c.t ?? now) + this.options.announceGraceMs < now) {
      const h = s.held.shift();
      if (h) this.offend(s, h);
    }
  }

  /** Judges every answer still held (call once the capture has ended). */
  finish(): void {
    for (const s of this.state.values()) this.flush(s, Infinity);
  }

  private moveTo(s: AddressState, c: WireClaim, announced: boolean): void {
    this.moves.push({ ip: c.ip, t: c.t, from: s.owner, to: c.mac });
    // Its own earlier answers were the new owner's kernel ahead of its agent; only its
    // announcement says so (a MAC that takes over because the owner fell silent, e.g. after a
    // stale announcement, answered beside it before).
    if (announced) s.held = s.held.filter((h) => h.c.mac !== c.mac);
    s.owner = c.mac;
    s.ownerSince = c.t;
  }

  private isAllowed(c: WireClaim): boolean {
    return this.allowed.some((w) => w.mac === c.mac && c.t >= w.from && c.t <= w.to);
  }

  private offend(s: AddressState, h: AddressState['held'][number]): void {
    const c = h.c;
    const allowed = this.isAllowed(c);
    const e = s.episode;
    if (e && c.t - e.end <= this.options.episodeGapMs && e.allowed === allowed) {
      e.end = c.t;
      e.frames++;
      if (!e.macs.includes(c.mac)) e.macs.push(c.mac);
      if (e.evidence.length < this.options.evidenceFrames * 2) e.evidence.push(fmt(c));
      return;
    }
    const episode: WireEpisode = {
      ip: c.ip,
      start: c.t,
      end: c.t,
      ownerSince: h.ownerSince,
      macs: [h.owner, c.mac],
      frames: 1,
      evidence: [`owner ${h.owner} since ${new Date(h.ownerSince).toISOString()}`, ...h.evidence],
      allowed,
    };
    s.episode = episode;
    this.episodes.push(episode);
  }

  /** Violations: episodes outside any allowed window. */
  violations(): WireEpisode[] {
    return this.episodes.filter((e) => !e.allowed);
  }

  /** Allowed make-before-break overlaps: from the new owner's announcement to the old owner's last answer (ms). */
  overlaps(): { ip: string; start: number; lengthMs: number }[] {
    return this.episodes
      .filter((e) => e.allowed)
      .map((e) => ({ ip: e.ip, start: e.ownerSince, lengthMs: Math.round(e.end - e.ownerSince) }));
  }
}
