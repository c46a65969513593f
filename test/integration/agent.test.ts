// The agent as a user sees it, for real: `ipcontroller agent` runs as its own process inside a
// node network namespace on a bridge, against the real apiserver. The test plays the
// scheduler (it writes spec.nodeName itself) and looks at the interface, the wire (tcpdump in a
// client namespace on the same bridge) and the client's neighbour table. Needs root.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CoreV1Api } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { API_VERSION, type IpClaim } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import {
  Lab,
  neighbour,
  startAgentProcess,
  startApiForwarder,
  startCapture,
  type AgentProcess,
  type ApiForwarder,
  type Capture,
  type Netns,
  type Port,
} from '../lab/index.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';

const NODE_MAC = '02:00:5e:10:00:01';
const CLIENT_MAC = '02:00:5e:10:00:99';
const FAKE_MAC = '02:00:5e:10:00:55';

let cluster: TestCluster;
let clients: IpClients;
let lab: Lab;
let nodeNs: Netns;
let clientNs: Netns;
let nodePort: Port;
let forwarder: ApiForwarder;
let kubeconfig: string;
let agent: AgentProcess | undefined;
let capture: Capture;
const nodeName = uniqueName('agent-node');
const claims = new Set<string>();

interface Addr {
  local: string;
  prefixlen: number;
  metric?: number;
  tentative?: boolean;
  dadfailed?: boolean;
}

async function addresses(): Promise<Addr[]> {
  const r = await lab.exec(nodeNs, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
  const links = JSON.parse(r.stdout || '[]') as { addr_info?: Addr[] }[];
  return links[0]?.addr_info ?? [];
}
const has = async (ip: string): Promise<boolean> => (await addresses()).some((a) => a.local === ip);

async function createClaim(cidr: string, spec: Partial<IpClaim['spec']> = {}): Promise<string> {
  const name = uniqueName('agt');
  await clients.claims.create({ apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name }, spec: { cidr, nodeName, ...spec } });
  claims.add(name);
  return name;
}

async function deleteClaim(name: string): Promise<void> {
  await clients.claims.delete(name);
  claims.delete(name);
}

function startAgent(extra: string[] = []): AgentProcess {
  agent = startAgentProcess(lab, nodeNs, { kubeconfig, hostname: nodeName, iface: 'eth0', args: ['--drain-timeout', '5s', ...extra] });
  return agent;
}

test.before(async () => {
  cluster = await testCluster();
  clients = ipClients(cluster.kubeConfig());
  lab = Lab.create();
  try {
    nodeNs = await lab.addNamespace('n1');
    clientNs = await lab.addNamespace('cl');
    nodePort = await lab.attach(nodeNs, { mac: NODE_MAC, addresses: ['192.0.2.11/24', '2001:db8:a::11/64'] });
    await lab.attach(clientNs, { mac: CLIENT_MAC, addresses: ['192.0.2.100/24', '2001:db8:a::100/64'] });
    forwarder = await startApiForwarder(lab, cluster.kubeconfigPath);
    kubeconfig = await forwarder.kubeconfigFor(nodeNs);
    await cluster
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNode({
        body: { metadata: { name: nodeName, labels: { ipcontroller: '' } } },
      });
    capture = await startCapture(clientNs, 'eth0');
    await startAgent().ready();
  } catch (err) {
    await lab.destroy();
    throw err;
  }
});

test.after(async () => {
  try {
    await agent?.proc.stop(); // first, so it cannot re-create what is deleted below
    for (const name of claims) await clients.claims.delete(name).catch(() => false);
    await clients.nodes.delete(nodeName).catch(() => false);
    await cluster
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .deleteNode({ name: nodeName })
      .catch(() => undefined);
    await capture?.stop();
    await forwarder?.close();
  } finally {
    await lab.destroy();
    await cluster.release();
  }
});

