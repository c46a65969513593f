// Test entry point: `node --import tsx test/run.ts unit integration e2e`.
// Finds the test files of each group, starts one real control plane for the groups that need
// it, runs each group under uvu in a child process, and ends with the line CI reads:
// "N passed, N failed". uvu prints only totals, so the counts are read from its summary.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './controlplane/harness.js';

type Group = 'unit' | 'integration' | 'e2e';
// e2e gets a control plane of its own, so objects other tests leave (pools, nodes) cannot
// change where the lab's addresses go. Its lab makes a Pod per agent node for the agents'
// Pod-bound tokens, so it keeps the ServiceAccount admission plugin, as a cluster has it.
const GROUPS: Record<Group, { roots: string[]; needsControlPlane: false | 'shared' | 'fresh'; options?: ControlPlaneOptions }> = {
  // Unit tests sit beside the code they test.
  unit: { roots: ['api', 'agent', 'scheduler', 'lib', 'plugin', 'monitoring', 'test/support', 'test/chaos'], needsControlPlane: false },
  integration: { roots: ['test/integration'], needsControlPlane: 'shared' },
  e2e: { roots: ['test/e2e'], needsControlPlane: 'fresh', options: { serviceAccountAdmission: true } },
};

function testFiles(root: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  return entries
    .flatMap((entry) => {
      const path = join(root, entry);
      if (statSync(path).isDirectory()) return entry === 'node_modules' ? [] : testFiles(path);
      return entry.endsWith('.test.ts') ? [path] : [];
    })
    .sort();
}

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
}

function runFiles(files: string[], env: NodeJS.ProcessEnv): Promise<Tally> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/uvu-child.ts', ...files], {
      env: { ...env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      process.stdout.write(chunk);
    });
    child.on('exit', (code) => {
      const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        // The runner died before its summary: count every file as failed rather than guess.
        console.error(`test process exited with ${code} before reporting; counting ${files.length} failure(s)`);
        resolve({ passed: 0, failed: Math.max(files.length, 1), skipped: 0 });
        return;
      }
      const failed = total - passed - skipped + (code !== 0 && total === passed + skipped ? 1 : 0);
      resolve({ passed, failed, skipped });
    });
  });
}

async function main(): Promise<number> {
  const requested = process.argv.slice(2) as Group[];
  const groups = requested.length ? requested : (['unit', 'integration'] as Group[]);
  for (const g of groups) if (!(g in GROUPS)) throw new Error(`unknown test group ${g}; use ${Object.keys(GROUPS).join(', ')}`);

  const tally: Tally = { passed: 0, failed: 0, skipped: 0 };
  let controlPlane: ControlPlane | undefined;
  const stopAll = async (): Promise<void> => {
    await controlPlane?.stop();
    controlPlane = undefined;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  }
  try {
    for (const group of groups) {
      const files = GROUPS[group].roots.flatMap(testFiles);
      console.log(`\n== ${group}: ${files.length} file(s)`);
      if (files.length === 0) {
        console.error(`no ${group} tests found`);
        tally.failed += 1;
        continue;
      }
      const env: NodeJS.ProcessEnv = { ...process.env };
      if (GROUPS[group].needsControlPlane) {
        if (GROUPS[group].needsControlPlane === 'fresh') await stopAll();
        try {
          controlPlane ??= await startControlPlane(GROUPS[group].options);
          console.log(
            `control plane up in ${controlPlane.startSeconds.toFixed(1)}s at ${controlPlane.server} (${relative(process.cwd(), controlPlane.dir) || controlPlane.dir})`,
          );
        } catch (err) {
          // No control plane is a failure of the whole group, never a skip.
          console.error(err);
          tally.failed += files.length;
          continue;
        }
        env.IPC_TEST_KUBECONFIG = controlPlane.kubeconfigPath;
        env.IPC_TEST_KUBECTL = controlPlane.assets.kubectl;
        env.IPC_TEST_CONTROL_PLANE_DIR = controlPlane.dir;
      }
      const result = await runFiles(files, env);
      tally.passed += result.passed;
      tally.failed += result.failed;
      tally.skipped += result.skipped;
    }
  } finally {
    await stopAll();
  }
  // Skipped tests count as failures here: a skip must never make a run look green.
  const failed = tally.failed + tally.skipped;
  console.log(`\n${tally.passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
