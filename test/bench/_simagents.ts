// The simulated agents of the probe-scale benchmarks (probescale.ts, _probescale-transport.ts):
// one separate Go process (simagents/main.go, built and cached by simagents/build.sh) in which
// agent i is node ps-<i> on 127.77.<i/250>.<1+i%250>, answering the UDP probe (as
// agent/proberesponder.ts) and HTTP GET /healthz on one port number. A small static program, so
// that the answering costs little beside the scheduler replicas being measured on a 2-core host.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const SIM_NODE_PREFIX = 'ps-';
const BUILD_SCRIPT = fileURLToPath(new URL('./simagents/build.sh', import.meta.url));

/** The loopback address of simulated agent i (0-based); simagents/main.go computes the same. */
export function simAddress(i: number): string {
  return `127.77.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

let binary: string | undefined;

/** The simulator's binary: built on first use (a second build with the same source is a cache hit). */
export function simAgentsBinary(): string {
  binary ??= execFileSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop();
  if (!binary) throw new Error(`${BUILD_SCRIPT} printed no path`);
  return binary;
}

/** Probes answered, by the identity of the scheduler replica that sent them. */
export type SimCounts = Record<string, { http: number; udp: number } | undefined>;

export interface SimAgents {
  child: ChildProcess;
  /** Asks the simulator (SIGUSR2) how many probes it answered so far. */
  counts(): Promise<SimCounts>;
  /** Ends it (stdin closed, then SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts `count` simulated agents on `port`; resolves once every endpoint listens. */
export async function startSimAgents(count: number, port: number): Promise<SimAgents> {
  const child = spawn(simAgentsBinary(), [String(count), String(port), SIM_NODE_PREFIX], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => waiting.shift()?.(l));
  const next = (): Promise<string> => new Promise((resolve) => waiting.push(resolve));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const died = exit.then((code) => Promise.reject(new Error(`simulated agents exited with ${code}`)));
  died.catch(() => undefined);
  if ((await Promise.race([next(), died])) !== 'ready') throw new Error('simulated agents did not start');
  return {
    child,
    counts: async () => {
      const line = next();
      child.kill('SIGUSR2');
      return JSON.parse(await Promise.race([line, died])) as SimCounts;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin?.end();
        child.kill('SIGTERM');
      }
      await exit;
    },
  };
}
