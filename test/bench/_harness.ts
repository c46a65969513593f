// Pieces the benchmarks share (memory.ts, scheduler.ts, probescale.ts, agent.ts, policy.ts): stopping
// a child process, stand-in agent nodes and their heartbeat, creating LoadBalancer Services a few at
// a time, and the percentile they report.
// A helper module: its name starts with `_`, so run.ts does not take it for a benchmark.
import type { ChildProcess } from 'node:child_process';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { IpClients } from '../../api/client.js';
import { API_VERSION } from '../../api/types.js';
import { fakeAgent, type FakeAgent } from '../integration/scheduler-fixtures.js';

/** How long a stopped process may take over its SIGTERM (a scheduler hands its Lease back) before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** SIGTERM, then SIGKILL if it has not exited within graceMs; resolves once it has exited. */
export async function stopChild(child: ChildProcess | null, graceMs = STOP_GRACE_MS): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Runs fn over items with at most `limit` calls in flight. */
export async function inBatches<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** A Node labelled for agents and its IpNode, probed at probe.address:probe.port (where a stand-in agent answers). */
export async function registerAgentNode(
  core: CoreV1Api,
  clients: IpClients,
  name: string,
  probe: { address: string; port: number },
): Promise<void> {
  await core.createNode({ body: { metadata: { name, labels: { ipcontroller: '' } } } });
  await clients.nodes.create({
    apiVersion: API_VERSION,
    kind: 'IpNode',
    metadata: { name },
    spec: { probeAddress: probe.address, probePort: probe.port },
  });
}

/** One heartbeat as the agent writes it (renewTime, Ready=True); a failed one is left to the next. */
export function heartbeat(clients: IpClients, name: string): Promise<unknown> {
  const now = new Date().toISOString();
  return clients.nodes
    .patchStatus(name, {
      status: {
        renewTime: now,
        conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: 'bench', lastTransitionTime: now }],
      },
    })
    .catch(() => undefined);
}

/**
 * `count` stand-in agents (fakeAgent: answers probes over HTTP) on nodes `${prefix}0`..., registered and
 * heartbeating every second. Each lands in out.agents and out.timers as it starts, so the caller can
 * close what did start when a later one fails.
 */
export async function startStandInAgents(
  api: { core: CoreV1Api; clients: IpClients },
  prefix: string,
  count: number,
  out: { agents: FakeAgent[]; timers: NodeJS.Timeout[] },
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${i}`;
    const agent = await fakeAgent(name);
    out.agents.push(agent);
    await registerAgentNode(api.core, api.clients, name, { address: '127.0.0.1', port: agent.port });
    await heartbeat(api.clients, name);
    out.timers.push(setInterval(() => void heartbeat(api.clients, name), 1000));
  }
}

export interface ServiceBatch {
  namespace: string;
  names: string[];
  /** Creates in flight at once (default 16). */
  concurrency?: number;
  /** IPv6 single-stack, to draw from a 2001:db8: pool (default: the cluster's default family). */
  ipv6?: boolean;
}

/** Creates `type: LoadBalancer` Services on port 80 without NodePorts (thousands would not fit the NodePort range). */
export async function createLoadBalancerServices(core: CoreV1Api, batch: ServiceBatch): Promise<void> {
  const family = batch.ipv6 ? { ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack' } : {};
  await inBatches(batch.names, batch.concurrency ?? 16, (name) =>
    core.createNamespacedService({
      namespace: batch.namespace,
      body: {
        metadata: { name },
        spec: { type: 'LoadBalancer', ...family, allocateLoadBalancerNodePorts: false, ports: [{ port: 80, protocol: 'TCP' }] },
      },
    }),
  );
}

/** The nearest-rank p-th percentile of an ascending list; NaN for an empty one. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** The command line with a built bundle in place of tsx and cli.ts (none: unchanged). */
export function withCli(argv: string[], cli: string | undefined): string[] {
  const at = argv.indexOf('cli.ts');
  if (!cli || at < 2 || argv[at - 2] !== '--import' || argv[at - 1] !== 'tsx') return argv;
  return [...argv.slice(0, at - 2), cli, ...argv.slice(at + 1)];
}

/**
 * The command line of a scheduler replica under tsx, as the benchmarks start it: node flags
 * first (--cpu-prof and the like), then the scheduler against the control plane with its
 * metrics on 127.0.0.1:port, then the benchmark's own flags.
 */
export function schedulerArgv(
  nodeArgs: string | undefined,
  target: { kubeconfigPath: string; port: number; namespace: string; identity: string },
  flags: string[],
): string[] {
  return [
    ...(nodeArgs?.split(' ').filter(Boolean) ?? []),
    '--import',
    'tsx',
    'cli.ts',
    'scheduler',
    `--kubeconfig=${target.kubeconfigPath}`,
    `--metrics-bind=127.0.0.1:${target.port}`,
    `--lease-namespace=${target.namespace}`,
    `--identity=${target.identity}`,
    ...flags,
  ];
}
