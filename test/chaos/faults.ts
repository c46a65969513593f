// The fault kinds of the chaos matrix and the soak (issue 9), each a function that injects one
// fault into the two-node lab, heals it, and says when. Agent faults hit the node serving the
// sentinel address (the one the client's request loop asks); scheduler faults hit the Lease
// holder; control-plane faults hit kube-apiserver. The caller announces the fault window to the
// checker (faultStarted/faultEnded), waits for recovery and measures downtime.
import type { V1Service } from '@kubernetes/client-node';
import type { ControlPlane } from '../controlplane/harness.js';
import { waitFor } from '../controlplane/harness.js';
import type { LabNode, SchedulerReplica, TwoNodeLab } from '../e2e/twonode.js';
import type { Checker, FaultWindow } from './checker.js';

export const POOL_V4 = 'chaos-v4';
export const POOL_V6 = 'chaos-v6';

export interface ChaosEnv {
  lab: TwoNodeLab;
  cp: ControlPlane;
  checker: Checker;
  /** The address the client's request loop asks (agent faults hit its node). */
  sentinel: string;
  /** Services created by a scheduler fault's burst (default 30; the 100 with CHAOS_BURST=100). */
  burst: number;
  random(): number;
  log(message: string): void;
}

export interface Injection {
  kind: string;
  window: FaultWindow;
  /** The node or replica the fault hit. */
  target: string;
  notes: string[];
}

export type Fault = (env: ChaosEnv, kind: string) => Promise<Injection>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const between = (env: ChaosEnv, lo: number, hi: number): number => Math.round(lo + env.random() * (hi - lo));

async function servingNode(env: ChaosEnv): Promise<LabNode> {
  return env.lab.node(await env.lab.servingNode(env.sentinel, { timeoutMs: 60_000 }));
}

async function leaderReplica(env: ChaosEnv): Promise<SchedulerReplica> {
  let replica: SchedulerReplica | undefined;
  await waitFor('a scheduler leader', async () => (replica = await env.lab.leaderReplica()) !== undefined, 60_000, 200);
  return replica as SchedulerReplica;
}

/** Runs fault between faultStarted and faultEnded, with the target's name. */
async function window(env: ChaosEnv, kind: string, target: string, fault: (notes: string[]) => Promise<void>): Promise<Injection> {
  const w = env.checker.faultStarted(kind);
  const notes: string[] = [];
  try {
    await fault(notes);
  } finally {
    env.checker.faultEnded(w);
  }
  return { kind, window: w, target, notes };
}

// ---- bursts of Service creates and deletes, for the scheduler faults ----

export function burstService(name: string, i: number): V1Service {
  const dual = i % 5 === 4;
  const v6 = i % 5 === 3;
  return {
    metadata: { name, namespace: 'default', labels: { 'chaos.ipcontroller.ext/burst': 'true' } },
    spec: {
      type: 'LoadBalancer',
      ports: [{ port: 80, targetPort: 80 }],
      ...(dual ? { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] } : v6 ? { ipFamilies: ['IPv6'] } : {}),
    },
  };
}

/** Creates n LoadBalancer Services (every fourth v6, every fifth dual-stack), 10 at a time; calls midway() at a third. */
async function burstCreate(env: ChaosEnv, n: number, midway: () => Promise<void>): Promise<string[]> {
  const stamp = Date.now().toString(36);
  const names = Array.from({ length: n }, (_, i) => `burst-${stamp}-${i}`);
  let done = 0;
  let fired: Promise<void> | undefined;
  for (let i = 0; i < n; i += 10) {
    await Promise.all(
      names.slice(i, i + 10).map(async (name, j) => {
        await env.lab.core
          .createNamespacedService({ namespace: 'default', body: burstService(name, i + j) })
          .catch((err: unknown) => env.log(`create ${name}: ${String(err)}`));
        done++;
      }),
    );
    if (!fired && done >= n / 3) fired = midway();
  }
  await (fired ?? midway());
  return names;
}

