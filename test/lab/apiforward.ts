// Reaching the apiserver (on the root namespace's 127.0.0.1) from inside lab namespaces, as a
// pod on the host network would: a Unix socket in the lab's folder forwards to the apiserver,
// and a forwarder inside each namespace listens on that namespace's 127.0.0.1:<same port> and
// forwards to the socket. The kubeconfig written for a namespace points at
// https://127.0.0.1:<port>, which the apiserver's certificate covers.
import { createConnection, createServer, type Server } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { Lab, LabProcess, Netns } from './lab.js';
import { splice } from './splice.js';

const FORWARDER = fileURLToPath(new URL('./forwarder.ts', import.meta.url));

export interface ApiForwarder {
  socketPath: string;
  /** The apiserver's port, also used inside each namespace. */
  port: number;
  /** Starts the in-namespace forwarder (once per namespace) and returns a kubeconfig path for processes in ns. */
  kubeconfigFor(ns: Netns): Promise<string>;
  /**
   * Cuts ns off the apiserver like a partition: the in-namespace forwarder is frozen (SIGSTOP),
   * so connections hang instead of failing. resume() (SIGCONT) heals it.
   */
  pause(ns: Netns): void;
  resume(ns: Netns): void;
  /** Turns the forwarder's delay (1 s each way per chunk) on or off: a slow API path, not a cut one. Resolves once the forwarder says so. */
  setSlow(ns: Netns, slow: boolean): Promise<void>;
  close(): Promise<void>;
}

interface KubeconfigDoc {
  clusters?: { cluster?: { server?: string } }[];
}

function apiServerOf(kubeconfigPath: string): URL {
  const doc = YAML.parse(readFileSync(kubeconfigPath, 'utf8')) as KubeconfigDoc;
  const server = doc.clusters?.[0]?.cluster?.server;
  if (!server) throw new Error(`${kubeconfigPath}: no cluster server`);
  const url = new URL(server);
  if (url.hostname !== '127.0.0.1') throw new Error(`${kubeconfigPath}: expected an apiserver on 127.0.0.1, got ${server}`);
  return url;
}

async function waitForLine(proc: LabProcess, line: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (readFileSync(proc.logFile, 'utf8').includes(line)) return;
    if (proc.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`forwarder did not start: ${readFileSync(proc.logFile, 'utf8')}`);
}

async function waitForLines(proc: LabProcess, pattern: RegExp, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((readFileSync(proc.logFile, 'utf8').match(pattern) ?? []).length >= count) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`forwarder did not switch its delay: ${readFileSync(proc.logFile, 'utf8')}`);
}

/** Starts the root-side socket; kubeconfigPath is the (root namespace) kubeconfig of the control plane. */
export async function startApiForwarder(lab: Lab, kubeconfigPath: string): Promise<ApiForwarder> {
  const url = apiServerOf(kubeconfigPath);
  const port = Number(url.port);
  const socketPath = join(lab.dir, 'api.sock');
  const sockets = new Set<{ destroy(): void }>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    splice(client, createConnection(port, '127.0.0.1'));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  const started = new Map<string, string>();
  const procs: LabProcess[] = [];
  const byNs = new Map<string, LabProcess>();
  const forwarderOf = (ns: Netns): LabProcess => {
    const proc = byNs.get(ns.name);
    if (!proc) throw new Error(`no API forwarder in ${ns.name}; call kubeconfigFor first`);
    return proc;
  };
  return {
    socketPath,
    port,
    async kubeconfigFor(ns) {
      const existing = started.get(ns.name);
      if (existing) return existing;
      const proc = lab.spawn(ns, [process.execPath, '--import', 'tsx', FORWARDER, String(port), socketPath], { label: 'apiforward' });
      procs.push(proc);
      byNs.set(ns.name, proc);
      await waitForLine(proc, 'ready', 20_000);
      // Same kubeconfig, same URL: inside ns, 127.0.0.1:<port> is the forwarder.
      const path = join(lab.dir, `kubeconfig-${ns.short}`);
      writeFileSync(path, readFileSync(kubeconfigPath, 'utf8'));
      started.set(ns.name, path);
      return path;
    },
    pause(ns) {
      forwarderOf(ns).signal('SIGSTOP');
    },
    resume(ns) {
      forwarderOf(ns).signal('SIGCONT');
    },
    async setSlow(ns, slow) {
      const proc = forwarderOf(ns);
      const lastState = (): string =>
        readFileSync(proc.logFile, 'utf8')
          .match(/^(slow \d+|fast)$/gm)
          ?.at(-1) ?? 'fast';
      if (lastState().startsWith('slow') === slow) return;
      const seen = (readFileSync(proc.logFile, 'utf8').match(/^(slow \d+|fast)$/gm) ?? []).length;
      proc.signal('SIGUSR2');
      await waitForLines(proc, /^(slow \d+|fast)$/gm, seen + 1, 10_000);
    },
    async close() {
      for (const p of procs) p.signal('SIGCONT');
      await Promise.all(procs.map((p) => p.stop(2000)));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
