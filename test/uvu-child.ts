// Runs the given test files in one uvu process (spawned by test/run.ts).
import { run } from 'uvu/run';
import { relative, resolve } from 'node:path';

const files = process.argv.slice(2);
await run(files.map((file) => ({ name: relative(process.cwd(), file), file: resolve(file) })));
