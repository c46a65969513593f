// Stand-ins for what a real cluster would have around the scheduler, on the real apiserver:
// labelled Node objects, IpNode objects whose heartbeat a test keeps fresh (as an agent
// would), tiny HTTP servers answering /healthz as an agent does, pools and Services.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { CoreV1Api, type CoreV1Event, type KubeConfig, type V1Service } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { API_VERSION, type IpClaim, type IpClaimPool, type IpRange } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import type { Test } from 'uvu';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';
import { schedulerConfig, type SchedulerConfig } from '../../scheduler/config.js';
import { startScheduler, type SchedulerHandle } from '../../scheduler/scheduler.js';
import { createLogger } from '../../lib/logger.js';
import { nextClaimStatus, type ClaimOutcome } from '../../agent/status.js';

export type AgentMode = 'ok' | 'fail' | 'draining' | 'silent';

/** An agent's /healthz as the scheduler sees it. */
export interface FakeAgent {
  node: string;
  port: number;
  mode: AgentMode;
  /** Identities seen in x-ipcontroller-probe. */
  probedBy: Set<string>;
  probes: number;
  /** Claims this agent reports Failed with reason AddressConflict (claim name -> message), as a real agent whose probe another host answered. */
  conflicts: Map<string, string>;
  close(): Promise<void>;
}

export async function fakeAgent(node: string): Promise<FakeAgent> {
  const agent = {
    node,
    port: 0,
    mode: 'ok' as AgentMode,
    probedBy: new Set<string>(),
    probes: 0,
    conflicts: new Map<string, string>(),
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    agent.probes++;
    const who = (req.headers as IncomingHttpHeaders)['x-ipcontroller-probe'];
    if (typeof who === 'string') agent.probedBy.add(who);
    if (agent.mode === 'silent') return; // never answers: the probe times out
    if (agent.mode === 'fail') {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, node }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, node, draining: agent.mode === 'draining' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  agent.port = typeof address === 'object' && address ? address.port : 0;
  agent.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return agent;
}

export class Fixture {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly clients: IpClients;
  private readonly cleanups: Array<() => Promise<unknown>> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  readonly namespace = 'default';

  constructor(readonly cluster: TestCluster) {
    this.kc = cluster.kubeConfig();
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.clients = ipClients(this.kc);
  }

  /** A labelled Node, its IpNode with a heartbeat kept fresh every second, and an agent. */
  async node(prefix = 'node'): Promise<FakeAgent> {
    const name = uniqueName(prefix);
    const agent = await fakeAgent(name);
    await this.core.createNode({ body: { metadata: { name, labels: { ipcontroller: '' } } } });
    this.cleanups.push(() => this.core.deleteNode({ name }).catch(() => undefined));
    await this.clients.nodes.create({
      apiVersion: API_VERSION,
      kind: 'IpNode',
      metadata: { name },
      spec: { probeAddress: '127.0.0.1', probePort: agent.port, iface: 'lo' },
    });
    this.cleanups.push(() => this.clients.nodes.delete(name).catch(() => undefined));
    this.cleanups.push(() => agent.close());
    const beat = async (): Promise<void> => {
      const now = new Date().toISOString();
      const ready = { type: 'Ready', status: 'True', reason: 'Ready', message: 'test agent', lastTransitionTime: now };
      const draining = {
        type: 'Draining',
        status: agent.mode === 'draining' ? 'True' : 'False',
        reason: 'Test',
        message: '',
        lastTransitionTime: now,
      };
      await this.clients.nodes.patchStatus(name, { status: { renewTime: now, conditions: [ready, draining] } }).catch(() => undefined);
    };
    await beat();
    const timer = setInterval(() => void beat(), 1000);
    this.timers.push(timer);
    // As a real agent: report the claims assigned to this node up (status, lastMove) while answering probes.
    const report = setInterval(() => void this.reportClaims(agent).catch(() => undefined), 200);
    this.timers.push(report);
    (agent as FakeAgent & { stopHeartbeat?: () => void }).stopHeartbeat = () => clearInterval(timer);
    return agent;
  }

  /** What the agent writes for each claim on its node once the address is up (agent/status.ts). */
  private async reportClaims(agent: FakeAgent): Promise<void> {
    if (agent.mode !== 'ok') return;
    for (const claim of (await this.clients.claims.list()).items) {
      if (claim.spec.nodeName !== agent.node) continue;
      const conflict = agent.conflicts.get(claim.metadata.name ?? '');
      const outcome: ClaimOutcome =
        conflict !== undefined
          ? { kind: 'failed', reason: 'AddressConflict', message: conflict }
          : { kind: 'up', ip: claim.spec.cidr.split('/')[0] ?? '', iface: 'lo' };
      const status = nextClaimStatus(outcome, { node: agent.node, nowIso: new Date().toISOString(), current: claim.status, claim });
      if (status) await this.clients.claims.patchStatus(claim.metadata.name ?? '', { status });
    }
  }

  stopHeartbeat(agent: FakeAgent): void {
    (agent as FakeAgent & { stopHeartbeat?: () => void }).stopHeartbeat?.();
  }

  async pool(cidr: string, ranges?: IpRange[], prefix = 'pool'): Promise<string> {
    const name = uniqueName(prefix);
    const pool: IpClaimPool = {
      apiVersion: API_VERSION,
      kind: 'IpClaimPool',
      metadata: { name },
      spec: { cidr, ...(ranges ? { ranges } : {}) },
    };
    await this.clients.pools.create(pool);
    this.cleanups.push(() => this.deletePoolNow(name));
    return name;
  }

  /**
   * Deletes a pool without waiting for its Services to let go: the scheduler's finalizer
   * (ipcontroller.ext/pool-protection) is removed by hand, as the README tells a user to.
   */
  async deletePoolNow(name: string): Promise<void> {
    await this.clients.pools.patch(name, { metadata: { finalizers: null } }).catch(() => undefined);
    await this.clients.pools.delete(name).catch(() => undefined);
  }

  async service(prefix: string, spec: V1Service['spec'] = {}, annotations: Record<string, string> = {}): Promise<string> {
    const name = uniqueName(prefix);
    await this.core.createNamespacedService({
      namespace: this.namespace,
      body: { metadata: { name, annotations }, spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], ...spec } },
    });
    this.cleanups.push(() => this.deleteService(name));
    return name;
  }

  async deleteService(name: string): Promise<void> {
    await this.core.deleteNamespacedService({ name, namespace: this.namespace }).catch(() => undefined);
  }

  async readService(name: string): Promise<V1Service> {
    return this.core.readNamespacedService({ name, namespace: this.namespace });
  }

  async ingress(name: string): Promise<Array<{ ip?: string; ipMode?: string }>> {
    return (await this.readService(name)).status?.loadBalancer?.ingress ?? [];
  }

  /** Claims listing this Service. */
  async claimsOf(service: string): Promise<IpClaim[]> {
    const key = `${this.namespace}/${service}`;
    return (await this.clients.claims.list()).items.filter((c) => c.spec.services?.includes(key));
  }

  async events(service: string): Promise<CoreV1Event[]> {
    const list = await this.core.listNamespacedEvent({ namespace: this.namespace, fieldSelector: `involvedObject.name=${service}` });
    return list.items;
  }

  async waitEvent(service: string, reason: string, pattern: RegExp = /./, timeoutMs = 15_000): Promise<CoreV1Event> {
    let found: CoreV1Event | undefined;
    await waitFor(
      `Event ${reason} on ${service}`,
      async () => {
        found = (await this.events(service)).find((e) => e.reason === reason && pattern.test(e.message ?? ''));
        return found !== undefined;
      },
      timeoutMs,
      200,
    );
    return found as CoreV1Event;
  }

  /** Starts a scheduler on this cluster; stopped at cleanup. */
  async scheduler(overrides: Partial<SchedulerConfig> = {}): Promise<SchedulerHandle> {
    const config = schedulerConfig({
      identity: uniqueName('sched'),
      leaseNamespace: this.namespace,
      leaseName: uniqueName('lease'),
      metricsPort: -1,
      logLevel: (process.env.IPC_TEST_LOG_LEVEL as SchedulerConfig['logLevel'] | undefined) ?? 'warn',
      ...overrides,
    });
    const handle = await startScheduler(config, { kubeConfig: this.kc, logger: createLogger('scheduler-test', config.logLevel) });
    this.cleanups.push(() => handle.stop());
    return handle;
  }

  async cleanup(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    // Schedulers first (they were registered after what they act on), then objects.
    for (const fn of this.cleanups.reverse()) await fn();
    this.cleanups.length = 0;
    // Claims the scheduler left for our Services (it was stopped before it could remove them).
    const claims = await this.clients.claims.list();
    for (const c of claims.items) {
      if ((c.spec.services ?? []).some((s) => s.startsWith(`${this.namespace}/`) && s.includes(`-${process.pid.toString(36)}-`))) {
        await this.clients.claims.delete(c.metadata.name ?? '');
      }
    }
  }
}