test('the agent registers its IpNode with probe address and port, heartbeats, and answers probes', async () => {
  await waitFor(
    'IpNode Ready',
    async () => {
      const node = await clients.nodes.get(nodeName);
      return node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    },
    15_000,
  );
  const node = await clients.nodes.get(nodeName);
  assert.is(node?.spec.probeAddress, '192.0.2.11');
  assert.is(node?.spec.probePort, 9610);
  assert.is(node?.spec.iface, 'eth0');
  const first = node?.status?.renewTime ?? '';
  assert.match(first, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,6}Z$/);
  assert.equal((node?.status?.conditions ?? []).map((c) => c.type).sort(), ['Draining', 'Fenced', 'Ready', 'StrictARPMissing']);
  await waitFor('a newer heartbeat', async () => ((await clients.nodes.get(nodeName))?.status?.renewTime ?? '') > first, 6000);

  const probe = await agent!.get('/healthz', { 'x-ipcontroller-probe': 'test-scheduler' });
  assert.is(probe.status, 200);
  assert.equal(JSON.parse(probe.body), { ok: true, node: nodeName, draining: false });
  const metrics = await agent!.get('/metrics');
  assert.match(metrics.body, /ipcontroller_agent_probes_total 1\b/);
});

test('a claim for this node: address on eth0, gratuitous ARP on the wire, client neighbour entry follows, status Assigned', async () => {
  const ip = '192.0.2.50';
  // The client already has a (wrong) entry, as if the address lived elsewhere before.
  await lab.exec(clientNs, ['ip', 'neigh', 'replace', ip, 'lladdr', FAKE_MAC, 'dev', 'eth0', 'nud', 'stale']);
  const since = Date.now();
  const name = await createClaim(`${ip}/32`);
  await waitFor(`${ip} on eth0`, () => has(ip), 10_000, 50);
  const mine = (await addresses()).find((a) => a.local === ip);
  assert.is(mine?.metric, 4242, 'the agent marks its own addresses');

  const fromAgent =
    (op: string) => (f: { time: number; srcMac: string; arp?: { op: unknown; senderIp: string; targetIp: string; senderMac: string } }) =>
      f.time >= since - 1000 &&
      f.srcMac === NODE_MAC &&
      f.arp?.op === op &&
      f.arp.senderIp === ip &&
      f.arp.targetIp === ip &&
      f.arp.senderMac === NODE_MAC;
  const request = await capture.waitFor('GARP request', fromAgent('request'), 5000);
  const reply = await capture.waitFor('GARP reply', fromAgent('reply'), 5000);
  assert.is(request.dstMac, 'ff:ff:ff:ff:ff:ff');
  assert.is(reply.dstMac, 'ff:ff:ff:ff:ff:ff');

  // Linux ignores a GARP within 1 s (locktime) of the entry's last update; the 1.1 s repeat lands.
  await waitFor('client neighbour entry -> agent MAC', async () => (await neighbour(lab, clientNs, ip))?.mac === NODE_MAC, 5000, 100);
  const ping = await lab.exec(clientNs, ['ping', '-c', '1', '-W', '2', ip]);
  assert.is(ping.code, 0, ping.stdout + ping.stderr);

  await waitFor(
    'claim status Assigned',
    async () => {
      const c = await clients.claims.get(name);
      return c?.status?.phase === 'Assigned' && c.status.node === nodeName;
    },
    10_000,
  );
  const c = await clients.claims.get(name);
  assert.is(c?.status?.conditions?.[0]?.type, 'Announced');
  assert.is(c?.status?.conditions?.[0]?.status, 'True');
  await waitFor(
    'IpNode lists the address',
    async () => ((await clients.nodes.get(nodeName))?.status?.addresses ?? []).includes(`${ip}/32`),
    6000,
  );
  const later = Date.now();
  await waitFor('repeated announcements', async () => capture.frames.filter(fromAgent('request')).length >= 3, 5000, 100);
  assert.ok(Date.now() - later < 5000);
  await deleteClaim(name);
  await waitFor(`${ip} gone after the claim is deleted`, async () => !(await has(ip)), 10_000, 50);
});