/** Deletes every burst Service (best effort; the checker judges what follows). */
export async function deleteBursts(env: ChaosEnv, keep: string[] = []): Promise<void> {
  const list = await env.lab.core.listNamespacedService({ namespace: 'default', labelSelector: 'chaos.ipcontroller.ext/burst=true' });
  const names = list.items.map((s) => s.metadata?.name ?? '').filter((n) => n && !keep.includes(n));
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(
      names.slice(i, i + 10).map((name) => env.lab.core.deleteNamespacedService({ name, namespace: 'default' }).catch(() => undefined)),
    );
  }
}

// ---- agent faults ----

const agentFreezeLinkDown: Fault = async (env, kind) => {
  const node = await servingNode(env);
  return window(env, kind, node.name, async (notes) => {
    await env.lab.fail(node);
    const to = await env.lab.servingNode(env.sentinel, { not: node.name, timeoutMs: 30_000 });
    const held = between(env, 500, 3000);
    await sleep(held);
    await env.lab.recover(node);
    notes.push(`moved to ${to}; resumed ${held} ms after the move`);
  });
};

const agentFreeze =
  (ms: number): Fault =>
  async (env, kind) => {
    const node = await servingNode(env);
    return window(env, kind, node.name, async () => {
      node.agent?.proc.signal('SIGSTOP');
      await sleep(ms);
      node.agent?.proc.signal('SIGCONT');
    });
  };

const agentKill: Fault = async (env, kind) => {
  const node = await servingNode(env);
  return window(env, kind, node.name, async (notes) => {
    const proc = node.agent?.proc;
    proc?.signal('SIGKILL');
    await proc?.exited;
    const down = between(env, 500, 2000);
    await sleep(down);
    await env.lab.startAgent(node);
    notes.push(`restarted after ${down} ms`);
  });
};

/** SIGTERM: a graceful drain, whose make-before-break overlap agent/README.md allows (its length is reported). */
const agentDrain: Fault = async (env, kind) => {
  const node = await servingNode(env);
  return window(env, kind, node.name, async (notes) => {
    const proc = node.agent?.proc;
    const allowed = env.checker.allowOverlap(node.port.mac, Date.now(), Infinity);
    proc?.signal('SIGTERM');
    const code = await proc?.exited;
    // The drain removes the addresses before the process exits; a frame in flight may trail it.
    allowed.to = Date.now() + 100;
    notes.push(`exit ${String(code)}`);
    await env.lab.startAgent(node);
  });
};

const linkFlap: Fault = async (env, kind) => {
  const node = await servingNode(env);
  return window(env, kind, node.name, async (notes) => {
    const until = Date.now() + 10_000;
    let flaps = 0;
    while (Date.now() < until) {
      await env.lab.lab.setLink(node.ns, 'eth0', 'down');
      await sleep(between(env, 200, 800));
      await env.lab.lab.setLink(node.ns, 'eth0', 'up');
      await sleep(between(env, 200, 800));
      flaps++;
    }
    notes.push(`${flaps} flaps`);
  });
};

/** Random loss both ways on a node's link: nftables netdev ingress and egress hooks (no sch_netem here). */
export function lossRules(percent: number, iface = 'eth0'): string {
  return [
    'table netdev ipc_chaos_loss {',
    `  chain in { type filter hook ingress device "${iface}" priority 0; numgen random mod 100 < ${percent} drop; }`,
    `  chain out { type filter hook egress device "${iface}" priority 0; numgen random mod 100 < ${percent} drop; }`,
    '}',
  ].join('\n');
}

const loss =
  (percent: number, ms = 15_000): Fault =>
  async (env, kind) => {
    const node = await servingNode(env);
    return window(env, kind, node.name, async () => {
      const added = await env.lab.lab.exec(node.ns, ['nft', '-f', '-'], lossRules(percent));
      if (added.code !== 0) throw new Error(`nft in ${node.ns.name}: ${added.stderr}`);
      try {
        await sleep(ms);
      } finally {
        await env.lab.lab.exec(node.ns, ['nft', 'delete', 'table', 'netdev', 'ipc_chaos_loss']);
      }
    });
  };

