// Scheduler memory benchmark (`make bench memory`): the scheduler as users run it
// (`node <the chart's scheduler.nodeFlags> dist/cli.js scheduler`, built here with `npm run build`
// as in the image unless IPC_BENCH_MEMORY_CLI names built cli.js files, started in a memory cgroup
// with the chart's scheduler memory limit, which sizes node's heap as a Pod's is: test/bench/_shipped.ts;
// IPC_BENCH_MEMORY_LIMIT=none runs it on the host) against a real control plane holding 5,000
// LoadBalancer Services. Reported, once every claim is placed and every ingress written:
//   - coldStart: RSS, peak RSS and V8 heap of the process that placed all 5,000 claims;
//   - warmStart: the same for a fresh process that starts with the 5,000 claims already there
//     (what a restarted or standby-turned-leader replica holds);
//   - tsxWarmStart: the warm start again under tsx (`node <the same flags> --import tsx cli.ts`),
//     so the transpiler's share of RSS is known (IPC_BENCH_MEMORY_TSX=0 skips it).
// IPC_BENCH_MEMORY_CLI=before/cli.js,after/cli.js measures each on the same cluster (claims wiped
// between them; an entry may add node flags of its own: 'after/cli.js --max-semi-space-size=1');
// the last is reported at the top level, the others under `compared`.
// IPC_BENCH_MEMORY_SNAPSHOT_DIR=<dir> also writes a heap snapshot of each warm process there;
// IPC_BENCH_MEMORY_SETTLE_SECONDS=<s> reads the warm process again that much later (warmSettled);
// IPC_BENCH_MEMORY_NODE_ARGS='<flags>' starts every measured process with those node flags.
// IPC_BENCH_MEMORY_LOG=<file> keeps the scheduler's log (else it goes with the control plane's folder).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { API_VERSION, GROUP, PLURAL, VERSION } from '../../api/types.js';
import { freePort, startControlPlane, waitFor, type ControlPlane } from '../controlplane/harness.js';
import type { FakeAgent } from '../integration/scheduler-fixtures.js';
import { createLoadBalancerServices, inBatches, startStandInAgents, stopChild } from './_harness.js';
import { MemoryCgroup, SHIPPED_LOG_LEVEL, shippedMemoryLimitBytes, shippedNodeFlags } from './_shipped.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NS = 'default';
const POOL = 'bench-memory-v6';
const log = (msg: string): void => void process.stderr.write(`  memory bench: ${msg}\n`);

interface Figures {
  rssMB: number;
  peakRssMB: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  seconds: number;
  /** RSS split as the kernel counts it: anonymous (heap, malloc, code V8 compiled) and file-backed (node's own text). */
  rssAnonMB: number;
  rssFileMB: number;
  /** Per V8 heap space: used and committed (size), from prom-client's nodejs_heap_space_size_* gauges. */
  heapSpacesMB: Record<string, { used: number; size: number }>;
  /** CPU time the process has used so far (user + system, from /proc/<pid>/stat): the cost of flags that trade CPU for memory. */
  cpuSeconds: number;
  /** warmSettled only: the highest and lowest RSS sampled once a second over the settle period. */
  maxRssMB?: number;
  minRssMB?: number;
}

