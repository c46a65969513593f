// When a discrepancy becomes a violation. The system converges after every change, and a fault
// (a scheduler down, an API server stopped) stops it converging on purpose; so a discrepancy
// counts only once it has lasted graceMs of time outside any fault window. Safety invariants
// (two claims for one address, two Services holding one pool address) count at once.
// Pure: the caller passes each snapshot's discrepancies with its time.
import type { Discrepancy, Invariant } from './state.js';

export const IMMEDIATE: ReadonlySet<Invariant> = new Set(['double-claim', 'double-allocation', 'address-changed']);

export interface StateViolation extends Discrepancy {
  /** First snapshot that showed it. */
  since: number;
  /** Last snapshot that showed it (it lasted at least until then). */
  until: number;
  /** Whether it was still there at the last snapshot. */
  open: boolean;
}

export class Persistence {
  private readonly open = new Map<string, { d: Discrepancy; since: number; reported?: StateViolation }>();
  readonly violations: StateViolation[] = [];
  /** End of the last fault window (convergence is judged from here); Infinity while one is open. */
  private calmSince = 0;
  private faultDepth = 0;

  constructor(private readonly graceMs: number) {}

  faultStarted(): void {
    this.faultDepth++;
    this.calmSince = Infinity;
  }

  faultEnded(now: number): void {
    this.faultDepth = Math.max(0, this.faultDepth - 1);
    if (this.faultDepth === 0) this.calmSince = now;
  }

  /** Feeds one snapshot; returns the violations it newly made. */
  observe(now: number, found: Discrepancy[]): StateViolation[] {
    const fresh: StateViolation[] = [];
    const seen = new Set<string>();
    for (const d of found) {
      const key = `${d.invariant} ${d.subject}`;
      seen.add(key);
      let entry = this.open.get(key);
      if (!entry) {
        entry = { d, since: now };
        this.open.set(key, entry);
      }
      entry.d = d;
      if (entry.reported) {
        entry.reported.until = now;
        entry.reported.detail = d.detail;
        continue;
      }
      const from = Math.max(entry.since, this.calmSince);
      if (IMMEDIATE.has(d.invariant) || now - from >= this.graceMs) {
        entry.reported = { ...d, since: entry.since, until: now, open: true };
        this.violations.push(entry.reported);
        fresh.push(entry.reported);
      }
    }
    for (const [key, entry] of this.open) {
      if (seen.has(key)) continue;
      if (entry.reported) entry.reported.open = false;
      this.open.delete(key);
    }
    return fresh;
  }

  /** Discrepancies seen now that are not (yet) violations. */
  pending(): Discrepancy[] {
    return [...this.open.values()].filter((e) => !e.reported).map((e) => e.d);
  }
}