/** Probes blocked, API reachable: the node's agent port dropped for the scheduler replicas only. */
const probesBlocked: Fault = async (env, kind) => {
  const node = await servingNode(env);
  const sources = env.lab.schedulers.map((s) => s.ip4).join(', ');
  const rules = [
    'table inet ipc_chaos_probe {',
    `  chain in { type filter hook input priority 0; ip saddr { ${sources} } meta l4proto { tcp, udp } th dport 9610 drop; }`,
    '}',
  ].join('\n');
  return window(env, kind, node.name, async (notes) => {
    const added = await env.lab.lab.exec(node.ns, ['nft', '-f', '-'], rules);
    if (added.code !== 0) throw new Error(`nft in ${node.ns.name}: ${added.stderr}`);
    try {
      const to = await env.lab.servingNode(env.sentinel, { not: node.name, timeoutMs: 30_000 }).catch(() => 'nowhere');
      notes.push(`moved to ${to}`);
      await sleep(3000);
    } finally {
      await env.lab.lab.exec(node.ns, ['nft', 'delete', 'table', 'inet', 'ipc_chaos_probe']);
    }
  });
};

/** The node's API forwarder frozen (connections hang, as in a partition), probes still arriving. */
const nodeApiBlocked: Fault = async (env, kind) => {
  const node = await servingNode(env);
  return window(env, kind, node.name, async () => {
    env.lab.api.pause(node.ns);
    try {
      await sleep(15_000);
    } finally {
      env.lab.api.resume(node.ns);
    }
  });
};

/** A cgroup (v1 cpu controller) CPU quota of 5% on the serving agent for 20 s. */
const cpuStarve: Fault = async (env, kind) => {
  const node = await servingNode(env);
  const pid = node.agent?.proc.child.pid;
  const group = `/sys/fs/cgroup/cpu/${env.lab.lab.prefix}-starve`;
  return window(env, kind, node.name, async (notes) => {
    const { mkdirSync, writeFileSync, readFileSync, rmdirSync } = await import('node:fs');
    if (!pid) throw new Error('no agent pid');
    const original = /:cpu(?:,cpuacct)?:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '/';
    mkdirSync(group, { recursive: true });
    try {
      writeFileSync(`${group}/cpu.cfs_period_us`, '100000');
      writeFileSync(`${group}/cpu.cfs_quota_us`, '5000');
      writeFileSync(`${group}/cgroup.procs`, String(pid));
      notes.push('quota 5 ms per 100 ms');
      await sleep(20_000);
    } finally {
      try {
        writeFileSync(`/sys/fs/cgroup/cpu${original === '/' ? '' : original}/cgroup.procs`, String(pid));
      } catch (err) {
        notes.push(`moving back: ${String(err)}`);
      }
      await sleep(100);
      try {
        rmdirSync(group);
      } catch (err) {
        notes.push(`rmdir ${group}: ${String(err)}`);
      }
    }
  });
};

// ---- scheduler faults ----

const leaderKillBurst: Fault = async (env, kind) => {
  const leader = await leaderReplica(env);
  return window(env, kind, leader.identity, async (notes) => {
    const names = await burstCreate(env, env.burst, async () => {
      leader.proc.signal('SIGKILL');
      await leader.proc.exited;
    });
    await sleep(between(env, 500, 2000));
    env.lab.startScheduler(leader);
    notes.push(`${names.length} creates, leader killed a third of the way`);
  });
};

const leaderKillFailover: Fault = async (env, kind) => {
  const leader = await leaderReplica(env);
  const node = await servingNode(env);
  return window(env, kind, `${leader.identity}+${node.name}`, async (notes) => {
    await env.lab.fail(node);
    leader.proc.signal('SIGKILL');
    await leader.proc.exited;
    try {
      const to = await env.lab.servingNode(env.sentinel, { not: node.name, timeoutMs: 30_000 });
      notes.push(`moved to ${to} by the standby`);
    } finally {
      await env.lab.recover(node);
      env.lab.startScheduler(leader);
    }
  });
};

/** A burst of creates (and deletes of an earlier burst) with the leader frozen for ms a third of the way. */
const leaderFreeze =
  (ms: number): Fault =>
  async (env, kind) => {
    const leader = await leaderReplica(env);
    return window(env, kind, leader.identity, async (notes) => {
      const deleting = deleteBursts(env);
      const names = await burstCreate(env, env.burst, async () => {
        leader.proc.signal('SIGSTOP');
        await sleep(ms);
        leader.proc.signal('SIGCONT');
      });
      await deleting;
      notes.push(`${names.length} creates beside deletes, leader frozen ${ms} ms`);
    });
  };

