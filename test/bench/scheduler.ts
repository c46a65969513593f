// Scheduler benchmark (`make bench`): on its own real control plane, with the scheduler as a
// separate process (the CLI), three stand-in agents (HTTP /healthz + IpNode heartbeat) and an
// IPv6 pool large enough for thousands of Services:
//   - Service create -> claim assigned (spec.nodeName written), p50/p99 over 200 Services
//     created one after another;
//   - cold start: the scheduler starts with N LoadBalancer Services waiting (1,000, then
//     5,000, each from no claims at all) -> every claim placed and every Service's
//     status.loadBalancer.ingress written;
//   - the scheduler's RSS holding 5,000 claims;
//   - the 5,000 cold start again with the scheduler as the chart runs it (coldStart5000AsShipped:
//     its node flags, in a memory cgroup with its memory limit, test/bench/_shipped.ts), and that
//     process's RSS.
// The apiserver gets a larger service range (dual-stack, so Services can be IPv6 and draw from
// a 2001:db8: pool) and the Services skip NodePorts, or 5,000 would not fit.
// The scheduler runs under tsx (cli.ts) unless IPC_BENCH_SCHEDULER_CLI names a built bundle
// (dist/cli.js after `make build`, as the image runs it): tsx's loading is about 2 s of CPU of
// every start, which a user's scheduler does not spend.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { StreamWatch } from '../../lib/watchstream.js';
import { ipClients, type IpClients } from '../../api/client.js';
import { API_VERSION, GROUP, PLURAL, VERSION } from '../../api/types.js';
import { freePort, startControlPlane, waitFor, type ControlPlane } from '../controlplane/harness.js';
import type { FakeAgent } from '../integration/scheduler-fixtures.js';
import { createLoadBalancerServices, inBatches, percentile, schedulerArgv, startStandInAgents, stopChild, withCli } from './_harness.js';
import { apiserverWrites, coldStartFloor, writeFloor, writesBetween, type ColdWrite, type FloorResult } from './_writefloor.js';
import { claimName } from '../../api/names.js';
import { MemoryCgroup, SHIPPED_LOG_LEVEL, shippedMemoryLimitBytes, shippedNodeFlags } from './_shipped.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NS = 'default';
const POOL = 'bench-v6';
const log = (msg: string): void => void process.stderr.write(`  scheduler bench: ${msg}\n`);

/** Watches claims and Services and records when each Service got a placed claim and an ingress. */
class Tracker {
  readonly placedAt = new Map<string, number>();
  readonly ingressAt = new Map<string, number>();
  private stops: AbortController[] = [];
  constructor(private readonly kc: KubeConfig) {}

  async start(): Promise<void> {
    this.keep(`/apis/${GROUP}/${VERSION}/${PLURAL.IpClaim}`, (type, obj) => {
      const spec = (obj as { spec?: { nodeName?: string; services?: string[] } }).spec;
      if (type === 'DELETED' || !spec?.nodeName) return;
      for (const s of spec.services ?? []) if (!this.placedAt.has(s)) this.placedAt.set(s, performance.now());
    });
    this.keep(`/api/v1/namespaces/${NS}/services`, (type, obj) => {
      const o = obj as { metadata?: { name?: string }; status?: { loadBalancer?: { ingress?: unknown[] } } };
      const key = `${NS}/${o.metadata?.name ?? ''}`;
      if (type !== 'DELETED' && (o.status?.loadBalancer?.ingress?.length ?? 0) > 0 && !this.ingressAt.has(key))
        this.ingressAt.set(key, performance.now());
    });
  }

