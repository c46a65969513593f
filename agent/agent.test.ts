// The whole agent against in-memory ports: a fake apiserver, a fake interface table that
// understands the agent's `ip -batch` lines, a frame recorder and a clock the test moves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import type { Clock } from '../lib/clock.js';
import type { StatusServerOptions } from '../lib/http.js';
import { API_VERSION, type IpClaim, type IpClaimStatus, type IpNode, type IpNodeStatus } from '../api/types.js';
import { OWNER_METRIC, type HostLink } from './addresses.js';
import { PROBE_HEADER } from '../api/probe.js';
import { startAgent, type RunningAgent } from './agent.js';
import { AGENT_DEFAULTS, type AgentConfig } from './config.js';
import type { FrameSender } from './frames.js';
import type { ClaimEntry, KubePort } from './kube.js';
import { AgentMetrics } from './metrics.js';
import type { NetPort } from './net.js';
import type { Frame } from './packets.js';
import { flush, ManualClock } from '../lib/manualclock.js';
import type { DeadmanPort } from './deadman.js';
import type { KernelYieldPort } from './kernelyield.js';
import { ClaimNotOnThisNode } from './refusals.js';

class FakeNet implements NetPort {
  links_: HostLink[] = [
    {
      name: 'lo',
      ifindex: 1,
      mac: null,
      up: true,
      noArp: false,
      addresses: [{ ip: '127.0.0.1', prefixLength: 8, family: 'inet', dadFailed: false, tentative: false }],
    },
    {
      name: 'eth0',
      ifindex: 2,
      mac: '02:00:5e:00:53:01',
      up: true,
      noArp: false,
      addresses: [{ ip: '192.0.2.11', prefixLength: 24, family: 'inet', dadFailed: false, tentative: false }],
    },
  ];
  batches: string[][] = [];
  routeReads = 0;
  onDeleted: ((line: string) => void) | undefined;
  async links(): Promise<HostLink[]> {
    return structuredClone(this.links_);
  }
  async defaultRoutes() {
    this.routeReads += 1;
    return { inet: 'eth0' };
  }
  async apply(lines: string[]): Promise<Map<number, string>> {
    if (lines.length) this.batches.push(lines);
    const errors = new Map<number, string>();
    lines.forEach((line, i) => {
      const m = /^addr (replace|del) ([^/ ]+)\/(\d+) dev (\S+)(?: metric (\d+))?/.exec(line);
      const link = this.links_.find((l) => l.name === m?.[4]);
      if (!m || !link) return void errors.set(i, `Cannot find device "${m?.[4]}"`);
      link.addresses = link.addresses.filter((a) => a.ip !== m[2]);
      if (m[1] === 'replace') {
        link.addresses.push({
          ip: m[2] ?? '',
          prefixLength: Number(m[3]),
          family: m[2]?.includes(':') ? 'inet6' : 'inet',
          metric: Number(m[5]),
          dadFailed: false,
          tentative: false,
        });
      }
    });
    return errors;
  }
  watchAddresses(onDeleted: (line: string) => void): void {
    this.onDeleted = onDeleted;
  }
  async sysctl(): Promise<number | null> {
    return null;
  }
  has(ip: string): boolean {
    return this.links_.some((l) => l.addresses.some((a) => a.ip === ip));
  }
}

