// The scheduler as users run it (the CLI, a child process), and a TCP proxy in front of the
// apiserver: for tests that freeze the process, cut its connection to the apiserver, or count
// the connections it opens.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort } from '../controlplane/harness.js';

const CLI = join(process.cwd(), 'cli.ts');

/** A TCP proxy to the apiserver that can black-hole every connection (bytes held, not refused), and counts them. */
export class HoldingProxy {
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private held = false;
  /** The most connections open through it at once. */
  peak = 0;
  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => {
      const upstream = createConnection(this.target);
      const pair = { client, upstream };
      this.pairs.add(pair);
      this.peak = Math.max(this.peak, this.pairs.size);
      client.pipe(upstream).pipe(client);
      if (this.held) this.pause(pair);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
  }
  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }
  private pause(p: { client: Socket; upstream: Socket }): void {
    p.client.pause();
    p.upstream.pause();
  }
  /** From now on nothing passes either way; what was sent waits in the buffers. */
  hold(): void {
    this.held = true;
    for (const p of this.pairs) this.pause(p);
  }
  /** Heals the partition: everything held is delivered. */
  release(): void {
    this.held = false;
    for (const p of this.pairs) {
      p.client.resume();
      p.upstream.resume();
    }
  }
  close(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.server.close();
  }
}

/** A kubeconfig like the one at path whose server is a HoldingProxy in front of the real one. close() stops the proxy and removes the file. */
export async function kubeconfigViaProxy(path: string): Promise<{ path: string; proxy: HoldingProxy; close(): void }> {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  const server = new URL(kc.getCurrentCluster()?.server ?? '');
  const proxy = new HoldingProxy({ host: server.hostname, port: Number(server.port) });
  const port = await proxy.listen();
  const dir = mkdtempSync(join(tmpdir(), 'ipc-proxy-'));
  const out = join(dir, 'kubeconfig');
  writeFileSync(out, readFileSync(path, 'utf8').replace(server.origin, `https://127.0.0.1:${port}`));
  return {
    path: out,
    proxy,
    close: () => {
      proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ChildScheduler {
  child: ChildProcess;
  metricsPort: number;
  /** Its log; the folder is removed by stop(true) (kept when the test failed, for reading). */
  logFile: string;
  leading(): Promise<boolean>;
  stop(removeLog?: boolean): Promise<void>;
}

/** `ipcontroller scheduler` (cli.ts under tsx) against kubeconfig, with the Lease default/leaseName and the given extra flags. */
export async function childScheduler(
  kubeconfig: string,
  leaseName: string,
  identity: string,
  flags: string[] = [],
): Promise<ChildScheduler> {
  const metricsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ipc-cli-'));
  const logFile = join(dir, `${identity}.log`);
  const out = openSync(logFile, 'a');
  const args = ['--kubeconfig', kubeconfig, '--lease-namespace', 'default', '--lease-name', leaseName, '--identity', identity];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'scheduler', ...args, '--metrics-bind', `127.0.0.1:${metricsPort}`, '--log-level', 'info', ...flags],
    { stdio: ['ignore', out, out] },
  );
  const leading = async (): Promise<boolean> => {
    const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(500) }).then((r) => r.text());
    return /^ipcontroller_scheduler_leader 1$/m.test(text);
  };
  const stop = async (removeLog = false): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    if (removeLog) rmSync(dir, { recursive: true, force: true });
  };
  return { child, metricsPort, logFile, leading, stop };
}
