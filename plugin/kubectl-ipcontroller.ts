#!/usr/bin/env node
// The executable kubectl finds on the PATH as `kubectl-ipcontroller` and runs for
// `kubectl ipcontroller ...` (npm puts it there: package.json "bin"; see the README).
import { main } from './main.js';

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: stop.signal,
});