/** The command line that starts the scheduler, dist (as in the image) or tsx (as in development). */
function commandFor(kind: 'dist' | 'tsx', cli: string, extra: string[]): string[] {
  // IPC_BENCH_MEMORY_NODE_ARGS: node flags to try, as an image would set them in NODE_OPTIONS (e.g. --max-semi-space-size=1).
  const nodeArgs = [...(process.env.IPC_BENCH_MEMORY_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...extra];
  return kind === 'dist' ? [...nodeArgs, cli, 'scheduler'] : [...nodeArgs, '--import', 'tsx', 'cli.ts', 'scheduler'];
}

class Scheduler {
  private child: ChildProcess | null = null;
  constructor(
    private readonly cp: ControlPlane,
    private readonly port: number,
    /** The memory cgroup every measured process starts in (the chart's limit), or null to run on the host. */
    readonly cgroup: MemoryCgroup | null,
  ) {}

  async start(args: string[]): Promise<void> {
    const out = openSync(process.env.IPC_BENCH_MEMORY_LOG ?? join(this.cp.dir, 'scheduler-memory.log'), 'a');
    const node = {
      command: process.execPath,
      args: [
        ...args,
        `--kubeconfig=${this.cp.kubeconfigPath}`,
        `--metrics-bind=127.0.0.1:${this.port}`,
        `--lease-namespace=${NS}`,
        '--identity=bench-memory',
        // The chart sets no level: the scheduler's default (info) unless IPC_BENCH_MEMORY_LOG_LEVEL says otherwise.
        ...(process.env.IPC_BENCH_MEMORY_LOG_LEVEL ? [`--log-level=${process.env.IPC_BENCH_MEMORY_LOG_LEVEL}`] : []),
        // Leader election and probing as deployed, with timings a machine under heavy load does not
        // lose the lead or its nodes with (memory does not depend on them).
        '--leader-elect-lease-duration=60s',
        '--leader-elect-renew-deadline=40s',
        '--leader-elect-retry-period=5s',
        '--monitor=60s',
        '--probe-interval=1s',
        '--probe-timeout=2s',
        '--probe-failures=30',
      ],
    };
    const { command, args: argv } = this.cgroup ? this.cgroup.wrap(node.command, node.args) : node;
    this.child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', out, out] });
    await waitFor('scheduler /readyz', async () => (await fetch(`http://127.0.0.1:${this.port}/readyz`)).ok, 120_000, 100);
  }

  pid(): number {
    return this.child?.pid ?? 0;
  }

  /** utime + stime of the process, in seconds (clock ticks of 1/100 s, as Linux reports them). */
  cpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.pid()}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return +((Number(fields[11]) + Number(fields[12])) / 100).toFixed(2);
  }

  rssMB(): number {
    return this.status('VmRSS');
  }

  private status(field: string): number {
    const text = readFileSync(`/proc/${this.pid()}/status`, 'utf8');
    return Math.round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? NaN) / 1024);
  }

  async metric(name: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`ipcontroller_scheduler_${name}`));
    return Number(line?.split(' ').pop() ?? NaN);
  }

  /** nodejs_heap_space_size_{used,total}_bytes by space, in MiB (one decimal). */
  private async heapSpaces(): Promise<Record<string, { used: number; size: number }>> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    const out: Record<string, { used: number; size: number }> = {};
    const re = /^ipcontroller_scheduler_nodejs_heap_space_size_(used|total)_bytes\{space="([^"]+)"\} (\S+)$/gm;
    for (const [, kind = '', space = '', value = ''] of text.matchAll(re)) {
      const entry = (out[space] ??= { used: 0, size: 0 });
      entry[kind === 'used' ? 'used' : 'size'] = +(Number(value) / 2 ** 20).toFixed(1);
    }
    return out;
  }

  async figures(startedAt: number): Promise<Figures> {
    const mb = async (name: string): Promise<number> => Math.round((await this.metric(name)) / 2 ** 20);
    return {
      rssMB: this.status('VmRSS'),
      peakRssMB: this.status('VmHWM'),
      heapUsedMB: await mb('nodejs_heap_size_used_bytes'),
      heapTotalMB: await mb('nodejs_heap_size_total_bytes'),
      externalMB: await mb('nodejs_external_memory_bytes'),
      seconds: +((performance.now() - startedAt) / 1000).toFixed(1),
      rssAnonMB: this.status('RssAnon'),
      rssFileMB: this.status('RssFile'),
      heapSpacesMB: await this.heapSpaces(),
      cpuSeconds: this.cpuSeconds(),
    };
  }

  /** Writes a heap snapshot (the process runs with --heapsnapshot-signal=SIGUSR2) and waits until it is complete. */
  async snapshot(dir: string): Promise<string> {
    const before = new Set(readdirSync(dir));
    this.child?.kill('SIGUSR2');
    let file = '';
    let size = -1;
    await waitFor(
      'heap snapshot written',
      async () => {
        file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)) ?? '';
        if (!file) return false;
        const now = statSync(join(dir, file)).size;
        const stable = now > 0 && now === size;
        size = now;
        return stable;
      },
      300_000,
      2000,
    );
    return join(dir, file);
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    this.child = null;
  }
}

let lastProgress = 0;