test('the claim moves to another node: address gone; an address added by hand stays', async () => {
  await lab.exec(nodeNs, ['ip', 'addr', 'add', '192.0.2.77/32', 'dev', 'eth0']);
  const name = await createClaim('192.0.2.51/32');
  await waitFor('192.0.2.51 on eth0', () => has('192.0.2.51'), 10_000, 50);
  await clients.claims.patch(name, { spec: { nodeName: 'somewhere-else' } });
  await waitFor('192.0.2.51 gone', async () => !(await has('192.0.2.51')), 10_000, 50);
  assert.ok(await has('192.0.2.77'), 'hand-added address untouched');
  // A claim for the hand-added address: served as it is, and still not removed when it goes.
  const hand = await createClaim('192.0.2.77/32');
  await waitFor(
    'claim for the hand-added address Assigned',
    async () => (await clients.claims.get(hand))?.status?.phase === 'Assigned',
    10_000,
  );
  await deleteClaim(hand);
  await deleteClaim(name);
  await agentReconciled();
  assert.ok(await has('192.0.2.77'), 'hand-added address survives its claim');
});

/** Waits until the agent has finished work for everything so far (IpNode address list settles). */
async function agentReconciled(): Promise<void> {
  const held = async (): Promise<string[]> => (await clients.nodes.get(nodeName))?.status?.addresses ?? [];
  const want = (await addresses())
    .filter((a) => a.metric === 4242)
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
  await waitFor(
    'IpNode addresses match the interface',
    async () => JSON.stringify((await held()).slice().sort()) === JSON.stringify(want),
    6000,
  );
}

test('an address deleted by an operator is put back at once, with a log line', async () => {
  const name = await createClaim('192.0.2.52/32');
  await waitFor('192.0.2.52 on eth0', () => has('192.0.2.52'), 10_000, 50);
  await lab.exec(nodeNs, ['ip', 'addr', 'del', '192.0.2.52/32', 'dev', 'eth0']);
  const deleted = Date.now();
  await waitFor('192.0.2.52 back', () => has('192.0.2.52'), 3000, 20);
  assert.ok(Date.now() - deleted < 2000, 'put back well before a resync');
  await waitFor(
    'log line',
    async () => readFileSync(agent!.proc.logFile, 'utf8').includes('removed from the interface by someone else'),
    3000,
  );
  await deleteClaim(name);
  await waitFor('192.0.2.52 gone', async () => !(await has('192.0.2.52')), 10_000, 50);
});

test('bad input: a claim for a missing interface is Failed with the reason; other claims still work', async () => {
  const bad = await createClaim('192.0.2.53/32', { link: 'nosuch0' });
  const good = await createClaim('192.0.2.54/32');
  await waitFor('bad claim Failed', async () => (await clients.claims.get(bad))?.status?.phase === 'Failed', 10_000);
  const c = await clients.claims.get(bad);
  assert.is(c?.status?.conditions?.[0]?.reason, 'InterfaceNotFound');
  assert.match(c?.status?.conditions?.[0]?.message ?? '', /nosuch0/);
  await waitFor('good claim up', () => has('192.0.2.54'), 10_000, 50);
  assert.not.ok(await has('192.0.2.53'));
  assert.is(agent!.proc.child.exitCode, null, 'agent still running');
  await deleteClaim(bad);
  await deleteClaim(good);
  await waitFor('192.0.2.54 gone', async () => !(await has('192.0.2.54')), 10_000, 50);
});

