// The address port and its iproute2 implementation: list (`addr show`) and change addresses
// through one long-lived `ip -j -force -batch -` (ipsession.ts), with a process per call as the
// fallback when that session fails; follow changes with a long-lived `ip -o monitor address`.
// All of it acts on the network namespace the agent runs in.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { parseBatchErrors, parseIpAddrJson, type InetFamily, type HostLink } from './addresses.js';
import { IpSession, type SessionReply } from './ipsession.js';

export interface NetPort {
  links(): Promise<HostLink[]>;
  defaultRoutes(): Promise<Partial<Record<InetFamily, string>>>;
  /** Runs the lines in one batch; returns line index -> error message for the lines that failed. */
  apply(lines: string[]): Promise<Map<number, string>>;
  /** Calls onDeleted whenever an address is removed from any interface, until the signal aborts. */
  watchAddresses(onDeleted: (line: string) => void, signal: AbortSignal): void;
  /** A numeric sysctl under /proc/sys, e.g. "net/ipv4/conf/all/arp_ignore"; null when unreadable. */
  sysctl(path: string): Promise<number | null>;
  /** Ends long-lived processes (the agent is stopping). */
  close?(): void;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => reject(new Error(`ip ${args.join(' ')}: ${err.message}`, { cause: err })));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // ip exiting early shows in its exit code and stderr
      child.stdin.end(input);
    }
  });
}

async function runJson(args: string[]): Promise<unknown> {
  const result = await run(['-j', ...args]);
  if (result.code !== 0) throw new Error(`ip -j ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout.trim() ? (JSON.parse(result.stdout) as unknown) : [];
}

function routeDevice(json: unknown): string | undefined {
  if (!Array.isArray(json)) return undefined;
  for (const route of json as unknown[]) {
    const dev = (route as { dev?: unknown } | null)?.dev;
    if (typeof dev === 'string') return dev;
  }
  return undefined;
}

export function iproute2(options: { logger: Logger; clock: Clock }): NetPort {
  const log = options.logger.child({ port: 'iproute2' });
  const session = new IpSession();
  /** The session's reply, or null after a warning when it failed (the caller falls back to a process of its own). */
  const viaSession = (lines: string[], jsonLines: number): Promise<SessionReply | null> =>
    session.run(lines, jsonLines).catch((err: unknown) => {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'ip batch session failed; one ip process for this call');
      return null;
    });
  return {
    async links() {
      const reply = await viaSession(['addr show'], 1);
      const [json] = reply?.json ?? [];
      return parseIpAddrJson(json !== undefined ? (JSON.parse(json) as unknown) : await runJson(['addr', 'show']));
    },
    async defaultRoutes() {
      const [v4, v6] = await Promise.all([runJson(['-4', 'route', 'show', 'default']), runJson(['-6', 'route', 'show', 'default'])]);
      const out: Partial<Record<InetFamily, string>> = {};
      const d4 = routeDevice(v4);
      const d6 = routeDevice(v6);
      if (d4) out.inet = d4;
      if (d6) out.inet6 = d6;
      return out;
    },
    async apply(lines) {
      if (lines.length === 0) return new Map();
      const reply = await viaSession(lines, 0);
      if (reply) return reply.errors;
      const result = await run(['-force', '-batch', '-'], lines.join('\n') + '\n');
      const errors = parseBatchErrors(result.stderr);
      if (result.code !== 0 && errors.size === 0) {
        // Failed without naming a line: count every line as failed rather than guess.
        return new Map(lines.map((_, i) => [i, result.stderr.trim() || `ip -batch exited ${result.code}`]));
      }
      return errors;
    },
    watchAddresses(onDeleted, signal) {
      void (async () => {
        let backoff = 100;
        while (!signal.aborted) {
          const started = options.clock.now();
          await new Promise<void>((resolve) => {
            const child = spawn('ip', ['-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
            const stop = (): void => void child.kill('SIGTERM');
            signal.addEventListener('abort', stop, { once: true });
            createInterface({ input: child.stdout }).on('line', (line) => {
              if (line.startsWith('Deleted')) onDeleted(line);
            });
            child.on('error', (err) => log.warn({ err }, 'ip monitor failed to start'));
            child.on('close', () => {
              signal.removeEventListener('abort', stop);
              resolve();
            });
          });
          if (signal.aborted) return;
          backoff = options.clock.now() - started > 10_000 ? 100 : Math.min(backoff * 2, 5000);
          log.warn({ backoffMs: backoff }, 'ip monitor exited; restarting');
          await options.clock.sleep(backoff, signal).catch(() => undefined);
        }
      })();
    },
    close() {
      session.close();
    },
    async sysctl(path) {
      try {
        const value = Number((await readFile(`/proc/sys/${path}`, 'utf8')).trim());
        return Number.isFinite(value) ? value : null;
      } catch {
        return null;
      }
    },
  };
}
