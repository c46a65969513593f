// The soak of issue 9: Service churn (a create or delete every second), a random fault every
// 20-40 s, the invariant checker throughout. `runSoak` serves `sudo make soak`
// (SOAK_MINUTES, default 30) and the 3-minute e2e test.
import { deleteBursts, FAULTS } from './faults.js';
import { CHURN_LABEL, churnService, externalIp, nextStep, SHAPES } from './churn.js';
import { startSession, stats, type Session } from './session.js';
import { byKind, violations, type Outcome } from './summary.js';

export interface SoakOptions {
  minutes: number;
  /** Fault kinds to pick from (default: all). */
  faults?: string[];
  seed?: number;
  log: (message: string) => void;
}

export interface SoakReport {
  minutes: number;
  seed: number;
  churn: { creates: number; deletes: number; errors: number };
  faults: ReturnType<typeof byKind>;
  downtime_ms_all: ReturnType<typeof stats>;
  violations: ReturnType<typeof violations>;
  make_before_break_overlaps: { ip: string; start: number; lengthMs: number }[];
  leaked_at_end: string[];
  pending_at_end: string[];
  memory_mib: { start: Record<string, number>; end: Record<string, number> };
  restarts: { by_faults: number; unexpected: string[] };
  wire: { frames: number; moves: number; capture_dropped: number | null; pcap: string };
}

async function churnLoop(session: Session, until: () => boolean, counts: SoakReport['churn']): Promise<void> {
  const { lab, env } = session;
  const live: string[] = [];
  let n = 0;
  while (!until()) {
    const started = Date.now();
    const step = nextStep(live.length, 8, 25, env.random());
    try {
      if (step === 'create') {
        const shape = SHAPES[Math.floor(env.random() * SHAPES.length)] ?? 'lb-v4';
        const name = `churn-${(n++).toString(36)}`;
        const used = new Set(
          (await lab.core.listNamespacedService({ namespace: 'default', labelSelector: CHURN_LABEL })).items.flatMap(
            (s) => s.spec?.externalIPs ?? [],
          ),
        );
        let k = n;
        while ((shape === 'ext-v4' || shape === 'ext-v6') && used.has(externalIp(shape, k)) && k < n + 300) k++;
        await lab.core.createNamespacedService({ namespace: 'default', body: churnService(name, shape, k) });
        live.push(name);
        counts.creates++;
      } else {
        const name = live.splice(Math.floor(env.random() * live.length), 1)[0];
        if (name) await lab.core.deleteNamespacedService({ name, namespace: 'default' });
        counts.deletes++;
      }
    } catch {
      counts.errors++; // the API server may be down on purpose
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? Date.now() % 100000;
  const kinds = options.faults ?? Object.keys(FAULTS);
  const durationMs = options.minutes * 60_000;
  const session = await startSession({ maxMs: durationMs + 15 * 60_000, seed, log: options.log, burst: 20 });
  const { env } = session;
  const memoryAtStart = session.memory();
  const counts = { creates: 0, deletes: 0, errors: 0 };
  const outcomes: Outcome[] = [];
  const end = Date.now() + durationMs;
  let restartsByFaults = 0;
  let clean = false;
  try {
    const churn = churnLoop(session, () => Date.now() >= end, counts);
    while (Date.now() < end) {
      const wait = 20_000 + env.random() * 20_000;
      await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, end - Date.now()))));
      if (Date.now() >= end) break;
      const kind = kinds[Math.floor(env.random() * kinds.length)] ?? 'agent-freeze-2s';
      const fault = FAULTS[kind];
      if (!fault) continue;
      options.log(`fault ${kind}`);
      try {
        const injection = await fault(env, kind);
        await session.recover();
        if (/kill9|schedulers-down/.test(kind)) restartsByFaults++;
        outcomes.push({
          kind,
          target: injection.target,
          start: injection.window.start,
          downtimeMs: session.downtime(injection),
          sentinelMoves: session.checker.movesOf(env.sentinel, injection.window.start, (injection.window.end ?? Date.now()) + 5000).length,
          notes: injection.notes,
        });
        if (kind.startsWith('leader-')) await deleteBursts(env);
      } catch (err) {
        options.log(`${kind}: ${String(err)}`);
        await session.recover().catch((e: unknown) => options.log(`recover: ${String(e)}`));
        outcomes.push({ kind, target: '?', start: Date.now(), downtimeMs: null, sentinelMoves: 0, notes: [], error: String(err) });
      }
    }
    await churn;
    await deleteBursts(env);
    options.log('faults stopped; settling');
    const left = await session.checker.settle(45_000);
    if (left.length) options.log(`not settled: ${left.map((d) => d.detail).join('; ')}`);
    // Let the persistence grace run out on anything left, so it is reported as a violation.
    if (left.length) await new Promise((r) => setTimeout(r, 1000));
    const report = await session.checker.stop();
    clean = report.wire.violations.length + report.state.violations.length + report.liveClaimDeletes.length === 0;
    return {
      minutes: options.minutes,
      seed,
      churn: counts,
      faults: byKind(outcomes, report),
      downtime_ms_all: stats(outcomes.filter((o) => o.downtimeMs !== null).map((o) => o.downtimeMs as number)),
      violations: violations(report),
      make_before_break_overlaps: report.wire.overlaps,
      leaked_at_end: report.leakedAtEnd,
      pending_at_end: report.state.pendingAtEnd.map((d) => d.detail),
      memory_mib: { start: memoryAtStart, end: session.memory() },
      restarts: { by_faults: restartsByFaults, unexpected: session.unexpectedRestarts },
      wire: { frames: report.wire.frames, moves: report.wire.moves, capture_dropped: report.wire.dropped ?? null, pcap: report.wire.pcap },
    };
  } finally {
    await session.close({ keepEvidence: !clean });
  }
}
