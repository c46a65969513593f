// One chaos session: a dual-stack control plane, the two-node lab, the pools, two sentinel
// Services (v4 with a client request loop every 20 ms, and v6), and the invariant checker.
// Shared by `make chaos` (matrix.ts), `make soak` (soak.ts) and the soak e2e test.
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, waitFor, type ControlPlane } from '../controlplane/harness.js';
import { SCHEDULER_PORT, startTwoNodeLab, type RequestLoop, type TwoNodeLab } from '../e2e/twonode.js';
import { downtimeAround } from '../support/downtime.js';
import { startChecker, type Checker } from './checker.js';
import { POOL_V4, POOL_V6, type ChaosEnv, type Injection } from './faults.js';

/** Services get a cluster IP of each family, so v6 and dual-stack Services can be created (never on an interface). */
export const DUAL_STACK_APISERVER_ARGS = ['--service-cluster-ip-range=10.0.0.0/20,2001:db8:ffff::/112'];
export const SENTINEL_V4 = '192.0.2.60';
export const SENTINEL_V6 = '2001:db8::60';

export interface Session {
  env: ChaosEnv;
  lab: TwoNodeLab;
  cp: ControlPlane;
  checker: Checker;
  loop: RequestLoop;
  outDir: string;
  /** Puts every process and link back (a fault that threw half-way) and waits until the lab serves again. */
  recover(): Promise<void>;
  /** Client downtime around an injection (0 when no request failed), or null when unmeasurable. */
  downtime(injection: Injection): number | null;
  /** Resident memory (MiB) of every agent and scheduler process. */
  memory(): Record<string, number>;
  /** Processes that ended without a fault ending them (restarted by recover()). */
  unexpectedRestarts: string[];
  /** Tears everything down; the run's folder (capture, prober log) stays only with keepEvidence. */
  close(options?: { keepEvidence?: boolean }): Promise<void>;
}

export interface SessionOptions {
  maxMs: number;
  graceMs?: number;
  burst?: number;
  seed?: number;
  outDir?: string;
  log: (message: string) => void;
}

/** A small deterministic generator (mulberry32), so a run can be repeated with CHAOS_SEED. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rssMiB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
    return Math.round((kb / 1024) * 10) / 10;
  } catch {
    return NaN;
  }
}

async function createPools(lab: TwoNodeLab): Promise<void> {
  for (const [name, cidr, first, last] of [
    [POOL_V4, '192.0.2.0/24', '192.0.2.100', '192.0.2.229'],
    [POOL_V6, '2001:db8::/64', '2001:db8::1:0', '2001:db8::1:ffff'],
  ] as const) {
    await lab.ip.pools.create({
      apiVersion: 'ipcontroller.ext/v1',
      kind: 'IpClaimPool',
      metadata: { name },
      spec: { cidr, ranges: [[first, last]] },
    });
  }
}

export async function startSession(options: SessionOptions): Promise<Session> {
  const outDir = options.outDir ?? mkdtempSync(join(tmpdir(), 'ipc-chaos-'));
  const cp = await startControlPlane({ serviceAccountAdmission: true, extraApiserverArgs: DUAL_STACK_APISERVER_ARGS });
  let lab: TwoNodeLab | undefined;
  try {
    lab = await startTwoNodeLab({ kubeconfigPath: cp.kubeconfigPath, handleSignals: true });
    const l = lab;
    await createPools(l);
    for (const [name, ip] of [
      ['chaos-sentinel', SENTINEL_V4],
      ['chaos-sentinel6', SENTINEL_V6],
    ] as const) {
      await l.core.createNamespacedService({
        namespace: 'default',
        body: { metadata: { name }, spec: { externalIPs: [ip], ports: [{ port: 80, targetPort: 80 }] } },
      });
    }
    await l.servingNode(SENTINEL_V4);
    await l.servingNode(SENTINEL_V6);
    const checker = await startChecker(l, { maxMs: options.maxMs, outDir, graceMs: options.graceMs ?? 15_000, log: options.log });
    const loop = l.requestLoop(SENTINEL_V4, 20, options.maxMs);
    await loop.steady(10, 30_000);
    const env: ChaosEnv = {
      lab: l,
      cp,
      checker,
      sentinel: SENTINEL_V4,
      burst: options.burst ?? 30,
      random: seeded(options.seed ?? Date.now()),
      log: options.log,
    };
    const unexpectedRestarts: string[] = [];

    const recover = async (): Promise<void> => {
      await cp.startApiserver();
      for (const node of l.nodes.filter((n) => n.labelled)) {
        await l.lab.exec(node.ns, ['ip', 'link', 'set', 'eth0', 'up']);
        l.api.resume(node.ns);
        node.agent?.proc.signal('SIGCONT');
        if (node.agent && node.agent.proc.child.exitCode === null && node.agent.proc.child.signalCode === null) continue;
        unexpectedRestarts.push(`${node.name} agent ${new Date().toISOString()}`);
        await l.startAgent(node);
      }
      for (const replica of l.schedulers) {
        l.api.resume(replica.ns);
        replica.proc.signal('SIGCONT');
        if (replica.proc.child.exitCode === null && replica.proc.child.signalCode === null) continue;
        unexpectedRestarts.push(`${replica.identity} ${new Date().toISOString()}`);
        l.startScheduler(replica);
      }
      for (const node of l.nodes.filter((n) => n.labelled)) await node.agent?.ready(90_000);
      // Not just a Lease record (a killed leader's stays for its duration): a live leader that
      // counts both agent nodes as candidates, so probes flow before the next fault.
      await waitFor(
        'a live scheduler leader probing both agents',
        async () => {
          const replica = await l.leaderReplica();
          if (!replica) return false;
          const r = await l.lab.exec(replica.ns, ['curl', '-s', '-m', '1', `http://127.0.0.1:${SCHEDULER_PORT}/metrics`]);
          return (
            /^ipcontroller_scheduler_leader 1\b/m.test(r.stdout) && /ipcontroller_scheduler_nodes\{state="candidate"\} 2\b/.test(r.stdout)
          );
        },
        90_000,
        200,
      );
      await loop.steady(5, 90_000);
    };

    return {
      env,
      lab: l,
      cp,
      checker,
      loop,
      outDir,
      recover,
      downtime(injection) {
        const from = injection.window.start;
        const results = loop.results().filter((r) => r.t >= from - 3000);
        if (!results.some((r) => !r.ok && r.t >= from)) return 0;
        return downtimeAround(results, from)?.downtimeMs ?? null;
      },
      memory() {
        const out: Record<string, number> = {};
        for (const n of l.nodes) if (n.agent) out[`agent ${n.name}`] = rssMiB(n.agent.proc.child.pid);
        for (const s of l.schedulers) out[`scheduler ${s.identity}`] = rssMiB(s.proc.child.pid);
        return out;
      },
      unexpectedRestarts,
      async close({ keepEvidence = true } = {}) {
        await loop.stop().catch(() => undefined);
        // The processes' logs (schedulers, agents, forwarders) are the evidence a violation needs.
        if (keepEvidence) cpSync(l.lab.dir, join(outDir, 'lab'), { recursive: true, filter: (src) => !src.endsWith('.sock') });
        await l.destroy();
        await cp.stop();
        if (!keepEvidence && !options.outDir) rmSync(outDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await lab?.destroy();
    await cp.stop();
    throw err;
  }
}

export function stats(values: number[]): { n: number; p50: number | null; p99: number | null; max: number | null } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number | null => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? null;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? null };
}
