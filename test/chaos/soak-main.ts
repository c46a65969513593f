// `sudo make soak`: SOAK_MINUTES (default 30), SOAK_FAULTS=a,b (default every kind), CHAOS_SEED.
// One JSON object on stdout; progress on stderr; exit 1 when an invariant was violated.
import { runSoak } from './soak.js';

const report = await runSoak({
  minutes: Number(process.env.SOAK_MINUTES ?? 30),
  ...(process.env.SOAK_FAULTS ? { faults: process.env.SOAK_FAULTS.split(',').map((s) => s.trim()) } : {}),
  ...(process.env.CHAOS_SEED ? { seed: Number(process.env.CHAOS_SEED) } : {}),
  log: (m) => void process.stderr.write(`soak: ${m}\n`),
});
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.exitCode = report.violations.total === 0 ? 0 : 1;
