// `kubectl ipcontroller` for tests and the demo, run the way a user's shell runs it: kubectl finds
// an executable kubectl-ipcontroller on the PATH (here a wrapper around the plugin's entry
// point under tsx, where a user has `npm link`'s dist/plugin/kubectl-ipcontroller.js) and the
// cluster comes from KUBECONFIG. kubectl passes only the arguments after the plugin's name on.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PluginPath {
  /** The directory to put first on PATH. */
  dir: string;
  /** The environment kubectl runs in: PATH with dir first, KUBECONFIG. */
  env(kubeconfigPath: string): NodeJS.ProcessEnv;
  /** Runs `kubectl ARGS` in that environment; a non-zero exit is a result. */
  kubectl(kubectlBinary: string, kubeconfigPath: string, args: string[], timeoutMs?: number): Promise<PluginRun>;
  remove(): void;
}

export function pluginPath(): PluginPath {
  const dir = mkdtempSync(join(tmpdir(), 'ipc-plugin-path-'));
  const entry = fileURLToPath(new URL('../../plugin/kubectl-ipcontroller.ts', import.meta.url));
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  writeFileSync(join(dir, 'kubectl-ipcontroller'), `#!/bin/sh\nexec "${process.execPath}" --import "${tsx}" "${entry}" "$@"\n`);
  chmodSync(join(dir, 'kubectl-ipcontroller'), 0o755);
  const env = (kubeconfigPath: string): NodeJS.ProcessEnv => ({
    ...process.env,
    PATH: `${dir}:${process.env.PATH ?? ''}`,
    KUBECONFIG: kubeconfigPath,
  });
  return {
    dir,
    env,
    kubectl: (binary, kubeconfigPath, args, timeoutMs = 30_000) =>
      new Promise((resolve) => {
        execFile(binary, args, { env: env(kubeconfigPath), timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
          resolve({ code, stdout, stderr });
        });
      }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
