// Announcement schedule: a round at once when an address lands, then --garp-count rounds in
// all, --garp-interval apart, plus an optional refresh of every held address every
// --garp-refresh. A round is both gratuitous ARP forms for IPv4, one unsolicited NA for IPv6.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { FrameSender } from './frames.js';
import type { AgentMetrics } from './metrics.js';
import { announcementFrames } from './packets.js';

export interface AnnounceTarget {
  ip: string;
  iface: string;
  ifindex: number;
  mac: Uint8Array;
}

export interface AnnounceSchedule {
  count: number;
  intervalMs: number;
  refreshMs: number;
}

export class Announcer {
  /** ip -> the target currently announced; a burst stops for an ip once its target is replaced or withdrawn. */
  private readonly held = new Map<string, AnnounceTarget>();
  private readonly log: Logger;

  constructor(
    private readonly deps: { sender: FrameSender; clock: Clock; metrics: AgentMetrics; logger: Logger },
    private readonly schedule: AnnounceSchedule,
    private readonly signal: AbortSignal,
    /** Checked before every round: false (fenced, drained) sends nothing. */
    private readonly mayAnnounce: () => boolean = () => true,
  ) {
    this.log = deps.logger.child({ part: 'announcer' });
    if (schedule.refreshMs > 0) void this.refreshLoop();
  }

  /** Sends the first round now (returns when it is on the wire) and schedules the rest. */
  announce(targets: AnnounceTarget[]): void {
    if (targets.length === 0) return;
    for (const t of targets) this.held.set(t.ip, t);
    if (this.schedule.count <= 0) return;
    this.round(targets);
    if (this.schedule.count > 1) void this.burst(targets);
  }

  withdraw(ip: string): void {
    this.held.delete(ip);
  }

  private current(targets: AnnounceTarget[]): AnnounceTarget[] {
    return targets.filter((t) => this.held.get(t.ip) === t);
  }

  private async burst(targets: AnnounceTarget[]): Promise<void> {
    for (let i = 1; i < this.schedule.count; i++) {
      try {
        await this.deps.clock.sleep(this.schedule.intervalMs, this.signal);
      } catch {
        return;
      }
      const live = this.current(targets);
      if (live.length === 0) return;
      this.round(live);
    }
  }

  private async refreshLoop(): Promise<void> {
    while (!this.signal.aborted) {
      try {
        await this.deps.clock.sleep(this.schedule.refreshMs, this.signal);
      } catch {
        return;
      }
      this.round([...this.held.values()]);
    }
  }

  private round(targets: AnnounceTarget[]): void {
    if (!this.mayAnnounce()) return;
    let errors = 0;
    let firstError = '';
    for (const target of targets) {
      for (const frame of announcementFrames(target.mac, target.ip)) {
        const result = this.deps.sender.send(target.ifindex, frame);
        if (result.ok) this.deps.metrics.announcementSent(frame.kind);
        else {
          this.deps.metrics.announcementFailed(frame.kind);
          errors += 1;
          firstError ||= `${target.ip} on ${target.iface}: ${result.message}`;
        }
      }
    }
    if (errors) this.log.warn({ errors, first: firstError }, 'announcement frames not sent');
  }
}