class FakeKube implements KubePort {
  entries_ = new Map<string, ClaimEntry>();
  statuses: { name: string; status: IpClaimStatus }[] = [];
  /** Claims whose status writes the apiserver refuses as moved to this node. */
  movedTo = new Map<string, string>();
  statusAttempts = 0;
  nodeStatuses: IpNodeStatus[] = [];
  ipNode: IpNode | null = null;
  apiDown = false;
  listed = 0;
  private onChange: (() => void) | undefined;
  constructor(private readonly clock: Clock) {}
  claims = {
    run: (onChange: () => void) => {
      this.onChange = onChange;
      this.listed = this.clock.now();
      onChange();
    },
    synced: () => true,
    entries: () => [...this.entries_.values()],
    listedAt: () => this.listed,
    relist: () => {
      if (!this.apiDown) this.listed = this.clock.now() + 1;
      this.onChange?.();
    },
  };
  setClaim(
    name: string,
    cidr: string,
    nodeName: string,
    { spec: extra = {}, status }: { spec?: Partial<IpClaim['spec']>; status?: IpClaimStatus } = {},
  ): void {
    this.entries_.set(name, {
      ok: true,
      claim: {
        apiVersion: API_VERSION,
        kind: 'IpClaim',
        metadata: { name },
        spec: { cidr, nodeName, ...extra },
        ...(status ? { status } : {}),
      },
    });
    this.onChange?.();
  }
  private check(): void {
    if (this.apiDown) throw new Error('connection refused');
  }
  async patchClaimStatus(name: string, status: IpClaimStatus): Promise<void> {
    this.check();
    this.statusAttempts += 1;
    const movedTo = this.movedTo.get(name);
    if (movedTo !== undefined) throw new ClaimNotOnThisNode(name, movedTo);
    this.statuses.push({ name, status });
  }
  /** Other agents' IpNodes, by node name. */
  readonly peers = new Map<string, IpNode>();
  async getIpNode(name: string): Promise<IpNode | null> {
    this.check();
    return this.peers.get(name) ?? this.ipNode;
  }
  async createIpNode(node: IpNode): Promise<void> {
    this.check();
    this.ipNode = node;
  }
  async patchIpNodeSpec(): Promise<void> {
    this.check();
  }
  async patchIpNodeStatus(_name: string, status: IpNodeStatus): Promise<void> {
    this.check();
    this.nodeStatuses.push(status);
  }
  async nodeInternalIp(): Promise<string | null> {
    return null;
  }
}

class FakeSender implements FrameSender {
  sent: { ifindex: number; frame: Frame }[] = [];
  send(ifindex: number, frame: Frame) {
    this.sent.push({ ifindex, frame });
    return { ok: true as const };
  }
  close(): void {}
}

interface Rig {
  agent: RunningAgent;
  clock: ManualClock;
  net: FakeNet;
  kube: FakeKube;
  sender: FakeSender;
  metrics: AgentMetrics;
  healthz: (headers?: Record<string, string>) => Record<string, unknown>;
}

/** Log lines of a rig, parsed (pino: level 20 debug, 30 info, 40 warn). */
type LogLine = { level: number; msg: string } & Record<string, unknown>;

/** The kernel's dead-man switch as the agent drives it: every refresh, and whether it was closed. */
class FakeDeadman implements DeadmanPort {
  refreshes: { at: number; addresses: string[]; ttlMs: number }[] = [];
  closed = false;
  constructor(private readonly clock: ManualClock) {}
  /** Called at every hold and refresh, so a test can see what happened before each. */
  onCall?: (kind: 'hold' | 'refresh', addresses: string[]) => void;
  async refresh(addresses: string[], ttlMs: number): Promise<void> {
    this.refreshes.push({ at: this.clock.now(), addresses: [...addresses].sort(), ttlMs });
    this.onCall?.('refresh', addresses);
  }
  async hold(addresses: string[]): Promise<void> {
    this.onCall?.('hold', addresses);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  /** Whether address is live at time t (the kernel's view: some refresh listed it within ttl). */
  liveAt(address: string, t: number): boolean {
    return this.refreshes.some((r) => r.at <= t && t < r.at + r.ttlMs && r.addresses.includes(address));
  }
}

async function rig(
  overrides: Partial<AgentConfig> = {},
  logs?: LogLine[],
  deadman?: (clock: ManualClock) => DeadmanPort,
  kernelYield?: KernelYieldPort,
): Promise<Rig> {
  const clock = new ManualClock();
  const net = new FakeNet();
  const kube = new FakeKube(clock);
  const sender = new FakeSender();
  const metrics = new AgentMetrics();
  let server: StatusServerOptions | undefined;
  const config: AgentConfig = { ...AGENT_DEFAULTS, nodeName: 'node-a', iface: 'eth0', ...overrides };
  const agent = await startAgent(Object.freeze(config), {
    kube,
    net,
    sender,
    clock,
    metrics,
    ...(deadman ? { deadman: deadman(clock) } : {}),
    ...(kernelYield ? { kernelYield } : {}),
    logger: logs
      ? pino({ level: 'trace' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) })
      : pino({ level: 'silent' }),
    serve: async (options) => {
      server = options;
      return { port: 9610, close: async () => undefined };
    },
  });
  await flush();
  const healthz = (headers: Record<string, string> = {}) => {
    const r = server?.healthz({ headers }) ?? { ok: false };
    return { ok: r.ok, ...r.detail };
  };
  return { agent, clock, net, kube, sender, metrics, healthz };
}