test('IPv6: address added without DAD, unsolicited NA with Override to ff02::1, client entry follows', async () => {
  const ip = '2001:db8:a::50';
  await lab.exec(clientNs, ['ip', '-6', 'neigh', 'replace', ip, 'lladdr', FAKE_MAC, 'dev', 'eth0', 'nud', 'stale']);
  const since = Date.now();
  const name = await createClaim(`${ip}/128`);
  await waitFor(`${ip} on eth0`, () => has(ip), 10_000, 50);
  const a = (await addresses()).find((x) => x.local === ip);
  assert.not.ok(a?.tentative, 'no DAD wait');
  assert.is(a?.metric, 4242);
  const na = await capture.waitFor('unsolicited NA', (f) => f.time >= since - 1000 && f.na?.target === ip, 5000);
  assert.is(na.srcMac, NODE_MAC);
  assert.is(na.dstMac, '33:33:00:00:00:01');
  assert.is(na.na?.destination, 'ff02::1');
  assert.is(na.na?.hopLimit, 255);
  assert.ok(na.na?.override);
  assert.not.ok(na.na?.solicited);
  assert.is(na.na?.targetMac, NODE_MAC);
  await waitFor('client IPv6 neighbour entry -> agent MAC', async () => (await neighbour(lab, clientNs, ip))?.mac === NODE_MAC, 5000, 100);
  const ping = await lab.exec(clientNs, ['ping', '-6', '-c', '1', '-W', '2', ip]);
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  await waitFor('claim Assigned', async () => (await clients.claims.get(name))?.status?.phase === 'Assigned', 10_000);
  await clients.claims.patch(name, { spec: { nodeName: 'somewhere-else' } });
  await waitFor(`${ip} gone`, async () => !(await has(ip)), 10_000, 50);
  await deleteClaim(name);
});

test('agent restart: kept addresses once, stale ones of its own removed, hand-added untouched', async () => {
  const keep = await createClaim('192.0.2.60/32');
  const stale = await createClaim('192.0.2.61/32');
  const keep6 = await createClaim('2001:db8:a::60/128');
  await waitFor(
    'three addresses up',
    async () => (await has('192.0.2.60')) && (await has('192.0.2.61')) && (await has('2001:db8:a::60')),
    10_000,
    50,
  );
  agent!.proc.signal('SIGKILL'); // a crash: addresses stay
  await agent!.proc.exited;
  await deleteClaim(stale); // goes away while no agent runs
  assert.ok(await has('192.0.2.61'), 'still there while the agent is down');
  await startAgent().ready();
  await waitFor('stale address removed after restart', async () => !(await has('192.0.2.61')), 10_000, 50);
  const all = await addresses();
  assert.is(all.filter((a) => a.local === '192.0.2.60').length, 1);
  assert.is(all.filter((a) => a.local === '2001:db8:a::60').length, 1);
  assert.ok(
    all.some((a) => a.local === '192.0.2.77'),
    'hand-added address untouched',
  );
  assert.ok(
    all.some((a) => a.local === '192.0.2.11'),
    'node address untouched',
  );
  await deleteClaim(keep);
  await deleteClaim(keep6);
  await waitFor('claims gone -> addresses gone', async () => !(await has('192.0.2.60')) && !(await has('2001:db8:a::60')), 10_000, 50);
});

test('kube-ipvs0 holding a claimed IP with strict ARP off: warning log, metric, IpNode condition; cleared when strict', async () => {
  await lab.exec(nodeNs, ['ip', 'link', 'add', 'kube-ipvs0', 'type', 'veth', 'peer', 'name', 'kipvs-peer']);
  await lab.exec(nodeNs, ['ip', 'addr', 'add', '192.0.2.90/32', 'dev', 'kube-ipvs0']);
  const name = await createClaim('192.0.2.90/32');
  const condition = async (): Promise<string | undefined> =>
    (await clients.nodes.get(nodeName))?.status?.conditions?.find((c) => c.type === 'StrictARPMissing')?.status;
  try {
    await waitFor('StrictARPMissing=True', async () => (await condition()) === 'True', 10_000);
    assert.match((await agent!.get('/metrics')).body, /ipcontroller_agent_strict_arp_missing 1/);
    assert.ok(readFileSync(agent!.proc.logFile, 'utf8').includes('strictARP: true'));
    await lab.sysctl(nodeNs, { 'net.ipv4.conf.all.arp_ignore': 1, 'net.ipv4.conf.all.arp_announce': 2 });
    await clients.claims.patch(name, { metadata: { labels: { touched: 'yes' } } }); // any change runs a reconcile
    await waitFor('StrictARPMissing=False', async () => (await condition()) === 'False', 10_000);
  } finally {
    await deleteClaim(name);
    await lab.exec(nodeNs, ['ip', 'link', 'del', 'kube-ipvs0']);
    await lab.sysctl(nodeNs, { 'net.ipv4.conf.all.arp_ignore': 0, 'net.ipv4.conf.all.arp_announce': 0 });
  }
});