/** True once every Service has a placed claim and an ingress (checked from the API, as a user would). */
async function allServed(core: CoreV1Api, clients: IpClients, count: number): Promise<boolean> {
  const placed = (await clients.claims.list()).items.filter((c) => c.spec.nodeName).length;
  const services = placed < count ? [] : (await core.listNamespacedService({ namespace: NS })).items;
  const served = services.filter((s) => (s.status?.loadBalancer?.ingress?.length ?? 0) > 0).length;
  if (performance.now() - lastProgress > 30_000) {
    lastProgress = performance.now();
    log(`${placed} claims placed, ${served} ingresses written`);
  }
  return served >= count;
}

async function setUp(cp: ControlPlane, agents: FakeAgent[], timers: NodeJS.Timeout[]): Promise<void> {
  const kc = cp.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const clients = ipClients(kc);
  await startStandInAgents({ core, clients }, 'memory-node-', 3, { agents, timers });
  await clients.pools.create({
    apiVersion: API_VERSION,
    kind: 'IpClaimPool',
    metadata: { name: POOL },
    spec: { cidr: '2001:db8:2::/112' },
  });
}

/**
 * The built cli.js files to measure, each with its node flags: IPC_BENCH_MEMORY_CLI
 * (comma-separated, e.g. before,after), else dist/cli.js built now with the chart's flags.
 */
function builtClis(): string[] {
  if (process.env.IPC_BENCH_MEMORY_CLI) return process.env.IPC_BENCH_MEMORY_CLI.split(',').filter(Boolean);
  log('building dist as the image does (npm run build: tsc, then the esbuild bundle)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  return [['dist/cli.js', ...shippedNodeFlags()].join(' ')];
}

/** Back to no claims and no addresses, so the next scheduler starts cold. */
async function wipe(cp: ControlPlane, core: CoreV1Api, clients: IpClients, names: string[]): Promise<void> {
  const custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
  await custom.deleteCollectionClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL.IpClaim });
  await clients.pools.patchStatus(POOL, { status: { allocations: null, used: 0 } });
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  await inBatches(names, 16, (name) =>
    core.patchNamespacedServiceStatus({ name, namespace: NS, body: { status: { loadBalancer: { ingress: null } } } }, merge),
  );
  await waitFor('claims gone', async () => (await clients.claims.list()).items.length === 0, 600_000, 2000);
}

interface Run {
  cp: ControlPlane;
  sched: Scheduler;
  core: CoreV1Api;
  clients: IpClients;
  count: number;
}

/** Starts the scheduler, waits until every Service is served, and reads the figures. */
async function measure(r: Run, command: string[]): Promise<Figures> {
  const t0 = performance.now();
  await r.sched.start(command);
  await waitFor(`${r.count} Services served`, () => allServed(r.core, r.clients, r.count), 1_800_000, 15_000);
  // Let the passes that follow the last write finish before reading the figures.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const figures = await r.sched.figures(t0);
  log(`${command.join(' ')}: ${JSON.stringify(figures)}`);
  return figures;
}

interface CliFigures {
  command: string;
  coldStart: Figures;
  warmStart: Figures;
  /**
   * The cold-start process again IPC_BENCH_MEMORY_SETTLE_SECONDS later (when set): its old space
   * grew with the burst of 10,000 writes (with a small young generation most of their garbage is
   * promoted) and shrinks only when V8's memory reducer runs once the process is idle.
   */
  coldSettled?: Figures;
  /** The warm process again IPC_BENCH_MEMORY_SETTLE_SECONDS later (when set): what it holds once idle. */
  warmSettled?: Figures;
  snapshot?: string;
}

/**
 * With IPC_BENCH_MEMORY_SETTLE_SECONDS set: a process's figures that much later (cold or warm), with the
 * highest and lowest RSS sampled every second until then (resyncs and GCs make it a sawtooth).
 */
async function settled(sched: Scheduler, start: Figures): Promise<Figures | undefined> {
  const settle = Number(process.env.IPC_BENCH_MEMORY_SETTLE_SECONDS ?? 0);
  if (!(settle > 0)) return undefined;
  const t0 = performance.now() - start.seconds * 1000;
  const samples: number[] = [];
  const until = performance.now() + settle * 1000;
  while (performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    samples.push(sched.rssMB());
  }
  const figures = { ...(await sched.figures(t0)), maxRssMB: Math.max(...samples), minRssMB: Math.min(...samples) };
  log(`settled ${settle} s: ${JSON.stringify(figures)}`);
  return figures;
}

