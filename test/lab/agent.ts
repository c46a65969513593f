// Running `ipcontroller agent` as a separate process inside a lab namespace, the way the e2e
// lab and the benchmarks do, and reading a namespace's neighbour table.
import { fileURLToPath } from 'node:url';
import { waitFor } from '../controlplane/harness.js';
import type { Lab, LabProcess, Netns } from './lab.js';

const CLI = fileURLToPath(new URL('../../cli.ts', import.meta.url));

export interface AgentProcessOptions {
  kubeconfig: string;
  hostname: string;
  iface?: string;
  /** Status server port inside the namespace (default 9610). */
  port?: number;
  /** More flags, e.g. ['--garp-interval', '200ms']. */
  args?: string[];
  label?: string;
}

export interface AgentProcess {
  proc: LabProcess;
  ns: Netns;
  port: number;
  /** GET a path of the agent's status server from inside its namespace. */
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  /** Waits until /readyz answers 200. */
  ready(timeoutMs?: number): Promise<void>;
}

export function startAgentProcess(lab: Lab, ns: Netns, options: AgentProcessOptions): AgentProcess {
  const port = options.port ?? 9610;
  const args = [
    process.execPath,
    '--import',
    'tsx',
    CLI,
    'agent',
    '--kubeconfig',
    options.kubeconfig,
    '--hostname',
    options.hostname,
    '--metrics-bind',
    `127.0.0.1:${port}`,
    ...(options.iface ? ['--iface', options.iface] : []),
    ...(options.args ?? []),
  ];
  const proc = lab.spawn(ns, args, { label: options.label ?? `agent-${options.hostname}` });
  const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> => {
    const h = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    const r = await lab.exec(ns, ['curl', '-s', '-m', '2', '-w', '\n%{http_code}', ...h, `http://127.0.0.1:${port}${path}`]);
    const lines = r.stdout.split('\n');
    const status = Number(lines.pop() ?? 0);
    return { status, body: lines.join('\n') };
  };
  return {
    proc,
    ns,
    port,
    get,
    async ready(timeoutMs = 30_000) {
      await waitFor(
        `agent ${options.hostname} /readyz`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`agent exited ${proc.child.exitCode}; log ${proc.logFile}`);
          return (await get('/readyz')).status === 200;
        },
        timeoutMs,
        200,
      );
    },
  };
}

/** The neighbour entry for ip in ns: its MAC and state, or null when there is none. */
export async function neighbour(lab: Lab, ns: Netns, ip: string): Promise<{ mac: string | null; state: string[] } | null> {
  const r = await lab.exec(ns, ['ip', '-j', 'neigh', 'show', ip]);
  if (r.code !== 0) throw new Error(`ip neigh in ${ns.name}: ${r.stderr}`);
  const entries = JSON.parse(r.stdout || '[]') as { dst?: string; lladdr?: string; state?: string[] }[];
  const e = entries[0];
  if (!e) return null;
  return { mac: e.lladdr ?? null, state: e.state ?? [] };
}