/** A metric's value from a registry, summed over label sets matching `labels`. */
export async function metricValue(handle: SchedulerHandle, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metrics = await handle.registry.getMetricsAsJSON();
  const suffix = name.endsWith('_count') || name.endsWith('_sum') ? name.slice(name.lastIndexOf('_')) : '';
  const base = suffix ? name.slice(0, -suffix.length) : name;
  const metric = metrics.find((m) => m.name === base);
  if (!metric) return 0;
  let total = 0;
  for (const v of metric.values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>) {
    if (suffix && v.metricName !== name) continue;
    if (!suffix && v.metricName && v.metricName !== name) continue;
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) total += v.value;
  }
  return total;
}

/**
 * Hooks a test file up to the shared cluster (before/after) and returns a runner that gives
 * each test a fresh Fixture and cleans it up afterwards, also when the test fails.
 */
export function fixtureRunner(suite: Test): (fn: (f: Fixture) => Promise<void>) => Promise<void> {
  let cluster: TestCluster | undefined;
  suite.before(async () => {
    cluster = await testCluster();
  });
  suite.after(async () => {
    await cluster?.release();
  });
  return async (fn) => {
    if (!cluster) throw new Error('the cluster is not up: fixtureRunner needs its before hook to have run');
    const f = new Fixture(cluster);
    try {
      await fn(f);
    } finally {
      await f.cleanup();
    }
  };
}
