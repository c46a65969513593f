// End to end, as a user sees it: the two-node lab (test/e2e/twonode.ts) with real agents and
// two scheduler replicas against a real kube-apiserver, checked from the client's side of the
// L2 segment: HTTP answers, the client's neighbour table, and frames on the wire.
// Run with `sudo make e2e` (TESTLINK=<name> names the client's link).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import type { V1Service } from '@kubernetes/client-node';
import { claimName } from '../../api/names.js';
import { waitFor } from '../controlplane/harness.js';
import { neighbour, startCapture, type Capture, type CapturedFrame } from '../lab/index.js';
import { testCluster, type TestCluster } from '../support/cluster.js';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { dashboardQueries, metricNames, ruleQueries } from '../../monitoring/promql.js';
import { startPrometheus, type LabPrometheus } from './prometheus.js';
import { AGENT_PORT, SCHEDULER_PORT, startTwoNodeLab, type LabNode, type TwoNodeLab } from './twonode.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));
let cluster: TestCluster;
let lab: TwoNodeLab;
let prometheus: LabPrometheus;
const log = (message: string): void => void process.stderr.write(`  e2e: ${message}\n`);

test.before(async () => {
  try {
    cluster = await testCluster();
    lab = await startTwoNodeLab({
      kubeconfigPath: cluster.kubeconfigPath,
      ...(process.env.TESTLINK ? { testlink: process.env.TESTLINK } : {}),
    });
    prometheus = await startPrometheus(lab.lab, '192.0.2.30/24', {
      'ipcontroller-agent': lab.nodes.filter((n) => n.labelled).map((n) => `${n.ip4}:${AGENT_PORT}`),
      'ipcontroller-scheduler': lab.schedulers.map((s) => `${s.ip4}:${SCHEDULER_PORT}`),
    });
  } catch (err) {
    // uvu counts a failed before-hook against every test but does not print it.
    console.error('the e2e lab did not start:', err);
    throw err;
  }
});
test.after(async () => {
  await lab?.destroy();
  await cluster?.release();
});

function service(name: string, spec: V1Service['spec'], annotations: Record<string, string> = {}): V1Service {
  return {
    metadata: { name, namespace: 'default', annotations },
    spec: { ports: [{ name: 'http', port: 80, targetPort: 80 }], ...spec },
  };
}

async function createService(svc: V1Service): Promise<void> {
  await lab.core.createNamespacedService({ namespace: 'default', body: svc });
}

async function deleteService(name: string): Promise<void> {
  try {
    await lab.core.deleteNamespacedService({ name, namespace: 'default' });
  } catch {
    /* already gone */
  }
}

const assignedNode = (ip: string, timeoutMs?: number, not?: string): Promise<string> =>
  lab.servingNode(ip, { ...(timeoutMs ? { timeoutMs } : {}), ...(not ? { not } : {}) });

async function servedBy(ip: string, node: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    `client reaches ${ip} on ${node}`,
    async () => {
      const r = await lab.clientGet(ip, 1);
      return r.ok && r.body === node;
    },
    timeoutMs,
    100,
  );
}

const isAnnouncementFrom =
  (ip: string, mac: string) =>
  (f: CapturedFrame): boolean =>
    f.srcMac === mac && ((f.arp?.senderIp === ip && f.arp.targetIp === ip) || f.na?.target === ip);

const other = (node: string): LabNode => lab.nodes.find((n) => n.labelled && n.name !== node) as LabNode;