  /**
   * A watch restarted whenever it ends (e.g. 429 while the apiserver's storage initializes).
   * The scheduler's own StreamWatch, not client-node's Watch: this bench shares the 2 cores with
   * the apiserver and the scheduler it measures, and client-node's goes through node-fetch, a
   * PassThrough and readline for each of a cold start's ~10,000 events (this process spent
   * 1.5-2.0 CPU-s per 5,000-Service cold start with it).
   */
  private keep(path: string, onEvent: (type: string, obj: unknown) => void): void {
    const stop = new AbortController();
    this.stops.push(stop);
    const again = (): void => {
      if (stop.signal.aborted) return;
      void new StreamWatch(this.kc)
        .watch(path, {}, onEvent, () => setTimeout(again, 300))
        .then((c) => stop.signal.addEventListener('abort', () => c.abort(), { once: true }))
        .catch(() => setTimeout(again, 300));
    };
    again();
  }
  reset(): void {
    this.placedAt.clear();
    this.ingressAt.clear();
  }
  stop(): void {
    for (const s of this.stops) s.abort();
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms); 0 once it is gone. */
function cpuSecondsOf(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The control plane's processes (kube-apiserver, etcd): those whose command line names its directory, but for the scheduler (its kubeconfig is there). */
function controlPlanePids(dir: string, scheduler: number | undefined): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && Number(d) !== scheduler)
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** CPU seconds used so far by the scheduler, the control plane and this bench process (its watches). */
interface CpuReading {
  scheduler: number;
  controlPlane: number;
  bench: number;
}

class SchedulerProcess {
  child: ChildProcess | null = null;
  constructor(
    private readonly cp: ControlPlane,
    private readonly port: number,
  ) {}

  /** Starts a replica; `shipped` adds the chart's node flags and starts it in a memory cgroup with the chart's limit. */
  async start(shipped?: { nodeFlags: string[]; cgroup: MemoryCgroup | null }): Promise<void> {
    const logFile = process.env.IPC_BENCH_SCHEDULER_LOG ?? join(this.cp.dir, 'scheduler.log');
    const { openSync } = await import('node:fs');
    const out = openSync(logFile, 'a');
    const nodeArgs = [process.env.IPC_BENCH_SCHEDULER_NODE_ARGS ?? '', ...(shipped?.nodeFlags ?? [])].join(' ');
    const argv = schedulerArgv(nodeArgs, { kubeconfigPath: this.cp.kubeconfigPath, port: this.port, namespace: NS, identity: 'bench' }, [
      // The chart sets no level, so a Pod logs at the scheduler's default (info: a line per claim created); the
      // other runs log warnings only, as they did before the as-shipped run existed.
      ...logLevel(shipped !== undefined),
      // IPC_BENCH_SCHEDULER_FLAGS: the scheduler's own flags to try (e.g. --writes-in-flight=16), for every replica started.
      ...(process.env.IPC_BENCH_SCHEDULER_FLAGS?.split(' ').filter(Boolean) ?? []),
    ]);
    const node = { command: process.execPath, args: withCli(argv, process.env.IPC_BENCH_SCHEDULER_CLI) };
    const { command, args } = shipped?.cgroup ? shipped.cgroup.wrap(node.command, node.args) : node;
    this.child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', out, out] });
    await waitFor('scheduler /readyz', async () => (await fetch(`http://127.0.0.1:${this.port}/readyz`)).ok, 180_000, 100);
  }

  rssMB(field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
    const status = readFileSync(`/proc/${this.child?.pid}/status`, 'utf8');
    const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    return Math.round(kb / 1024);
  }

  cpu(): CpuReading {
    const bench = process.cpuUsage();
    return {
      scheduler: cpuSecondsOf(this.child?.pid),
      controlPlane: controlPlanePids(this.cp.dir, this.child?.pid).reduce((sum, pid) => sum + cpuSecondsOf(pid), 0),
      bench: (bench.user + bench.system) / 1e6,
    };
  }

