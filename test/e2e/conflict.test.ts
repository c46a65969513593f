// Issue 12 end to end: the two-node lab (real agents, two scheduler replicas, real apiserver)
// plus a foreign host, a namespace on the same bridge that runs no agent and holds a pool
// address statically, as a printer or a forgotten static server would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { API_VERSION } from '../../api/types.js';
import { claimName } from '../../api/names.js';
import { waitFor } from '../controlplane/harness.js';
import { testCluster, type TestCluster } from '../support/cluster.js';
import { startTwoNodeLab, type TwoNodeLab } from './twonode.js';

const FOREIGN_MAC = '02:00:00:00:00:66';
const POOL = 'conflict-pool';
const TAKEN = '192.0.2.201';
const NEXT = '192.0.2.202';
let cluster: TestCluster;
let lab: TwoNodeLab;
const log = (message: string): void => void process.stderr.write(`  e2e conflict: ${message}\n`);

test.before(async () => {
  try {
    cluster = await testCluster();
    lab = await startTwoNodeLab({ kubeconfigPath: cluster.kubeconfigPath });
    const foreign = await lab.lab.addNamespace('fx');
    await lab.lab.attach(foreign, { ifname: 'eth0', mac: FOREIGN_MAC, addresses: [`${TAKEN}/24`] });
    await lab.ip.pools.create({
      apiVersion: API_VERSION,
      kind: 'IpClaimPool',
      metadata: { name: POOL },
      spec: { cidr: '192.0.2.200/29', ranges: [['192.0.2.201', '192.0.2.206']] },
    });
  } catch (err) {
    console.error('the e2e conflict lab did not start:', err);
    throw err;
  }
});
test.after(async () => {
  for (const name of ['conflict-auto', 'conflict-requested'])
    await lab?.core.deleteNamespacedService({ name, namespace: 'default' }).catch(() => undefined);
  // Let the scheduler delete their claims before the lab goes, so none is left on node-1 / node-2
  // for the next scenario file (it reuses the node names and counts claims per node).
  await waitFor(
    'the scheduler deleted the claims of this file',
    async () => {
      const left = (await lab.ip.claims.list()).items.filter((c) => (c.spec.services ?? []).some((s) => s.startsWith('default/conflict-')));
      return left.length === 0;
    },
    15_000,
    100,
  ).catch((err: unknown) => console.error(String(err)));
  await lab?.ip.pools.delete(POOL).catch(() => undefined);
  await lab?.destroy();
  await cluster?.release();
});

async function events(name: string): Promise<Array<{ reason?: string; message?: string }>> {
  return (await lab.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${name}` })).items;
}

test("a Service that would get the foreign host's address gets the next one, with an Event, and the client reaches it there", async () => {
  const start = Date.now();
  await lab.core.createNamespacedService({
    namespace: 'default',
    body: {
      metadata: { name: 'conflict-auto', annotations: { 'ipcontroller.ext/pool': POOL } },
      spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 80 }] },
    },
  });
  await waitFor(
    `ingress moves to ${NEXT}`,
    async () => {
      const svc = await lab.core.readNamespacedService({ name: 'conflict-auto', namespace: 'default' });
      return svc.status?.loadBalancer?.ingress?.[0]?.ip === NEXT;
    },
    20_000,
    50,
  );
  const node = await lab.servingNode(NEXT);
  await waitFor(`client reaches ${NEXT}`, async () => (await lab.clientGet(NEXT, 1)).ok, 10_000, 20);
  log(`Service create -> first answer on ${NEXT} after the conflict on ${TAKEN}: ${Date.now() - start} ms (node ${node})`);
  // A pass's Events are sent when it ends, after its ingress write: the agent can serve NEXT before that.
  const isConflict = (e: { reason?: string }): boolean => e.reason === 'AddressConflict';
  await waitFor('the AddressConflict Event', async () => (await events('conflict-auto')).some(isConflict), 10_000);
  const conflictEvent = (await events('conflict-auto')).find(isConflict);
  assert.ok(conflictEvent, 'a Warning AddressConflict Event');
  assert.match(conflictEvent?.message ?? '', FOREIGN_MAC);
  const pool = await lab.ip.pools.get(POOL);
  const excluded = pool?.status?.excluded?.find((e) => e.address === TAKEN);
  assert.is(excluded?.reason, 'AddressConflict');
  assert.ok(excluded?.seenAt, 'when it was seen');
  assert.match(excluded?.message ?? '', FOREIGN_MAC);
  assert.equal(await lab.holders(TAKEN), [], 'no node of ours put the foreign address up');
  const r = await lab.clientGet(TAKEN, 1);
  assert.not.ok(r.ok && ['node-1', 'node-2'].includes(r.body), 'the foreign host keeps its address');
});

test('a requested conflicting address stays pending with the reason', async () => {
  await lab.core.createNamespacedService({
    namespace: 'default',
    body: {
      metadata: { name: 'conflict-requested', annotations: { 'ipcontroller.ext/loadBalancerIPs': TAKEN } },
      spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 80 }] },
    },
  });
  await waitFor(
    'AllocationFailed AddressConflict',
    async () =>
      (await events('conflict-requested')).some(
        (e) => e.reason === 'AllocationFailed' && /AddressConflict: requested address 192\.0\.2\.201/.test(e.message ?? ''),
      ),
    20_000,
    100,
  );
  const svc = await lab.core.readNamespacedService({ name: 'conflict-requested', namespace: 'default' });
  assert.equal(svc.status?.loadBalancer?.ingress ?? [], []);
  assert.is(await lab.ip.claims.get(claimName(TAKEN)), null);
});

test.run();
