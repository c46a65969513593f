// `make bench`: runs every benchmark module in test/bench (or those named on the command
// line) and prints one JSON object, keyed by module, on stdout. Progress goes to stderr.
// A benchmark module exports `run(): Promise<Record<string, unknown>>`; modules without one are helpers.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface BenchModule {
  run?: () => Promise<Record<string, unknown>>;
}

const dir = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.test.ts') && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();
const wanted = process.argv.slice(2);
const names = wanted.length ? wanted : available;
const results: Record<string, unknown> = {};
let failed = false;
for (const name of names) {
  if (!available.includes(name)) throw new Error(`no benchmark ${name}; have ${available.join(', ')}`);
  process.stderr.write(`bench ${name}...\n`);
  try {
    const mod = (await import(`./${name}.ts`)) as BenchModule;
    // Helper modules (plotsvg.ts) have no run(): skipped when every benchmark runs.
    if (!mod.run) {
      if (wanted.length) throw new Error(`${name} is not a benchmark (no run())`);
      continue;
    }
    results[name] = await mod.run();
  } catch (err) {
    failed = true;
    results[name] = { error: String(err instanceof Error ? err.stack : err) };
  }
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
process.exitCode = failed ? 1 : 0;
