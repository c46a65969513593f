// The whole scheduler, wired as main wires it, against an in-memory Kubernetes
// (test/support/memorykube.ts) on a ManualClock: the failover wiring (probes -> health step ->
// kick -> pass -> claim moved) and leadership (a leader that cannot renew stops writing) without
// an apiserver. The pieces alone are tested beside them (health, healthstep, leader, reconciler).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import type { IpClaim } from '../api/types.js';
import { ManualClock } from '../lib/manualclock.js';
import { MemoryKube } from '../test/support/memorykube.js';
import { schedulerConfig, type SchedulerConfig } from './config.js';
import { SchedulerMetrics } from './metrics.js';
import type { ProbeFn } from './prober.js';
import { startScheduler, type SchedulerHandle } from './scheduler.js';

const silent = pino({ level: 'silent' });

/** A cluster with agent nodes, a pool and LoadBalancer Services, on a clock the test moves. */
class World {
  readonly clock = new ManualClock();
  readonly kube = new MemoryKube();
  /** Nodes whose agents answer probes. */
  readonly answering = new Set<string>();
  /** Failed probes per node. */
  readonly failures = new Map<string, number>();
  private readonly handles: SchedulerHandle[] = [];

  readonly probe: ProbeFn = async (target) => {
    if (this.answering.has(target.node)) return { ok: true, draining: false, rttMs: 1 };
    this.failures.set(target.node, (this.failures.get(target.node) ?? 0) + 1);
    return { ok: false, error: 'timeout after 100ms' };
  };

  constructor(nodes: string[]) {
    for (const n of nodes) {
      this.kube.putAgentNode(n, this.clock.now());
      this.answering.add(n);
    }
    this.kube.putPool({ apiVersion: 'ipcontroller.ext/v1', kind: 'IpClaimPool', metadata: { name: 'p' }, spec: { cidr: '192.0.2.0/29' } });
  }

  service(name: string): void {
    this.kube.put('services', {
      metadata: { name, namespace: 'ns', uid: `uid-${name}`, creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ports: [{ port: 80, protocol: 'TCP' }] },
    });
  }

  async scheduler(identity: string, overrides: Partial<SchedulerConfig> = {}): Promise<SchedulerHandle> {
    const config = schedulerConfig({
      identity,
      metricsPort: -1,
      // Heartbeats are not what these tests are about: they stay fresh for the whole test.
      monitorMs: 3_600_000,
      ...overrides,
    });
    const metrics = new SchedulerMetrics();
    const handle = await startScheduler(config, {
      kube: this.kube.port(identity),
      clock: this.clock,
      probe: this.probe,
      logger: silent,
      metrics,
    });
    this.handles.push(handle);
    return handle;
  }

  /** The claim of a Service (by its single address). */
  claimOf(service: string): IpClaim | undefined {
    return [...this.kube.claims.values()].find((c) => c.spec.services?.includes(`ns/${service}`));
  }

  /** Moves the clock in 50 ms steps until cond holds; fails after limitMs of clock time. */
  async until(what: string, cond: () => boolean, limitMs = 10_000): Promise<void> {
    const end = this.clock.now() + limitMs;
    while (!cond()) {
      if (this.clock.now() >= end) throw new Error(`${what}: not within ${limitMs} ms of clock time`);
      await this.clock.advance(50);
    }
  }

  /** Stops every scheduler, moving the clock meanwhile: a Lease request in flight ends at its timeout. */
  async stop(): Promise<void> {
    let done = false;
    const stopped = Promise.all(this.handles.map((h) => h.stop({ releaseLease: false }))).finally(() => (done = true));
    while (!done) await this.clock.advance(50);
    await stopped;
  }
}

async function metric(handle: SchedulerHandle, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await handle.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (m?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
  return values.filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)).reduce((s, v) => s + v.value, 0);
}