/** Hard failure of the node serving ip, measured from the client; returns the new node. */
async function hardFailover(ip: string, capture: Capture): Promise<{ from: string; to: string; downtimeMs: number }> {
  const loop = lab.requestLoop(ip, 20, 60_000);
  const { from, to, at: faultAt, results, downtime } = await lab.move(loop, ip, (node) => lab.fail(node)).finally(() => loop.stop());
  const survivor = other(from);
  assert.is(to, survivor.name);
  await servedBy(ip, to);
  assert.ok(downtime, `the client saw answers before and after the fault at ${faultAt}: ${summarise(results)}`);
  assert.is(downtime?.servedBefore, from);
  assert.is(downtime?.servedAfter, to);
  // The client learnt the new MAC from the announcement, not from its own cache timing out:
  // the new node's announcement is on the wire before the first answer after the fault.
  const announced = await capture.waitFor(
    `announcement of ${ip} from ${to}`,
    (f) => f.time >= faultAt && isAnnouncementFrom(ip, survivor.port.mac)(f),
    5_000,
  );
  assert.ok(announced.time <= (downtime?.firstAfter ?? 0), 'announcement precedes recovery');
  const entry = await neighbour(lab.lab, lab.client.ns, ip);
  assert.is(entry?.mac, survivor.port.mac, `client neighbour entry for ${ip} points at ${to}`);
  log(`hard failover ${ip}: ${from} -> ${to}, client downtime ${downtime?.downtimeMs} ms`);
  return { from, to, downtimeMs: downtime?.downtimeMs ?? -1 };
}

function summarise(results: { t: number; ok: boolean; body?: string; error?: string }[]): string {
  const runs: string[] = [];
  for (const r of results) {
    const key = r.ok ? `ok:${r.body}` : `fail:${r.error}`;
    const last = runs[runs.length - 1];
    if (last?.startsWith(`${key} x`))
      runs[runs.length - 1] = `${key} x${Number(last.split(' x')[1]?.split(' ')[0]) + 1} ${last.split(' ').slice(2).join(' ')}`;
    else runs.push(`${key} x1 from ${r.t}`);
  }
  return `${results.length} requests: ${runs.join('; ')}`;
}

const WEB_IP = '192.0.2.50';
const WEB6_IP = '2001:db8::100';

test('1. a Service with externalIPs is reachable from the test link; kubectl get ipclaims shows the node', async () => {
  await createService(service('web', { type: 'ClusterIP', externalIPs: [WEB_IP] }));
  const node = await assignedNode(WEB_IP);
  assert.ok(['node-1', 'node-2'].includes(node));
  assert.equal(await lab.holders(WEB_IP), [node]);
  await servedBy(WEB_IP, node);
  const out = await cluster.kubectl(['get', 'ipclaims', claimName(WEB_IP)]);
  assert.match(out.stdout, new RegExp(`192-0-2-50-32\\s+192\\.0\\.2\\.50/32\\s+${node}\\s+\\S*default/web`));
});

