// The RBAC rules of examples/auth.yaml hold on a real apiserver with RBAC on: each program's
// ServiceAccount (token from the TokenRequest API) is refused what it must not do. That the
// same accounts can do their whole job is shown by the e2e lab, which runs every scenario
// with agents and schedulers authenticated as these accounts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { ApiException, CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ipClients } from '../../api/client.js';
import { API_VERSION } from '../../api/types.js';
import { AGENT_ACCOUNT, SCHEDULER_ACCOUNT, serviceAccountToken } from '../e2e/twonode.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';

let cluster: TestCluster;
let agent: KubeConfig;
let scheduler: KubeConfig;

function asToken(admin: KubeConfig, token: string): KubeConfig {
  const kc = new KubeConfig();
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no cluster');
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'sa', token }],
    contexts: [{ name: 'sa', cluster: cluster.name, user: 'sa' }],
    currentContext: 'sa',
  });
  return kc;
}

async function status(call: () => Promise<unknown>): Promise<number> {
  try {
    await call();
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

test.before(async () => {
  cluster = await testCluster();
  const applied = await cluster.kubectl(['apply', '-f', fileURLToPath(new URL('../../examples/auth.yaml', import.meta.url))]);
  assert.is(applied.code, 0, applied.stderr);
  const admin = cluster.kubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  agent = asToken(admin, await serviceAccountToken(core, AGENT_ACCOUNT));
  scheduler = asToken(admin, await serviceAccountToken(core, SCHEDULER_ACCOUNT));
});
test.after(async () => {
  await cluster?.release();
});

test('the agent reads claims but cannot create them, touch Services or pools, or read Secrets', async () => {
  const core = agent.makeApiClient(CoreV1Api);
  const ip = ipClients(agent);
  assert.is(await status(() => ip.claims.list()), 200);
  assert.is(await status(() => core.listSecretForAllNamespaces()), 403);
  assert.is(await status(() => core.listNamespacedService({ namespace: 'default' })), 403);
  assert.is(await status(() => core.patchNamespacedServiceStatus({ name: 'kubernetes', namespace: 'default', body: [] })), 403);
  assert.is(await status(() => ip.pools.list()), 403);
  assert.is(await status(() => ip.pools.patchStatus('any', { status: { used: 0 } })), 403);
  assert.is(
    await status(() => ip.claims.create({ apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name: '192-0-2-99-32' }, spec: { cidr: '192.0.2.99/32' } })),
    403,
  );
  assert.is(await status(() => ip.claims.delete('192-0-2-99-32')), 403);
});

test('the scheduler cannot read Secrets, write IpNodes, or take Leases outside its namespace', async () => {
  const core = scheduler.makeApiClient(CoreV1Api);
  const coordination = scheduler.makeApiClient(CoordinationV1Api);
  const ip = ipClients(scheduler);
  assert.is(await status(() => core.listNamespacedService({ namespace: 'default' })), 200);
  assert.is(await status(() => core.listSecretForAllNamespaces()), 403);
  assert.is(await status(() => core.readNamespacedSecret({ name: 'x', namespace: 'default' })), 403);
  assert.is(await status(() => ip.nodes.list()), 200);
  assert.is(
    await status(() => ip.nodes.create({ apiVersion: API_VERSION, kind: 'IpNode', metadata: { name: 'forged' }, spec: { probeAddress: '192.0.2.1', probePort: 1 } })),
    403,
  );
  const lease = (namespace: string) => ({
    namespace,
    body: { metadata: { name: uniqueName('lease') }, spec: { holderIdentity: 'x', leaseDurationSeconds: 4 } },
  });
  assert.is(await status(() => coordination.createNamespacedLease(lease('kube-system'))), 403);
  assert.is(await status(() => coordination.createNamespacedLease(lease('ipcontroller-system'))), 200);
  assert.is(await status(() => core.deleteNamespacedService({ name: 'kubernetes', namespace: 'default' })), 403);
  // Pools: it may patch one (its finalizer) but not create or delete pools.
  const admin = ipClients(cluster.kubeConfig());
  const pool = uniqueName('rbac-pool');
  await admin.pools.create({ apiVersion: API_VERSION, kind: 'IpClaimPool', metadata: { name: pool }, spec: { cidr: '198.51.100.0/30' } });
  try {
    assert.is(await status(() => ip.pools.patch(pool, { metadata: { finalizers: ['ipcontroller.ext/pool-protection'] } })), 200);
    assert.is(await status(() => ip.pools.patch(pool, { metadata: { finalizers: null } })), 200);
    assert.is(await status(() => ip.pools.delete(pool)), 403);
    assert.is(await status(() => ip.pools.create({ apiVersion: API_VERSION, kind: 'IpClaimPool', metadata: { name: uniqueName('forged') }, spec: { cidr: '192.0.2.0/24' } })), 403);
  } finally {
    await admin.pools.delete(pool);
  }
  assert.is(await status(() => core.createNamespacedService({ namespace: 'default', body: { metadata: { name: uniqueName('svc') }, spec: { ports: [{ port: 80 }] } } })), 403);
});

test.run();