for (const probeFailures of [3, 5]) {
  test(`failover wiring: a node whose probes fail loses its claim to the other node after ${probeFailures} failures, not before`, async () => {
    const w = new World(['a', 'b']);
    w.service('web');
    const s = await w.scheduler('s1', { leaderElect: false, probeFailures });
    try {
      await w.until('the claim is placed and the Service told', () => w.kube.ingress.has('ns/web'));
      const from = w.claimOf('web')?.spec.nodeName as string;
      const to = from === 'a' ? 'b' : 'a';
      assert.ok(from === 'a' || from === 'b');
      assert.equal(w.kube.ingress.get('ns/web'), [{ ip: '192.0.2.1', ipMode: 'VIP' }]);

      w.answering.delete(from); // the agent on `from` stops answering
      let failuresAtMove = 0;
      await w.until(`the claim moves to ${to}`, () => {
        const node = w.claimOf('web')?.spec.nodeName;
        if (node === from) assert.ok((w.failures.get(from) ?? 0) < probeFailures, 'still there after the configured failures');
        failuresAtMove = w.failures.get(from) ?? 0;
        return node === to;
      });
      assert.is(failuresAtMove, probeFailures, 'moved at the failure that reached --probe-failures');
      assert.is(await metric(s, 'ipcontroller_scheduler_failovers_total', { reason: 'probe' }), 1);
      assert.equal(w.kube.ingress.get('ns/web'), [{ ip: '192.0.2.1', ipMode: 'VIP' }], 'the address stays, only its node changed');
      assert.ok(
        w.kube.log.includes(`probe ${from} ${probeFailures}`),
        'the leader published its probe view of the failed node (IpNode status.probe)',
      );

      w.answering.add(from); // it comes back: no churn, the claim stays where it went
      await w.clock.advance(2_000);
      assert.is(w.claimOf('web')?.spec.nodeName, to);
    } finally {
      await w.stop();
    }
  });
}

test('leadership: a leader that cannot renew its Lease stops writing at its renew deadline; a standby takes over and writes', async () => {
  const w = new World(['a']);
  w.service('web1');
  const a = await w.scheduler('a');
  try {
    await w.until('a leads and places web1', () => a.isLeader() && w.claimOf('web1')?.spec.nodeName === 'a');
    assert.is(await metric(a, 'ipcontroller_scheduler_leader'), 1);

    w.kube.cutOff('a'); // its Lease requests hang from now on; its writes would still pass
    const cut = w.clock.now();
    await w.until('a steps down', () => !a.isLeader());
    assert.ok(w.clock.now() - cut <= 2_000, 'on its own clock, by the renew deadline (2 s)');
    assert.is(await metric(a, 'ipcontroller_scheduler_leader'), 0);
    const writesBefore = w.kube.writesBy('a').length;

    w.service('web2');
    await w.clock.advance(10_000);
    assert.is(w.claimOf('web2'), undefined, 'nobody leads, nobody writes');
    assert.equal(w.kube.writesBy('a').slice(writesBefore), [], 'the stale leader wrote nothing');

    // A standby that can reach the Lease takes over once the record is unchanged for a lease duration.
    const b = await w.scheduler('b');
    await w.until('b leads and places web2', () => b.isLeader() && w.claimOf('web2') !== undefined, 10_000);
    assert.ok(w.kube.writesBy('b').includes('createClaim'));
    assert.equal(w.kube.writesBy('a').slice(writesBefore), [], 'still nothing from the old leader');
    assert.not.ok(a.isLeader());
  } finally {
    await w.stop();
  }
});

test('leadership: a leader that stops cleanly gives its Lease up, so the standby leads within a retry period', async () => {
  const w = new World(['a']);
  w.service('web');
  const one = await w.scheduler('one');
  try {
    await w.until('one leads', () => one.isLeader());
    const two = await w.scheduler('two');
    await w.clock.advance(1_000);
    assert.not.ok(two.isLeader());
    let stopped = false;
    const stopping = one.stop().then(() => (stopped = true));
    await w.until('one stopped', () => stopped);
    await stopping;
    const at = w.clock.now();
    await w.until('two leads', () => two.isLeader());
    assert.ok(w.clock.now() - at <= 500, `two led ${w.clock.now() - at} ms after the release (retry period 500 ms, lease 4 s)`);
  } finally {
    await w.stop();
  }
});

test.run();