test('2. the example pool and nginx LoadBalancer Service: allocated, ingress written, reachable', async () => {
  for (const file of ['ip-pool.yml', 'nginx.yaml']) {
    const applied = await cluster.kubectl(['apply', '-f', `${examples}${file}`]);
    assert.is(applied.code, 0, applied.stderr);
  }
  let ingress: { ip?: string; ipMode?: string } | undefined;
  await waitFor(
    'nginx status.loadBalancer.ingress',
    async () => {
      const svc = await lab.core.readNamespacedService({ name: 'nginx', namespace: 'default' });
      ingress = svc.status?.loadBalancer?.ingress?.[0];
      return Boolean(ingress?.ip);
    },
    20_000,
    100,
  );
  const ip = ingress?.ip ?? '';
  const last = Number(ip.split('.')[3]);
  assert.ok(ip.startsWith('192.0.2.') && last >= 100 && last <= 150, `${ip} is from the example pool's range`);
  assert.is(ingress?.ipMode, 'VIP');
  const node = await assignedNode(ip);
  await servedBy(ip, node);
  const svc = await cluster.kubectl(['get', 'svc', 'nginx', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}']);
  assert.is(svc.stdout, ip);
});

test('3. ten Services with the fair node filter split five and five, never on the unlabelled node', async () => {
  const names = Array.from({ length: 10 }, (_, i) => `fair-${i}`);
  await Promise.all(
    names.map((name) => createService(service(name, { type: 'LoadBalancer' }, { 'ipcontroller.ext/pool': 'example-pool' }))),
  );
  try {
    const ips: string[] = [];
    await waitFor(
      'ten addresses allocated',
      async () => {
        ips.length = 0;
        for (const name of names) {
          const svc = await lab.core.readNamespacedService({ name, namespace: 'default' });
          const ip = svc.status?.loadBalancer?.ingress?.[0]?.ip;
          if (ip) ips.push(ip);
        }
        return ips.length === 10;
      },
      30_000,
      200,
    );
    const placed = await Promise.all(ips.map((ip) => assignedNode(ip)));
    const count = (node: string) => placed.filter((n) => n === node).length;
    assert.is(count('node-3'), 0);
    assert.is(count('node-1'), 5, `node-1 holds ${count('node-1')}: ${placed.join(',')}`);
    assert.is(count('node-2'), 5);
    for (const ip of ips) assert.equal(await lab.holders(ip), [placed[ips.indexOf(ip)]]);
  } finally {
    await Promise.all(names.map(deleteService));
  }
});

test('4+5. hard failure moves the IP and the client follows the ARP; the node coming back does not take it back', async () => {
  const capture = await startCapture(lab.client.ns, lab.client.port.ifname);
  const before = await assignedNode(WEB_IP);
  try {
    const { from, to } = await hardFailover(WEB_IP, capture);
    const failed = lab.node(from);
    const survivor = lab.node(to);

    // The cable comes back first and the frozen agent resumes 0.5 s later, with its API
    // connection black-holed, so it cannot list the claims again for a while; meanwhile the
    // client asks "who has" every 100 ms as a broadcast (one arping each: its -i takes whole
    // seconds here, and after a reply it would go unicast). Every answer is on the capture.
    const backAt = Date.now();
    let resumedAt = 0;
    let oldAnswers: number[] = [];
    lab.api.pause(failed.ns);
    try {
      await lab.lab.exec(failed.ns, ['ip', 'link', 'set', 'eth0', 'up']);
      const asking = (async () => {
        const asked: Array<Promise<unknown>> = [];
        for (let i = 0; i < 40; i++) {
          asked.push(lab.lab.exec(lab.client.ns, ['arping', '-b', '-c', '1', '-w', '1', '-I', lab.client.port.ifname, WEB_IP]));
          await new Promise((r) => setTimeout(r, 100));
        }
        await Promise.all(asked);
      })();
      await new Promise((r) => setTimeout(r, 500)); // the 0.5 s frozen with its link up is the fault itself
      resumedAt = Date.now();
      failed.agent?.proc.signal('SIGCONT');
      await waitFor(
        `${from} drops ${WEB_IP} after coming back, before it can reach the API`,
        async () => (await lab.holders(WEB_IP)).join() === to,
        15_000,
        50,
      );
      await asking;
      oldAnswers = capture.frames
        .filter((f) => f.time >= backAt && f.srcMac === failed.port.mac && f.arp?.op === 'reply' && f.arp.senderIp === WEB_IP)
        .map((f) => Math.round(f.time));
    } finally {
      lab.api.resume(failed.ns);
    }
    const lastOld = oldAnswers.length ? Math.max(...oldAnswers) : backAt;
    const survivorAnswers = capture.frames.filter(
      (f) => f.time >= backAt && f.srcMac === survivor.port.mac && f.arp?.op === 'reply' && f.arp.senderIp === WEB_IP,
    ).length;
    log(
      `frozen node back: ${survivorAnswers} ARP answers for ${WEB_IP} from ${to}; ${oldAnswers.length} from ${from}, the last ${lastOld - backAt} ms after its link came back and ${lastOld - resumedAt} ms after its agent resumed`,
    );
    assert.ok(survivorAnswers > 0, 'the client asked and the survivor answered');
    // While frozen its kernel does not answer either: the agent's dead-man switch (nftables
    // sets that only the running agent refreshes, --deadman, 250ms by default) expired long before the
    // link came back.
    assert.equal(oldAnswers, [], `${from}'s kernel answered ARP for ${WEB_IP} while its agent was frozen`);
    // Once the agent runs again it lets go at once (--stall-withdraw), without waiting to list the claims
    // (which it could not: probes reach it again, so it is not fenced, and it would answer
    // for as long as the API stayed out of reach). The bound leaves room for a busy machine.
    assert.ok(lastOld - resumedAt < 1000, `${from} still answered ARP ${lastOld - resumedAt} ms after its agent resumed`);
    await failed.agent?.ready();
    const arping = await lab.lab.exec(lab.client.ns, ['arping', '-c', '3', '-w', '4', '-I', lab.client.port.ifname, WEB_IP]);
    const repliers = new Set([...arping.stdout.matchAll(/\[([0-9a-f:]{17})\]/gi)].map((m) => (m[1] ?? '').toLowerCase()));
    assert.equal([...repliers], [survivor.port.mac], `ARP replies for ${WEB_IP}: ${arping.stdout}`);
    // Still on the survivor after the returning node has heartbeated and been probed again.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.is(await assignedNode(WEB_IP), to);
    assert.equal(await lab.holders(WEB_IP), [to]);
    await servedBy(WEB_IP, to);
    const fromOld = capture.frames.filter((f) => f.time >= backAt && isAnnouncementFrom(WEB_IP, failed.port.mac)(f));
    assert.equal(
      fromOld.map((f) => `${f.arp?.op ?? 'na'} ${f.time}`),
      [],
      `${from} announced ${WEB_IP} after coming back`,
    );
    const lateAnswers = capture.frames.filter(
      (f) => f.time > resumedAt + 1000 && f.srcMac === failed.port.mac && (f.arp?.senderIp === WEB_IP || f.na?.target === WEB_IP),
    );
    assert.equal(
      lateAnswers.map((f) => `${f.arp?.op ?? 'na'} ${f.time}`),
      [],
      `${from} answered for ${WEB_IP} after it resumed`,
    );
  } finally {
    await capture.stop();
    // Leave the lab whole for the next scenario even when this one failed half-way.
    await lab.recover(lab.node(before));
  }
});

test('4c. a real Prometheus scrapes agents and schedulers; after the failover its counter and histogram moved', async () => {
  await prometheus.targetsUp();
  await waitFor(
    'failover counter and histogram scraped',
    async () => {
      const failovers = await prometheus.query('sum(ipcontroller_scheduler_failovers_total)');
      const observed = await prometheus.query('sum(ipcontroller_scheduler_failover_duration_seconds_count)');
      return (failovers[0]?.value ?? 0) >= 1 && (observed[0]?.value ?? 0) >= 1;
    },
    15_000,
    500,
  );
  const held = await prometheus.query('sum(ipcontroller_agent_addresses_held)');
  assert.ok((held[0]?.value ?? 0) >= 1, 'agents report the addresses they hold');
});

test('4d. every metric the dashboard and the alerts read is exported by the running programs', async () => {
  const names = new Set<string>();
  const scrape = async (ns: LabNode['ns'], port: number): Promise<void> => {
    const r = await lab.lab.exec(ns, ['curl', '-s', '-m', '2', `http://127.0.0.1:${port}/metrics`]);
    assert.is(r.code, 0, r.stderr);
    for (const m of r.stdout.matchAll(/^# TYPE (\S+) /gm)) names.add(m[1] ?? '');
  };
  await scrape(lab.node('node-1').ns, AGENT_PORT);
  const leader = await lab.leaderReplica();
  assert.ok(leader, 'a scheduler replica leads');
  if (leader) await scrape(leader.ns, SCHEDULER_PORT);
  const read = (file: string) => readFileSync(fileURLToPath(new URL(`../../monitoring/${file}`, import.meta.url)), 'utf8');
  const queries = [...dashboardQueries(JSON.parse(read('dashboard.json'))), ...ruleQueries(parse(read('alerts.yaml')))];
  for (const q of queries)
    for (const name of q.exprs.flatMap(metricNames)) assert.ok(names.has(name), `${q.title} reads ${name}, not on any /metrics`);
});

test('6. graceful: SIGTERM on the serving agent hands the IP over with downtime below one probe interval', async () => {
  const node = lab.node(await assignedNode(WEB_IP));
  const loop = lab.requestLoop(WEB_IP, 20, 60_000);
  try {
    const { from, to, downtime } = await lab.move(loop, WEB_IP, (n) => n.agent?.proc.signal('SIGTERM'));
    await servedBy(WEB_IP, to);
    const exit = await node.agent?.proc.exited;
    assert.is(exit, 0, 'the agent exits cleanly after draining');
    assert.equal(await lab.holders(WEB_IP), [to]);
    assert.ok(downtime);
    log(`graceful handover ${from} -> ${to}: client downtime ${downtime?.downtimeMs} ms`);
    assert.ok((downtime?.downtimeMs ?? Infinity) < 200, `downtime ${downtime?.downtimeMs} ms is below the 200 ms probe interval`);
  } finally {
    await loop.stop();
    await node.agent?.proc.stop();
    await lab.startAgent(node);
  }
});

test('7. the scheduler leader killed during a failover: the standby finishes it', async () => {
  const from = await assignedNode(WEB_IP);
  const leaderName = await lab.leader();
  const leader = lab.schedulers.find((s) => s.identity === leaderName);
  assert.ok(leader, `leader ${leaderName} is one of the lab's replicas`);
  const standby = lab.schedulers.find((s) => s !== leader);
  await lab.fail(lab.node(from));
  leader?.proc.signal('SIGKILL');
  try {
    const to = await assignedNode(WEB_IP, 20_000, from);
    await servedBy(WEB_IP, to);
    // Had the leader moved the claim itself before the kill, the standby takes the Lease only once it expires (4 s).
    await waitFor('the standby holds the Lease', async () => (await lab.leader()) === standby?.identity, 15_000);
    assert.is(await lab.leader(), standby?.identity);
  } finally {
    await lab.recover(lab.node(from));
    if (leader) lab.startScheduler(leader);
  }
  await waitFor(`${from} drops ${WEB_IP}`, async () => (await lab.holders(WEB_IP)).length === 1, 15_000, 50);
});

test('8. a deleted Service leaves no address on any node and frees its pool slot', async () => {
  const svc = await lab.core.readNamespacedService({ name: 'nginx', namespace: 'default' });
  const nginxIp = svc.status?.loadBalancer?.ingress?.[0]?.ip ?? '';
  assert.ok(nginxIp);
  await deleteService('nginx');
  await deleteService('web');
  for (const ip of [nginxIp, WEB_IP]) {
    await waitFor(`${ip} gone from every node`, async () => (await lab.holders(ip)).length === 0, 15_000, 50);
    await waitFor(`claim for ${ip} deleted`, async () => (await lab.ip.claims.get(claimName(ip))) === null, 15_000, 50);
  }
  await waitFor(
    'pool slot freed',
    async () => {
      const pool = await lab.ip.pools.get('example-pool');
      return pool !== null && !Object.keys(pool.status?.allocations ?? {}).includes(nginxIp);
    },
    15_000,
    100,
  );
  const failed = await lab.clientGet(nginxIp, 1);
  assert.not.ok(failed.ok, `${nginxIp} no longer answers`);
});

test('9. IPv6: an externalIPs address from 2001:db8::/64 is reachable and fails over with unsolicited NA', async () => {
  await createService(service('web6', { type: 'ClusterIP', externalIPs: [WEB6_IP] }));
  const capture = await startCapture(lab.client.ns, lab.client.port.ifname);
  try {
    const node = await assignedNode(WEB6_IP);
    assert.equal(await lab.holders(WEB6_IP), [node]);
    await servedBy(WEB6_IP, node);
    const na = await capture.waitFor('unsolicited NA', (f) => f.na?.target === WEB6_IP && !f.na.solicited, 5_000);
    assert.is(na.na?.override, true);
    assert.is(na.na?.hopLimit, 255);
    assert.is(na.na?.destination, 'ff02::1');
    try {
      await hardFailover(WEB6_IP, capture);
    } finally {
      await lab.recover(lab.node(node));
    }
    await waitFor(`${node} drops ${WEB6_IP}`, async () => (await lab.holders(WEB6_IP)).length === 1, 15_000, 50);
  } finally {
    await capture.stop();
    await deleteService('web6');
  }
});

test.run();