test('fencing: cut off from the API and not probed -> addresses withdrawn; probed -> kept; API back -> restored', async () => {
  const name = await createClaim('192.0.2.80/32');
  await waitFor('192.0.2.80 up', () => has('192.0.2.80'), 10_000, 50);
  forwarder.pause(nodeNs);
  try {
    // Probed every 200 ms (as the scheduler does) for 5 s: keeps the address through the outage.
    const probedUntil = Date.now() + 5000;
    while (Date.now() < probedUntil) {
      await agent!.get('/healthz', { 'x-ipcontroller-probe': 'test-scheduler' });
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(await has('192.0.2.80'), 'kept while probed');
    // No probes: withdrawn within --fence-after (3 s) and a check interval.
    const stopped = Date.now();
    await waitFor('address withdrawn', async () => !(await has('192.0.2.80')), 6000, 50);
    assert.ok(Date.now() - stopped >= 2500, 'not before --fence-after');
    assert.match((await agent!.get('/metrics')).body, /ipcontroller_agent_fenced 1/);
    assert.is((await agent!.get('/readyz')).status, 503);
  } finally {
    forwarder.resume(nodeNs);
  }
  await waitFor('address restored once the API answers', () => has('192.0.2.80'), 15_000, 50);
  await waitFor(
    'Fenced=False again',
    async () => {
      const n = await clients.nodes.get(nodeName);
      return n?.status?.conditions?.some((c) => c.type === 'Fenced' && c.status === 'False') === true;
    },
    10_000,
  );
  await deleteClaim(name);
  await waitFor('192.0.2.80 gone', async () => !(await has('192.0.2.80')), 10_000, 50);
});

test('SIGTERM: reports Draining, waits for the claim to move, removes the address and exits 0', async () => {
  const name = await createClaim('192.0.2.70/32');
  await waitFor('192.0.2.70 up', () => has('192.0.2.70'), 10_000, 50);
  agent!.proc.signal('SIGTERM');
  await waitFor(
    'IpNode Draining=True',
    async () => {
      const n = await clients.nodes.get(nodeName);
      return n?.status?.conditions?.some((c) => c.type === 'Draining' && c.status === 'True') === true;
    },
    5000,
    50,
  );
  const probe = await agent!.get('/healthz', { 'x-ipcontroller-probe': 'test-scheduler' });
  assert.equal(JSON.parse(probe.body), { ok: true, node: nodeName, draining: true });
  assert.ok(await has('192.0.2.70'), 'address kept until the claim moves');
  await clients.claims.patch(name, { spec: { nodeName: 'somewhere-else' } }); // what the scheduler does
  // Make-before-break: the address stays until the new node's agent confirms it.
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(await has('192.0.2.70'), 'kept until the new node confirms');
  await clients.claims.patchStatus(name, { status: { phase: 'Assigned', node: 'somewhere-else' } }); // what the new agent does
  const code = await Promise.race([agent!.proc.exited, new Promise((r) => setTimeout(() => r('timeout'), 4000))]);
  assert.is(code, 0, 'exits 0 well before --drain-timeout');
  assert.not.ok(await has('192.0.2.70'));
  assert.ok(await has('192.0.2.77'), 'hand-added address untouched');
  await deleteClaim(name);
});

void (() => nodePort);
test.run();