/** Cold start (no claims), then a fresh process with the claims in place (and its heap snapshot when asked). */
async function measureCli(r: Run, entry: string, snapshotDir: string | undefined): Promise<CliFigures> {
  // An entry may carry node flags of its own after the file: "after/cli.js --max-semi-space-size=1".
  const [cli = '', ...flags] = entry.split(' ').filter(Boolean);
  const coldStart = await measure(r, commandFor('dist', cli, flags));
  const coldSettled = await settled(r.sched, coldStart);
  await r.sched.stop();
  if (snapshotDir) mkdirSync(snapshotDir, { recursive: true });
  const warmStart = await measure(
    r,
    commandFor('dist', cli, [...flags, ...(snapshotDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`] : [])]),
  );
  const warmSettled = await settled(r.sched, warmStart);
  const snapshot = snapshotDir ? await r.sched.snapshot(snapshotDir) : undefined;
  await r.sched.stop();
  return {
    command: ['node', ...flags, cli, 'scheduler'].join(' '),
    coldStart,
    ...(coldSettled ? { coldSettled } : {}),
    warmStart,
    ...(warmSettled ? { warmSettled } : {}),
    ...(snapshot ? { snapshot } : {}),
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const count = Number(process.env.IPC_BENCH_MEMORY_SERVICES ?? 5000);
  const clis = builtClis();
  const snapshotDir = process.env.IPC_BENCH_MEMORY_SNAPSHOT_DIR;
  log('starting a control plane');
  const cp = await startControlPlane({ extraApiserverArgs: ['--service-cluster-ip-range=10.0.0.0/16,2001:db8:ffff::/112'] });
  const agents: FakeAgent[] = [];
  const timers: NodeJS.Timeout[] = [];
  // IPC_BENCH_MEMORY_LIMIT=none runs the scheduler on the host, with node's heap sized from the machine's memory.
  const limit = process.env.IPC_BENCH_MEMORY_LIMIT === 'none' ? null : shippedMemoryLimitBytes();
  const port = await freePort();
  const cgroup = limit === null ? null : MemoryCgroup.create(`ipcbench-mem-${process.pid}`, limit);
  if (limit !== null && !cgroup)
    log('no memory cgroup can be made here: the scheduler runs with node sizing its heap from the whole machine');
  const sched = new Scheduler(cp, port, cgroup);
  try {
    const r: Run = { cp, sched, core: cp.kubeConfig().makeApiClient(CoreV1Api), clients: ipClients(cp.kubeConfig()), count };
    await setUp(cp, agents, timers);
    log(`creating ${count} LoadBalancer Services`);
    const names = Array.from({ length: count }, (_, i) => `mem-${i}`);
    await createLoadBalancerServices(r.core, { namespace: NS, names, ipv6: true });
    const measured: CliFigures[] = [];
    for (const [i, cli] of clis.entries()) {
      if (i > 0) await wipe(cp, r.core, r.clients, names);
      log(`measuring ${cli}`);
      measured.push(await measureCli(r, cli, snapshotDir && join(snapshotDir, String(i))));
    }
    // Under tsx with the same node flags as the last cli measured: the difference is the transpiler's.
    const [, ...lastFlags] = (clis.at(-1) ?? '').split(' ').filter(Boolean);
    const tsxWarmStart = process.env.IPC_BENCH_MEMORY_TSX === '0' ? undefined : await measure(r, commandFor('tsx', '', lastFlags));
    await sched.stop();
    // The last cli named is the one under test; the ones before it (a baseline) are listed beside it.
    const main = measured.at(-1) as CliFigures;
    return {
      services: count,
      ...main,
      ...(tsxWarmStart ? { tsxWarmStart } : {}),
      ...(measured.length > 1 ? { compared: measured.slice(0, -1) } : {}),
      memoryLimitMB: cgroup && limit !== null ? limit / 2 ** 20 : null,
      logLevel: process.env.IPC_BENCH_MEMORY_LOG_LEVEL ?? SHIPPED_LOG_LEVEL,
      note: 'MB = MiB; read 5 s after every claim is placed and every ingress written; peakRssMB is VmHWM; Lease 60s/40s/5s and probes 1s/2s x30, monitor 60s, so a loaded machine keeps its leader and nodes',
    };
  } finally {
    await sched.stop();
    cgroup?.remove();
    for (const t of timers) clearInterval(t);
    for (const a of agents) await a.close();
    await cp.stop();
  }
}