test('a claim for this node: one batch adds the marked address, both GARP forms go out at once, status Assigned', async () => {
  const r = await rig();
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  r.kube.setClaim('other', '192.0.2.60/32', 'node-b');
  await r.agent.reconcileNow();
  assert.equal(r.net.batches.at(-1), [`addr replace 192.0.2.50/32 dev eth0 metric ${OWNER_METRIC}`]);
  assert.not.ok(r.net.has('192.0.2.60'), 'claims of other nodes are not ours');
  assert.equal(
    r.sender.sent.map((s) => [s.ifindex, s.frame.kind]),
    [
      [2, 'garp_request'],
      [2, 'garp_reply'],
    ],
  );
  const status = r.kube.statuses.find((s) => s.name === 'c1')?.status;
  assert.is(status?.phase, 'Assigned');
  assert.is(status?.node, 'node-a');
  assert.match(await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_addresses_held'), /family="ipv4"} 1/);
  // The rest of the schedule: 5 rounds in all, 1.1 s apart, then quiet.
  await r.clock.advance(5000);
  assert.is(r.sender.sent.length, 10);
  await r.clock.advance(5000);
  assert.is(r.sender.sent.length, 10);
  await r.agent.stop();
});

test('without --iface the default routes are read once per --resync, not for every reconcile', async () => {
  const r = await rig({ iface: undefined });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  const reads = r.net.routeReads; // the heartbeat reads them too, for the probe address
  r.kube.setClaim('c2', '192.0.2.51/32', 'node-a');
  await r.agent.reconcileNow();
  assert.ok(r.net.has('192.0.2.51'), 'the claim went on the default route interface');
  assert.is(r.net.routeReads, reads, 'not read again for the second claim');
  await r.clock.advance(AGENT_DEFAULTS.resyncMs);
  await r.agent.reconcileNow();
  assert.ok(r.net.routeReads > reads, 'read again once --resync has passed');
});

test('the claim moves away: the address is removed and no longer announced', async () => {
  const r = await rig();
  r.kube.setClaim('c1', '2001:db8::50/128', 'node-a');
  await r.agent.reconcileNow();
  assert.ok(r.net.has('2001:db8::50'));
  assert.equal(
    r.sender.sent.map((s) => s.frame.kind),
    ['na'],
  );
  assert.match(r.net.batches.at(-1)?.[0] ?? '', /nodad$/);
  r.kube.setClaim('c1', '2001:db8::50/128', 'node-b');
  await r.agent.reconcileNow();
  assert.not.ok(r.net.has('2001:db8::50'));
  await r.clock.advance(6000);
  assert.is(r.sender.sent.length, 1, 'no more announcements once withdrawn');
  await r.agent.stop();
});

test('a status write refused because the claim just moved away is logged at debug, not as a warning', async () => {
  const logs: LogLine[] = [];
  const r = await rig({}, logs);
  r.kube.movedTo.set('c1', 'node-b');
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  // (Not sending the same refused write twice is the real port's job: agent/kube.ts.)
  const attempts = r.kube.statusAttempts;
  assert.ok(attempts >= 1);
  const about = logs.filter((l) => l.claim === 'c1' && /status/.test(l.msg));
  assert.is(about.length, attempts);
  assert.ok(
    about.every((l) => l.level === 20 && l.now === 'node-b'),
    JSON.stringify(about),
  );
  assert.match(about[0]?.msg ?? '', /IpClaim c1 is on node-b now/);
  assert.not.ok(
    logs.some((l) => l.level >= 40),
    'no warning',
  );
  // The watch brings the move: the address goes and nothing is written for c1 any more.
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-b');
  await r.agent.reconcileNow();
  assert.not.ok(r.net.has('192.0.2.50'));
  assert.is(r.kube.statusAttempts, attempts);
  await r.agent.stop();
});

test('a claim for a missing interface is Failed with its reason; the next claim still works', async () => {
  const r = await rig();
  r.kube.setClaim('bad', '192.0.2.51/32', 'node-a', { spec: { link: 'nosuch0' } });
  r.kube.setClaim('good', '192.0.2.52/32', 'node-a');
  await r.agent.reconcileNow();
  const bad = r.kube.statuses.find((s) => s.name === 'bad')?.status;
  assert.is(bad?.phase, 'Failed');
  assert.is(bad?.conditions?.[0]?.reason, 'InterfaceNotFound');
  assert.ok(r.net.has('192.0.2.52'));
  assert.match(
    await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_claim_failures_total'),
    /reason="InterfaceNotFound"} 1/,
  );
  await r.agent.stop();
});

