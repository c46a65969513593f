// Issue 12, the agent on the wire: `ipcontroller agent` in a node namespace on a bridge, a
// foreign host (a namespace that runs no agent) on the same bridge, and a capture in a client
// namespace. The test plays the scheduler (writes claims itself). Needs root.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CoreV1Api } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { API_VERSION, type IpClaim } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import {
  Lab,
  startAgentProcess,
  startApiForwarder,
  startCapture,
  type AgentProcess,
  type ApiForwarder,
  type Capture,
  type Netns,
} from '../lab/index.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';

const NODE_MAC = '02:00:5e:12:00:01';
const FOREIGN_MAC = '02:00:5e:12:00:66';
const CLIENT_MAC = '02:00:5e:12:00:99';

let cluster: TestCluster;
let clients: IpClients;
let lab: Lab;
let nodeNs: Netns;
let foreignNs: Netns;
let clientNs: Netns;
let forwarder: ApiForwarder;
let agent: AgentProcess | undefined;
let capture: Capture;
const nodeName = uniqueName('conflict-node');
const claims = new Set<string>();

async function has(ip: string): Promise<boolean> {
  const r = await lab.exec(nodeNs, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
  const links = JSON.parse(r.stdout || '[]') as { addr_info?: Array<{ local: string }> }[];
  return (links[0]?.addr_info ?? []).some((a) => a.local === ip);
}

async function createClaim(cidr: string, pool?: string): Promise<string> {
  const name = uniqueName('cfl');
  await clients.claims.create({
    apiVersion: API_VERSION,
    kind: 'IpClaim',
    metadata: { name },
    spec: { cidr, nodeName, ...(pool ? { pool } : {}) },
  });
  claims.add(name);
  return name;
}

const announced = async (name: string): Promise<IpClaim['status'] | undefined> => (await clients.claims.get(name))?.status;
const conflictOf = (status: IpClaim['status'] | undefined) =>
  status?.conditions?.find((c) => c.type === 'Announced' && c.reason === 'AddressConflict');

test.before(async () => {
  cluster = await testCluster();
  clients = ipClients(cluster.kubeConfig());
  lab = Lab.create();
  try {
    nodeNs = await lab.addNamespace('n1');
    foreignNs = await lab.addNamespace('fx');
    clientNs = await lab.addNamespace('cl');
    await lab.attach(nodeNs, { mac: NODE_MAC, addresses: ['192.0.2.11/24', '2001:db8:c::11/64'] });
    // The foreign host holds 192.0.2.70 and 2001:db8:c::70 statically, as a printer would.
    await lab.attach(foreignNs, { mac: FOREIGN_MAC, addresses: ['192.0.2.70/24', '2001:db8:c::70/64'] });
    await lab.attach(clientNs, { mac: CLIENT_MAC, addresses: ['192.0.2.100/24'] });
    forwarder = await startApiForwarder(lab, cluster.kubeconfigPath);
    await cluster
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNode({ body: { metadata: { name: nodeName, labels: { ipcontroller: '' } } } });
    capture = await startCapture(clientNs, 'eth0');
    agent = startAgentProcess(lab, nodeNs, {
      kubeconfig: await forwarder.kubeconfigFor(nodeNs),
      hostname: nodeName,
      iface: 'eth0',
      args: ['--drain-timeout', '2s', '--log-level', 'debug'],
    });
    await agent.ready();
  } catch (err) {
    await lab.destroy();
    throw err;
  }
});

test.after(async () => {
  try {
    await agent?.proc.stop();
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

test("the IpNode carries the agent's MAC", async () => {
  await waitFor('IpNode status.macs', async () => ((await clients.nodes.get(nodeName))?.status?.macs ?? []).includes(NODE_MAC), 10_000);
});

test('a new address a foreign host holds is not brought up: Failed, Announced=False AddressConflict naming its MAC, metric by pool', async () => {
  const since = Date.now();
  const name = await createClaim('192.0.2.70/32', 'lab-pool');
  await waitFor('claim Failed with AddressConflict', async () => conflictOf(await announced(name)) !== undefined, 10_000, 50);
  const status = await announced(name);
  assert.is(status?.phase, 'Failed');
  assert.is(conflictOf(status)?.status, 'False');
  assert.match(conflictOf(status)?.message ?? '', FOREIGN_MAC);
  assert.not.ok(await has('192.0.2.70'), 'never put on the interface');
  const isProbe = (f: (typeof capture.frames)[number]): boolean =>
    f.time >= since - 1000 &&
    f.srcMac === NODE_MAC &&
    f.arp?.op === 'request' &&
    f.arp.senderIp === '0.0.0.0' &&
    f.arp.targetIp === '192.0.2.70';
  // The frame reaches this process through tcpdump's pipe, apart from the status it waited for.
  await waitFor('the ARP probe in the capture', () => Promise.resolve(capture.frames.some(isProbe)), 5_000, 50);
  assert.ok(capture.frames.filter(isProbe).length >= 1, 'an ARP probe with sender 0.0.0.0 went out');
  assert.not.ok(
    capture.frames.some((f) => f.time >= since - 1000 && f.srcMac === NODE_MAC && f.arp?.senderIp === '192.0.2.70'),
    'no announcement for it',
  );
  const metrics = await agent!.get('/metrics');
  assert.match(metrics.body, /ipcontroller_agent_address_conflicts_total\{pool="lab-pool",when="probe"\} 1\b/);
});

test('IPv6: a DAD solicitation from :: is answered by the foreign host: AddressConflict', async () => {
  const name = await createClaim('2001:db8:c::70/128');
  await waitFor('claim Failed with AddressConflict', async () => conflictOf(await announced(name)) !== undefined, 10_000, 50);
  assert.match(conflictOf(await announced(name))?.message ?? '', FOREIGN_MAC);
  assert.not.ok(await has('2001:db8:c::70'));
});

test('a free new address goes up after the probe window, quickly', async () => {
  const t0 = Date.now();
  const name = await createClaim('192.0.2.71/32');
  await waitFor('192.0.2.71 on eth0', () => has('192.0.2.71'), 10_000, 10);
  const upMs = Date.now() - t0;
  await waitFor('claim Assigned', async () => (await announced(name))?.phase === 'Assigned', 10_000, 50);
  console.log(`claim created -> address up with probing (2 probes, 60 ms window): ${upMs} ms`);
  assert.ok(upMs < 3000, `${upMs} ms`);
});

test('a move from another of our nodes goes up without a probe', async () => {
  const name = uniqueName('cfl');
  // As the scheduler leaves it after a failover: status still says the old node had it up.
  await clients.claims.create({
    apiVersion: API_VERSION,
    kind: 'IpClaim',
    metadata: { name },
    spec: { cidr: '192.0.2.72/32', nodeName: 'old-node' },
  });
  claims.add(name);
  const c = await clients.claims.get(name);
  await clients.claims.patchStatus(name, {
    metadata: { resourceVersion: c?.metadata.resourceVersion ?? '' },
    status: {
      phase: 'Assigned',
      node: 'old-node',
      conditions: [
        { type: 'Announced', status: 'True', reason: 'AddressUp', message: 'up on old-node', lastTransitionTime: new Date().toISOString() },
      ],
    },
  });
  const since = Date.now();
  await clients.claims.patch(name, { spec: { nodeName } });
  await waitFor('192.0.2.72 on eth0', () => has('192.0.2.72'), 10_000, 10);
  assert.not.ok(
    capture.frames.some(
      (f) => f.time >= since - 50 && f.srcMac === NODE_MAC && f.arp?.senderIp === '0.0.0.0' && f.arp.targetIp === '192.0.2.72',
    ),
    'no probe for a move',
  );
});

test('a foreign host that takes an address we serve: defended once, then reported; we keep serving', async () => {
  const name = await createClaim('192.0.2.73/32');
  await waitFor(
    '192.0.2.73 up and Assigned',
    async () => (await has('192.0.2.73')) && (await announced(name))?.phase === 'Assigned',
    10_000,
    50,
  );
  const since = Date.now();
  // The foreign host is configured by hand after us and announces itself (bounded: 4 GARPs, 1 s apart).
  await lab.exec(foreignNs, ['ip', 'addr', 'add', '192.0.2.73/32', 'dev', 'eth0']);
  await lab.exec(foreignNs, ['arping', '-U', '-c', '4', '-w', '6', '-I', 'eth0', '192.0.2.73']);
  await waitFor('claim reports the conflict', async () => conflictOf(await announced(name)) !== undefined, 10_000, 50);
  const status = await announced(name);
  assert.is(status?.phase, 'Failed');
  assert.match(conflictOf(status)?.message ?? '', new RegExp(`claimed by ${FOREIGN_MAC}`));
  const defence = capture.frames.filter(
    (f) => f.time >= since && f.srcMac === NODE_MAC && f.arp?.senderIp === '192.0.2.73' && f.arp.targetIp === '192.0.2.73',
  );
  assert.ok(defence.length >= 1, 'a defence announcement went out');
  assert.ok(await has('192.0.2.73'), 'still serving (no --conflict-withdraw)');
  const metrics = await agent!.get('/metrics');
  assert.match(metrics.body, /ipcontroller_agent_address_conflicts_total\{pool="none",when="holding"\} 1\b/);
  assert.ok(readFileSync(agent!.proc.logFile, 'utf8').includes('defending an address we hold'));
  await lab.exec(foreignNs, ['ip', 'addr', 'del', '192.0.2.73/32', 'dev', 'eth0']);
});

test.run();
