// The IpNode heartbeat alone, against an in-memory apiserver and a clock the test moves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { ApiException } from '@kubernetes/client-node';
import type { IpNode, IpNodeSpec, IpNodeStatus } from '../api/types.js';
import { flush, ManualClock } from '../lib/manualclock.js';
import { AGENT_DEFAULTS } from './config.js';
import { Heartbeat, type HeartbeatHooks } from './heartbeat.js';
import type { KubePort } from './kube.js';
import { AgentMetrics } from './metrics.js';
import type { NetPort } from './net.js';

class Api {
  node: IpNode | null = null;
  statuses: { at: number; status: IpNodeStatus }[] = [];
  specPatches: IpNodeSpec[] = [];
  down = false;
  constructor(private readonly clock: ManualClock) {}
  private check(): void {
    if (this.down) throw new Error('connection refused');
  }
  port(): KubePort {
    return {
      claims: { run: () => undefined, synced: () => true, entries: () => [], listedAt: () => 0, relist: () => undefined },
      patchClaimStatus: async () => undefined,
      getIpNode: async () => (this.check(), this.node),
      createIpNode: async (node) => {
        this.check();
        this.node = node;
      },
      patchIpNodeSpec: async (_name, spec) => {
        this.check();
        this.specPatches.push(spec);
      },
      patchIpNodeStatus: async (_name, status) => {
        this.check();
        if (!this.node) throw new ApiException(404, 'Not Found', {}, {});
        this.statuses.push({ at: this.clock.now(), status });
      },
      nodeInternalIp: async () => '192.0.2.11',
    };
  }
}

const net = { links: async () => [], defaultRoutes: async () => ({}) } as unknown as NetPort;

function rig(hbMs = 2000): { clock: ManualClock; api: Api; hb: Heartbeat; recovered: number[]; metrics: AgentMetrics } {
  const clock = new ManualClock();
  const api = new Api(clock);
  const recovered: number[] = [];
  const metrics = new AgentMetrics();
  const hooks: HeartbeatHooks = {
    report: () => ({ conditions: [], addresses: ['192.0.2.50/32'], claimsHeld: 1, macs: [] }),
    recovered: (failures) => recovered.push(failures),
    probePort: () => 9610,
  };
  const config = { ...AGENT_DEFAULTS, nodeName: 'node-a', iface: 'eth0', hbMs };
  const hb = new Heartbeat(config, { kube: api.port(), net, clock, logger: pino({ level: 'silent' }), metrics }, hooks);
  return { clock, api, hb, recovered, metrics };
}

test('registers the IpNode with where to probe it, then writes its status every --hb', async () => {
  const r = rig();
  const stop = new AbortController();
  const loop = r.hb.run(stop.signal);
  await flush();
  assert.equal(r.api.node?.spec, { probeAddress: '192.0.2.11', probePort: 9610, iface: 'eth0' });
  assert.ok(r.hb.registered);
  await r.clock.advance(4000);
  assert.equal(
    r.api.statuses.map((s) => s.at - r.api.statuses[0]!.at),
    [0, 2000, 4000],
  );
  assert.equal(r.api.statuses[0]?.status.addresses, ['192.0.2.50/32']);
  stop.abort();
  await loop;
});

test('registration retries with a backoff that doubles up to --hb', async () => {
  const r = rig(2000);
  r.api.down = true;
  const tries: number[] = [];
  const getIpNode = r.api.port().getIpNode;
  const stop = new AbortController();
  const hb = new Heartbeat(
    { ...AGENT_DEFAULTS, nodeName: 'node-a', hbMs: 2000, probeAddress: '192.0.2.11' },
    {
      kube: {
        ...r.api.port(),
        getIpNode: async (name) => {
          tries.push(r.clock.now());
          return getIpNode(name);
        },
      },
      net,
      clock: r.clock,
      logger: pino({ level: 'silent' }),
      metrics: r.metrics,
    },
    { report: () => ({ conditions: [], addresses: [], claimsHeld: 0, macs: [] }), recovered: () => undefined, probePort: () => 9610 },
  );
  const loop = hb.run(stop.signal);
  await flush();
  await r.clock.advance(6000, 10);
  const gaps = tries.slice(1).map((t, i) => t - (tries[i] ?? 0));
  assert.equal(gaps.slice(0, 5), [250, 500, 1000, 2000, 2000]);
  assert.not.ok(hb.registered);
  r.api.down = false;
  await r.clock.advance(2000, 10);
  assert.ok(hb.registered);
  stop.abort();
  await loop;
});

test('a write that works after failures is reported once, with how many failed; API contact moves only on success', async () => {
  const r = rig();
  await r.hb.register();
  assert.ok(await r.hb.beat());
  const contact = r.hb.lastApiContact;
  r.api.down = true;
  await r.clock.advance(1000);
  assert.not.ok(await r.hb.beat());
  assert.not.ok(await r.hb.beat());
  assert.is(r.hb.lastApiContact, contact);
  assert.match(await r.metrics.registry.getSingleMetricAsString('ipcontroller_agent_heartbeat_failures_total'), / 2$/m);
  r.api.down = false;
  assert.ok(await r.hb.beat());
  assert.ok(await r.hb.beat());
  assert.equal(r.recovered, [2]);
  assert.is(r.hb.lastApiContact, r.clock.now());
});

test('an IpNode deleted under the agent is registered again', async () => {
  const r = rig();
  const stop = new AbortController();
  const loop = r.hb.run(stop.signal);
  await flush();
  r.api.node = null;
  await r.clock.advance(2000);
  assert.not.ok(r.hb.registered, 'the heartbeat found it gone');
  await r.clock.advance(2000);
  assert.ok(r.hb.registered);
  assert.ok(r.api.node);
  stop.abort();
  await loop;
});

test.run();