test('fencing: API down and no probes for longer than --fence-after withdraws; probes keep the addresses', async () => {
  const r = await rig({ fenceAfterMs: 3000 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  r.kube.apiDown = true;
  // Probed every 200 ms through the outage: keeps the address.
  for (let t = 0; t < 6000; t += 200) {
    r.healthz({ [PROBE_HEADER]: 'sched-1' });
    await r.clock.advance(200);
  }
  assert.not.ok(r.agent.fenced());
  assert.ok(r.net.has('192.0.2.50'));
  // Kubelet's liveness probe (no header) does not count.
  for (let t = 0; t < 4000; t += 200) {
    assert.equal(r.healthz(), { ok: true, node: 'node-a', draining: false });
    await r.clock.advance(200);
  }
  assert.ok(r.agent.fenced());
  await r.agent.reconcileNow();
  assert.not.ok(r.net.has('192.0.2.50'), 'withdrawn while fenced');
  assert.match(await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_fenced'), / 1$/m);
  // The API comes back: after a fresh list the address returns.
  r.kube.apiDown = false;
  await r.clock.advance(2500);
  assert.not.ok(r.agent.fenced());
  await r.agent.reconcileNow();
  assert.ok(r.net.has('192.0.2.50'));
  await r.agent.stop();
});

test('a probe answered through answerProbe (the method every probe transport calls) keeps the agent unfenced like an HTTP probe', async () => {
  const r = await rig({ fenceAfterMs: 3000 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  r.kube.apiDown = true;
  for (let t = 0; t < 6000; t += 200) {
    assert.equal(r.agent.answerProbe('sched-1'), { ok: true, node: 'node-a', draining: false });
    await r.clock.advance(200);
  }
  assert.not.ok(r.agent.fenced());
  assert.ok(r.net.has('192.0.2.50'));
  assert.match(await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_probes_total'), / 30$/m);
  await r.clock.advance(3200);
  assert.ok(r.agent.fenced(), 'no probe and no API server for longer than --fence-after');
  await r.agent.stop();
});

test('an agent frozen past --fence-after (SIGSTOP, long pause) withdraws before it announces anything again', async () => {
  const r = await rig({ fenceAfterMs: 3000, garpRefreshMs: 5000 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  await r.clock.advance(6000); // the first burst and one refresh, API up
  const sent = r.sender.sent.length;
  r.kube.apiDown = true;
  await r.clock.advance(12_000, 12_000); // frozen for 12 s: every timer fires at once afterwards
  assert.is(r.sender.sent.length, sent, 'no refresh announcement from a stale view');
  assert.ok(r.agent.fenced());
  await r.agent.reconcileNow();
  assert.not.ok(r.net.has('192.0.2.50'));
  await r.agent.stop();
});

test('frozen for less than --fence-after while its claim moved: no stale announcement on resume, address removed', async () => {
  const r = await rig({ fenceAfterMs: 10_000 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  await r.clock.advance(1200); // mid-burst: two rounds sent, three to come
  const sent = r.sender.sent.length;
  // Frozen 2 s: meanwhile the scheduler moved the claim; the watch event waits in the socket.
  const entry = r.kube.entries_.get('c1');
  if (entry?.ok) entry.claim.spec.nodeName = 'node-b';
  await r.clock.advance(2000, 2000);
  assert.not.ok(r.agent.fenced(), 'too short to fence');
  await r.agent.reconcileNow();
  assert.is(r.sender.sent.length, sent, 'the burst did not announce the moved address');
  assert.not.ok(r.net.has('192.0.2.50'));
  // A claim that arrives afterwards is announced as usual.
  r.kube.setClaim('c2', '192.0.2.51/32', 'node-a');
  await r.agent.reconcileNow();
  assert.is(r.sender.sent.length, sent + 2);
  await r.agent.stop();
});

test('a stall noticed while nothing else runs relists and reconciles once, and the agent carries on', async () => {
  const r = await rig({ fenceAfterMs: 10_000 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  await r.clock.advance(6000); // the announcement burst is over: only the stall ticker runs
  await r.clock.advance(2000, 2000); // frozen 2 s
  await r.agent.reconcileNow();
  assert.ok(r.net.has('192.0.2.50'), 'its claim is still held');
  r.kube.setClaim('c2', '192.0.2.51/32', 'node-a');
  await r.agent.reconcileNow();
  assert.ok(r.net.has('192.0.2.51'), 'a new claim after the stall is served');
  await r.agent.stop();
});

test('frozen past --stall-withdraw: every address goes at once on resume, before the claims can be listed again; what is still ours comes back after the list', async () => {
  const r = await rig({ fenceAfterMs: 10_000, stallWithdrawMs: 500 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  await r.clock.advance(6000);
  r.kube.apiDown = true; // the relist after the stall does not complete yet
  await r.clock.advance(800, 800); // frozen 0.8 s: the scheduler may have moved the claim
  assert.not.ok(r.net.has('192.0.2.50'), 'withdrawn on resume, though the stale cache still says it is ours');
  assert.not.ok(r.agent.fenced(), 'not a fence: a stall');
  assert.match(await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_stall_withdrawals_total'), / 1$/m);
  r.kube.apiDown = false;
  r.kube.claims.relist();
  await r.agent.reconcileNow();
  assert.ok(r.net.has('192.0.2.50'), 'the fresh list still gives it to this node');
  await r.agent.stop();
});

test('deadman: the held addresses are kept live while the agent runs; frozen past the ttl they are not, and a resumed agent whose claim moved never makes them live again', async () => {
  let dm: FakeDeadman | undefined;
  const r = await rig({ fenceAfterMs: 10_000, stallWithdrawMs: 500, deadmanMs: 400 }, undefined, (clock) => (dm = new FakeDeadman(clock)));
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  await r.clock.advance(1000);
  const d = dm as FakeDeadman;
  assert.ok(d.liveAt('192.0.2.50', r.clock.now() - 1), 'live while running');
  assert.ok(d.refreshes.every((x) => x.ttlMs === 400));
  const frozenAt = r.clock.now();
  const entry = r.kube.entries_.get('c1');
  if (entry?.ok) entry.claim.spec.nodeName = 'node-b'; // moved while this agent is frozen
  await r.clock.advance(2000, 2000); // frozen 2 s
  assert.not.ok(d.liveAt('192.0.2.50', frozenAt + 450), 'the kernel stopped answering 0.4 s into the freeze');
  await r.clock.advance(1000);
  assert.equal(
    d.refreshes.filter((x) => x.at > frozenAt && x.addresses.includes('192.0.2.50')),
    [],
    'never live again after resuming',
  );
  await r.agent.stop({ removeAddresses: true });
  assert.ok(d.closed, 'tables removed with the addresses');
});

test('a stall shorter than --stall-withdraw keeps every address', async () => {
  const r = await rig({ fenceAfterMs: 10_000, stallWithdrawMs: 500 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  await r.clock.advance(6000);
  const batches = r.net.batches.length;
  r.kube.apiDown = true;
  await r.clock.advance(300, 300);
  assert.ok(r.net.has('192.0.2.50'));
  assert.equal(
    r.net.batches
      .slice(batches)
      .flat()
      .filter((l) => l.startsWith('addr del')),
    [],
  );
  await r.agent.stop();
});

test('started with the API down and never probed: stale addresses of its own are withdrawn after --fence-after', async () => {
  const clock = new ManualClock();
  const net = new FakeNet();
  const eth0 = net.links_.find((l) => l.name === 'eth0');
  eth0?.addresses.push({ ip: '192.0.2.99', prefixLength: 32, family: 'inet', metric: OWNER_METRIC, dadFailed: false, tentative: false });
  const kube = new FakeKube(clock);
  kube.apiDown = true;
  kube.claims.synced = () => false;
  kube.claims.run = () => undefined;
  const agent = await startAgent(Object.freeze({ ...AGENT_DEFAULTS, nodeName: 'node-a', iface: 'eth0' }), {
    kube,
    net,
    clock,
    sender: new FakeSender(),
    metrics: new AgentMetrics(),
    logger: pino({ level: 'silent' }),
    serve: async () => ({ port: 9610, close: async () => undefined }),
  });
  await clock.advance(2000);
  assert.ok(net.has('192.0.2.99'), 'nothing is known yet: kept');
  await clock.advance(2000);
  await agent.reconcileNow();
  assert.not.ok(net.has('192.0.2.99'), 'fenced: withdrawn');
  assert.ok(net.has('192.0.2.11'));
  await agent.stop();
});

test('drain: Draining reported and on /healthz, waits for the claims to move, then removes what is left', async () => {
  const r = await rig({ drainTimeoutMs: 2000 });
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  r.kube.setClaim('c2', '192.0.2.51/32', 'node-a');
  await r.agent.reconcileNow();
  let drained = false;
  void r.agent.drain().then(() => (drained = true));
  await flush();
  assert.equal(r.healthz({ [PROBE_HEADER]: 's' }), { ok: true, node: 'node-a', draining: true });
  const draining = r.kube.nodeStatuses.at(-1)?.conditions?.find((c) => c.type === 'Draining');
  assert.is(draining?.status, 'True');
  const statusesBefore = r.kube.statuses.length;
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-b'); // the scheduler moves one
  await r.clock.advance(200);
  const sentAfterMove = r.sender.sent.length;
  assert.ok(r.net.has('192.0.2.50'), 'make-before-break: kept until node-b confirms it');
  await r.clock.advance(1200);
  // An ARP frame's sender address sits at bytes 28-31 (14 Ethernet + 14 ARP header bytes).
  const arpSender = (bytes: Buffer): string => Array.from(bytes.subarray(28, 32)).join('.');
  const c1Frames = r.sender.sent.slice(sentAfterMove).filter((f) => f.frame.kind !== 'na' && arpSender(f.frame.bytes) === '192.0.2.50');
  assert.is(c1Frames.length, 0, 'no longer announced from here');
  assert.ok(r.sender.sent.length > sentAfterMove, 'the address still assigned here is announced on schedule');
  assert.is(r.kube.statuses.slice(statusesBefore).filter((s) => s.name === 'c1').length, 0, 'its status is no longer ours to write');
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-b', { status: { phase: 'Assigned', node: 'node-b' } }); // node-b's agent confirms
  await r.clock.advance(200);
  assert.not.ok(r.net.has('192.0.2.50'), 'removed once the new node confirmed it');
  assert.ok(r.net.has('192.0.2.51'), 'the other stays until the timeout');
  assert.not.ok(drained);
  await r.clock.advance(2000);
  await flush();
  assert.ok(drained);
  assert.not.ok(r.net.has('192.0.2.51'));
  assert.ok(r.net.has('192.0.2.11'), 'the node address is never touched');
});

test("an address removed behind the agent's back is put back and announced again", async () => {
  const r = await rig();
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow();
  const eth0 = r.net.links_.find((l) => l.name === 'eth0');
  if (eth0) eth0.addresses = eth0.addresses.filter((a) => a.ip !== '192.0.2.50');
  const before = r.sender.sent.length;
  r.net.onDeleted?.('Deleted 2: eth0 inet 192.0.2.50/32');
  await r.agent.reconcileNow();
  assert.ok(r.net.has('192.0.2.50'));
  assert.ok(r.sender.sent.length > before);
  assert.match(await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_addresses_restored_total'), / 1$/m);
  await r.agent.stop();
});

test('a new address stays unanswered by the kernel until its first announcement is out, then is live at once', async () => {
  let dm: FakeDeadman | undefined;
  const r = await rig({ fenceAfterMs: 10_000, deadmanMs: 400 }, undefined, (clock) => (dm = new FakeDeadman(clock)));
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  await r.agent.reconcileNow(); // the first reconcile; c2 below is the one that comes up on a running agent
  const seen: string[] = [];
  if (dm)
    dm.onCall = (kind, addresses) =>
      seen.push(`${kind} ${[...addresses].sort().join(',')} after ${r.net.batches.length} batches, ${r.sender.sent.length} frames`);
  const batches = r.net.batches.length;
  const frames = r.sender.sent.length;
  r.kube.setClaim('c2', '192.0.2.51/32', 'node-a');
  await r.agent.reconcileNow();
  assert.equal(seen.slice(0, 2), [
    `hold 192.0.2.51 after ${batches} batches, ${frames} frames`,
    `refresh 192.0.2.50,192.0.2.51 after ${batches + 1} batches, ${frames + 2} frames`,
  ]);
  await r.agent.stop();
});

test('the kernel yield is told the MACs of the other agents our claims name (never its own)', async () => {
  const told: string[][] = [];
  const kernelYield: KernelYieldPort = { setPeers: async (macs) => void told.push([...macs]), close: async () => undefined };
  const r = await rig({}, undefined, undefined, kernelYield);
  const peer = (name: string, macs: string[]): IpNode => ({
    apiVersion: API_VERSION,
    kind: 'IpNode',
    metadata: { name },
    spec: { probeAddress: '192.0.2.12', probePort: 9610 },
    status: { macs },
  });
  r.kube.peers.set('node-b', peer('node-b', ['02:00:00:00:00:0b', '02:00:5e:00:53:01']));
  r.kube.setClaim('c1', '192.0.2.50/32', 'node-a');
  r.kube.setClaim('other', '192.0.2.60/32', 'node-b');
  await r.agent.reconcileNow();
  await flush();
  assert.equal(told.at(-1), ['02:00:00:00:00:0b']);
  await r.agent.stop();
});

test.run();