  async metric(name: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(name) && !l.startsWith('#'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    this.child = null;
  }
}

/** --log-level for a replica: IPC_BENCH_SCHEDULER_LOG_LEVEL when set, else the scheduler's default as shipped, else warn. */
function logLevel(asShipped: boolean): string[] {
  const level = process.env.IPC_BENCH_SCHEDULER_LOG_LEVEL ?? (asShipped ? undefined : 'warn');
  return level ? [`--log-level=${level}`] : [];
}

/** Back to no claims and no addresses: claims deleted, pool status emptied, ingress cleared. */
async function wipe(kc: KubeConfig, clients: IpClients, core: CoreV1Api, services: string[]): Promise<void> {
  await kc.makeApiClient(CustomObjectsApi).deleteCollectionClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL.IpClaim });
  await clients.pools.patchStatus(POOL, { status: { allocations: null, used: 0 } });
  const { setHeaderOptions, PatchStrategy } = await import('@kubernetes/client-node');
  await inBatches(services, 16, (name) =>
    core.patchNamespacedServiceStatus(
      { name, namespace: NS, body: { status: { loadBalancer: { ingress: null } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ),
  );
  await waitFor('claims gone', async () => (await clients.claims.list()).items.length === 0, 60_000, 500);
}

/** Writes not made for the Services: the stand-in agents' heartbeats, the Lease. */
const NOT_PER_SERVICE = /ipnodes|leases/;

async function coldStart(
  kc: KubeConfig,
  { sched, tracker }: { sched: SchedulerProcess; tracker: Tracker },
  services: string[],
  shipped?: { nodeFlags: string[]; cgroup: MemoryCgroup | null },
): Promise<Record<string, unknown>> {
  tracker.reset();
  const writesBefore = await apiserverWrites(kc);
  const started = performance.now();
  const cpuStart = sched.cpu();
  await sched.start(shipped);
  const ready = performance.now();
  const cpuReady = sched.cpu();
  const keys = services.map((s) => `${NS}/${s}`);
  await waitFor(`${services.length} claims placed`, async () => keys.every((k) => tracker.placedAt.has(k)), 600_000, 250);
  const placed = performance.now();
  await waitFor(`${services.length} ingresses written`, async () => keys.every((k) => tracker.ingressAt.has(k)), 600_000, 250);
  const done = performance.now();
  const cpuDone = sched.cpu();
  // Every write the apiserver served meanwhile (counted by the apiserver, not by the scheduler).
  const writes = writesBetween(writesBefore, await apiserverWrites(kc), NOT_PER_SERVICE);
  const total = Object.values(writes).reduce((a, b) => a + b, 0);
  return {
    services: services.length,
    processReadySeconds: +((ready - started) / 1000).toFixed(2),
    allClaimsPlacedSeconds: +((placed - started) / 1000).toFixed(2),
    allIngressWrittenSeconds: +((done - started) / 1000).toFixed(2),
    apiWritesUntilIngress: total,
    writesPerService: +(total / services.length).toFixed(2),
    writesByKind: writes,
    // Where the time went: CPU seconds from the scheduler's spawn to the last ingress (2 cores,
    // so at most 2 x allIngressWrittenSeconds), the scheduler's own before it was ready
    // (loading under tsx, lists), and its CPU per write after that (its watches of what it wrote included).
    cpuSeconds: {
      scheduler: +cpuDone.scheduler.toFixed(2),
      schedulerUntilReady: +cpuReady.scheduler.toFixed(2),
      controlPlane: +(cpuDone.controlPlane - cpuStart.controlPlane).toFixed(2),
      benchWatches: +(cpuDone.bench - cpuStart.bench).toFixed(2),
    },
    schedulerCpuMsPerWrite: +(((cpuDone.scheduler - cpuReady.scheduler) * 1000) / Math.max(1, total)).toFixed(3),
  };
}

/**
 * The cold start's writes without the scheduler: everything wiped back to no claims and no
 * ingress, then each Service's claim and ingress written by the trivial writer (inFlight Services
 * at a time; 16 is the scheduler's concurrency), with what the control plane spent on them.
 */
async function trivialColdStart(
  kc: KubeConfig,
  api: { clients: IpClients; core: CoreV1Api; sched: SchedulerProcess },
  services: string[],
  inFlight = 16,
): Promise<FloorResult & { controlPlaneCpuSeconds: number }> {
  await wipe(kc, api.clients, api.core, services);
  const listed = await api.core.listNamespacedService({ namespace: NS });
  const rv = new Map(listed.items.map((s) => [s.metadata?.name ?? '', s.metadata?.resourceVersion ?? '']));
  const cold: ColdWrite[] = services.map((service, i) => {
    const ip = `2001:db8:1::${(i + 1).toString(16)}`;
    const spec = { cidr: `${ip}/128`, services: [`${NS}/${service}`], nodeName: 'bench-node-0', pool: POOL };
    return {
      service,
      resourceVersion: rv.get(service) ?? '',
      ip,
      claim: { apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name: claimName(spec.cidr) }, spec },
    };
  });
  const before = api.sched.cpu().controlPlane;
  const floor = await coldStartFloor(kc, NS, cold, inFlight);
  const controlPlaneCpuSeconds = +(api.sched.cpu().controlPlane - before).toFixed(2);
  log(`the cold start's writes from the trivial writer: ${JSON.stringify(floor)}, control plane ${controlPlaneCpuSeconds} s CPU`);
  return { ...floor, controlPlaneCpuSeconds };
}

export async function run(): Promise<Record<string, unknown>> {
  log('starting a control plane');
  const cp = await startControlPlane({ extraApiserverArgs: ['--service-cluster-ip-range=10.0.0.0/16,2001:db8:ffff::/112'] });
  const agents: FakeAgent[] = [];
  const timers: NodeJS.Timeout[] = [];
  const sched = new SchedulerProcess(cp, await freePort());
  const tracker = new Tracker(cp.kubeConfig());
  try {
    const kc = cp.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const clients = ipClients(kc);
    // The floor: how fast this apiserver takes the most trivial creates, before anything else runs.
    const floorWrites = Number(process.env.IPC_BENCH_FLOOR_WRITES ?? 2000);
    const floors: FloorResult[] = [];
    for (const inFlight of [16, 64]) {
      floors.push(await writeFloor(kc, NS, floorWrites, inFlight));
      log(`write floor: ${JSON.stringify(floors.at(-1))}`);
    }
    await startStandInAgents({ core, clients }, 'bench-node-', 3, { agents, timers });
    await clients.pools.create({
      apiVersion: API_VERSION,
      kind: 'IpClaimPool',
      metadata: { name: POOL },
      spec: { cidr: '2001:db8:1::/112' },
    });
    await tracker.start();

    // 1. Create -> assigned, one Service at a time.
    log(`create -> assigned over ${process.env.IPC_BENCH_LATENCY_SERVICES ?? 200} Services`);
    await sched.start();
    const latencies: number[] = [];
    const latencyServices = Array.from({ length: Number(process.env.IPC_BENCH_LATENCY_SERVICES ?? 200) }, (_, i) => `lat-${i}`);
    for (const name of latencyServices) {
      const t0 = performance.now();
      await createLoadBalancerServices(core, { namespace: NS, names: [name], ipv6: true });
      await waitFor(`claim of ${name}`, async () => tracker.placedAt.has(`${NS}/${name}`), 30_000, 2);
      latencies.push((tracker.placedAt.get(`${NS}/${name}`) as number) - t0);
    }
    latencies.sort((a, b) => a - b);
    const createToAssigned = {
      services: latencyServices.length,
      p50Ms: +percentile(latencies, 50).toFixed(1),
      p99Ms: +percentile(latencies, 99).toFixed(1),
      maxMs: +(latencies.at(-1) ?? NaN).toFixed(1),
    };
    log(`create -> assigned p50 ${createToAssigned.p50Ms}ms p99 ${createToAssigned.p99Ms}ms`);
    await sched.stop();
    await inBatches(latencyServices, 16, (name) => core.deleteNamespacedService({ name, namespace: NS }));
    await wipe(kc, clients, core, []);

    // 2. Cold start with 1,000 Services.
    const small = Number(process.env.IPC_BENCH_COLD_SMALL ?? 1000);
    const large = Number(process.env.IPC_BENCH_COLD_LARGE ?? 5000);
    log(`cold start with ${small} Services`);
    const first = Array.from({ length: small }, (_, i) => `cold-${i}`);
    await createLoadBalancerServices(core, { namespace: NS, names: first, ipv6: true });
    const cold1k = await coldStart(kc, { sched, tracker }, first);
    log(`${small}: ${JSON.stringify(cold1k)}`);
    await sched.stop();

    // 3. Cold start with 5,000 Services (the 1,000 wiped back to nothing, 4,000 more).
    log(`creating ${large - small} more Services`);
    const more = Array.from({ length: large - small }, (_, i) => `cold-${small + i}`);
    await createLoadBalancerServices(core, { namespace: NS, names: more, ipv6: true });
    await wipe(kc, clients, core, first);
    log(`cold start with ${large} Services`);
    const all = [...first, ...more];
    const cold5k = await coldStart(kc, { sched, tracker }, all);
    log(`${large}: ${JSON.stringify(cold5k)}`);
    const claims = (await clients.claims.list()).items.length;
    const pool = await clients.pools.get(POOL);
    const rss = sched.rssMB();
    const heapMB = Math.round((await sched.metric('ipcontroller_scheduler_nodejs_heap_size_used_bytes')) / 2 ** 20);
    const passSeconds = await sched.metric('ipcontroller_scheduler_reconcile_duration_seconds_sum');
    const passes = await sched.metric('ipcontroller_scheduler_reconcile_duration_seconds_count');
    const schedulerWrites = await sched.metric('ipcontroller_scheduler_api_writes_total');
    await sched.stop();

    // 4. The 5,000 again with the scheduler as the chart runs it (its node flags, in a memory
    // cgroup with its limit, which is what sizes V8's heap in a Pod), and what that process holds.
    await wipe(kc, clients, core, all);
    log(`cold start with ${large} Services, as the chart runs the scheduler`);
    const limit = shippedMemoryLimitBytes();
    const cgroup = limit === null ? null : MemoryCgroup.create(`ipcbench-sched-${process.pid}`, limit);
    let cold5kShipped: Record<string, unknown>;
    try {
      const shipped = { nodeFlags: shippedNodeFlags(), cgroup };
      cold5kShipped = await coldStart(kc, { sched, tracker }, all, shipped);
      const rssAtDone = sched.rssMB();
      await new Promise((resolve) => setTimeout(resolve, 5000));
      cold5kShipped = {
        ...cold5kShipped,
        nodeFlags: shipped.nodeFlags.join(' '),
        logLevel: process.env.IPC_BENCH_SCHEDULER_LOG_LEVEL ?? SHIPPED_LOG_LEVEL,
        memoryLimitMB: cgroup && limit !== null ? limit / 2 ** 20 : null,
        rssMB: {
          atLastIngress: rssAtDone,
          fiveSecondsLater: sched.rssMB(),
          highWater: sched.rssMB('VmHWM'),
        },
      };
      log(`${large} as shipped: ${JSON.stringify(cold5kShipped)}`);
    } finally {
      await sched.stop();
      cgroup?.remove();
    }
    const trivial = process.env.IPC_BENCH_COLD_FLOOR === '0' ? null : await trivialColdStart(kc, { clients, core, sched }, all);
    // The same writes 64 at a time: how much of the floor is the number in flight (the scheduler writes 16).
    const trivial64 = process.env.IPC_BENCH_COLD_FLOOR === '0' ? null : await trivialColdStart(kc, { clients, core, sched }, all, 64);
    const best = Math.max(...floors.map((f) => f.writesPerSecond));
    const needed = Number(cold5k.apiWritesUntilIngress);
    return {
      createToAssigned,
      coldStart1000: cold1k,
      coldStart5000: cold5k,
      // The same cold start with the chart's node flags and memory limit (what a Pod runs).
      coldStart5000AsShipped: cold5kShipped,
      at5000: {
        claims,
        poolUsed: pool?.status?.used,
        schedulerRssMB: rss,
        schedulerHeapUsedMB: heapMB,
        reconcilePasses: passes,
        meanPassSeconds: +(passSeconds / Math.max(1, passes)).toFixed(3),
        schedulerApiWrites: schedulerWrites,
      },
      writeFloor: {
        runs: floors,
        bestWritesPerSecond: best,
        // The cold start's writes at the trivial writer's best rate: no scheduler can get every ingress written faster here.
        coldStart5000FloorSeconds: +(needed / best).toFixed(2),
        // The same Services' own writes (claim create, ingress patch) from the trivial writer, with the control plane's CPU meanwhile.
        ...(trivial ? { coldStart5000TrivialWriter: trivial } : {}),
        ...(trivial64 ? { coldStart5000TrivialWriter64InFlight: trivial64 } : {}),
      },
      note: `assigned = IpClaim.spec.nodeName written by the scheduler (no real agent confirms here); scheduler runs as its own process via ${process.env.IPC_BENCH_SCHEDULER_CLI ?? 'cli.ts under tsx'}`,
    };
  } finally {
    tracker.stop();
    await sched.stop();
    for (const t of timers) clearInterval(t);
    for (const a of agents) await a.close();
    await cp.stop();
  }
}