/** The leader's API connection black-holed (its forwarder frozen) for ms during a burst. */
const leaderApiCut =
  (ms: number): Fault =>
  async (env, kind) => {
    const leader = await leaderReplica(env);
    return window(env, kind, leader.identity, async (notes) => {
      const deleting = deleteBursts(env);
      const names = await burstCreate(env, env.burst, async () => {
        env.lab.api.pause(leader.ns);
        await sleep(ms);
        env.lab.api.resume(leader.ns);
      });
      await deleting;
      notes.push(`${names.length} creates beside deletes, leader cut off ${ms} ms`);
    });
  };

const schedulersDown: Fault = async (env, kind) =>
  window(env, kind, 'both', async () => {
    const replicas = env.lab.schedulers;
    for (const r of replicas) r.proc.signal('SIGKILL');
    await Promise.all(replicas.map((r) => r.proc.exited));
    await sleep(30_000);
    for (const r of replicas) env.lab.startScheduler(r);
  });

const apiserverDown: Fault = async (env, kind) =>
  window(env, kind, 'kube-apiserver', async () => {
    await env.cp.stopApiserver();
    try {
      await sleep(30_000);
    } finally {
      await env.cp.startApiserver();
    }
  });

const etcdDown: Fault = async (env, kind) =>
  window(env, kind, 'etcd', async () => {
    await env.cp.stopEtcd();
    try {
      await sleep(30_000);
    } finally {
      await env.cp.startEtcd();
    }
  });

/**
 * A slow node rather than a dead one: the serving node's API connection delayed 1 s each way
 * (its forwarder holds every chunk; no netem here) for 15 s. Heartbeats and watch events come
 * late, probes are on time: nothing may move.
 */
const nodeApiSlow: Fault = async (env, kind) => {
  const node = await servingNode(env);
  return window(env, kind, node.name, async (notes) => {
    await env.lab.api.setSlow(node.ns, true);
    try {
      await sleep(15_000);
    } finally {
      await env.lab.api.setSlow(node.ns, false);
    }
    notes.push('API connection delayed 1 s each way for 15 s');
  });
};

/** The leader's API connection delayed 1 s each way for 15 s during a burst: it may lose the Lease, nothing may be lost. */
const leaderApiSlow: Fault = async (env, kind) => {
  const leader = await leaderReplica(env);
  return window(env, kind, leader.identity, async (notes) => {
    const names = await burstCreate(env, env.burst, async () => {
      await env.lab.api.setSlow(leader.ns, true);
      try {
        await sleep(15_000);
      } finally {
        await env.lab.api.setSlow(leader.ns, false);
      }
    });
    const after = await env.lab.leaderReplica();
    notes.push(`${names.length} creates, leader's API path delayed 1 s each way for 15 s; leader after: ${after?.identity ?? 'none yet'}`);
  });
};

/** Every fault kind, in the order of issue 9's list. */
export const FAULTS: Record<string, Fault> = {
  'agent-freeze-link-down': agentFreezeLinkDown,
  'agent-freeze-0.5s': agentFreeze(500),
  'agent-freeze-2s': agentFreeze(2000),
  'agent-freeze-5s': agentFreeze(5000),
  'agent-kill9-restart': agentKill,
  'agent-sigterm-drain': agentDrain,
  'link-flap-10s': linkFlap,
  'loss-20pct-15s': loss(20),
  'loss-50pct-15s': loss(50),
  'leader-kill9-burst': leaderKillBurst,
  'leader-kill9-failover': leaderKillFailover,
  'leader-freeze-1s-burst': leaderFreeze(1000),
  'leader-freeze-5s-burst': leaderFreeze(5000),
  'leader-freeze-30s-burst': leaderFreeze(30_000),
  'leader-api-cut-10s': leaderApiCut(10_000),
  'leader-api-cut-60s': leaderApiCut(60_000),
  'schedulers-down-30s': schedulersDown,
  'apiserver-down-30s': apiserverDown,
  'etcd-down-30s': etcdDown,
  'node-api-slow-1s-15s': nodeApiSlow,
  'leader-api-slow-1s-15s': leaderApiSlow,
  'node-api-blocked-15s': nodeApiBlocked,
  'node-probes-blocked': probesBlocked,
  'cpu-starve-5pct-20s': cpuStarve,
};
