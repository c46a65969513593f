// `make bench-plot`: one hard failover in the lab, drawn as the client saw it (plotsvg.ts), with
// the scheduler's and agent's flags from BENCH_SCHEDULER_ARGS / BENCH_AGENT_ARGS as in
// failover.ts. Writes BENCH_PLOT_OUT (default docs/failover.svg) and prints the failure's timing.
// BENCH_PLOT_TRACE=trace.json draws a trace failover.ts wrote (BENCH_TRACE) instead, with no lab.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { breakdownOf, hardFailure, settingsText, startBenchLab, VIP } from './failover.js';
import { failoverSvg, type PlotInput } from './plotsvg.js';

const DEFAULT_OUT = fileURLToPath(new URL('../../docs/failover.svg', import.meta.url));

async function oneFailover(): Promise<PlotInput> {
  const b = await startBenchLab(10 * 60_000);
  const loop = b.lab.requestLoop(VIP, 20, 5 * 60_000);
  try {
    return { settings: settingsText(), failure: await hardFailure(b, loop) };
  } finally {
    await loop.stop();
    await b.close();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const tracePath = process.env.BENCH_PLOT_TRACE;
  const input = tracePath ? (JSON.parse(readFileSync(tracePath, 'utf8')) as PlotInput) : await oneFailover();
  const out = process.env.BENCH_PLOT_OUT ?? DEFAULT_OUT;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, failoverSvg(input));
  const f = input.failure;
  return { svg: out, settings: input.settings, from: f.from, to: f.to, downtime_ms: f.downtimeMs, steps_ms: breakdownOf(f) };
}
