// Writes each claim's outcome on this node to its status, only when it changes, a few at a
// time. A write the apiserver refuses because the claim just moved away is expected (logged at
// debug) and not retried; the watch brings the move next.
import type { IpClaim } from '../api/types.js';
import { isNotFound } from '../api/client.js';
import type { Clock } from '../lib/clock.js';
import { forEachLimit } from '../lib/concurrency.js';
import type { Logger } from '../lib/logger.js';
import type { KubePort } from './kube.js';
import type { AgentMetrics } from './metrics.js';
import { ClaimNotOnThisNode } from './refusals.js';
import { nextClaimStatus, type ClaimOutcome } from './status.js';

const STATUS_WRITE_CONCURRENCY = 16;
/** A status written this recently with the same outcome is not written again (the watch has not caught up yet). */
const REWRITE_AFTER_MS = 10_000;

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface StatusWrite {
  name: string;
  status: NonNullable<ReturnType<typeof nextClaimStatus>>;
  key: string;
  outcome: ClaimOutcome;
}

export class ClaimStatusWriter {
  private readonly written = new Map<string, { key: string; at: number }>();

  constructor(
    private readonly nodeName: string,
    private readonly deps: { kube: KubePort; clock: Clock; logger: Logger; metrics: AgentMetrics },
  ) {}

  /** Writes the outcomes that change a claim's status; forgets claims no longer reported. */
  async write(outcomes: Map<string, ClaimOutcome>, byName: Map<string, IpClaim>): Promise<void> {
    const now = this.deps.clock.now();
    const writes = this.due(outcomes, byName, now);
    await forEachLimit(writes, STATUS_WRITE_CONCURRENCY, (w) => this.send(w, now));
    for (const name of this.written.keys()) if (!outcomes.has(name)) this.written.delete(name);
  }

  private due(outcomes: Map<string, ClaimOutcome>, byName: Map<string, IpClaim>, now: number): StatusWrite[] {
    const nowIso = new Date(now).toISOString();
    const writes: StatusWrite[] = [];
    for (const [name, outcome] of outcomes) {
      const status = nextClaimStatus(outcome, { node: this.nodeName, nowIso, current: byName.get(name)?.status, claim: byName.get(name) });
      if (!status) continue;
      const key = JSON.stringify([outcome, byName.get(name)?.spec.cidr]);
      const last = this.written.get(name);
      if (last && last.key === key && now - last.at < REWRITE_AFTER_MS) continue; // written; the watch has not caught up yet
      writes.push({ name, status, key, outcome });
    }
    return writes;
  }

  private async send(w: StatusWrite, now: number): Promise<void> {
    const { kube, metrics, logger: log } = this.deps;
    try {
      await kube.patchClaimStatus(w.name, w.status);
      this.written.set(w.name, { key: w.key, at: now });
      if (w.outcome.kind === 'failed') {
        metrics.claimFailed(w.outcome.reason);
        log.warn({ claim: w.name, reason: w.outcome.reason, message: w.outcome.message }, 'claim failed on this node');
      }
    } catch (err) {
      // Moved away between our last look and this write: refused, expected, not retried.
      if (err instanceof ClaimNotOnThisNode) log.debug({ claim: w.name, now: err.nodeName }, err.message);
      else if (!isNotFound(err)) log.warn({ claim: w.name, err: errText(err) }, 'could not write claim status');
    }
  }
}
