// The custom resources as a user meets them: installed and Established on a real apiserver,
// printed by kubectl with the promised columns, guarded by schema validation at admission,
// and usable through @kubernetes/client-node (create, watch, delete).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Watch } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { claimName } from '../../api/names.js';
import { API_VERSION, type IpClaim, type IpClaimPool } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';

let cluster: TestCluster;
let clients: IpClients;

test.before(async () => {
  cluster = await testCluster();
  clients = ipClients(cluster.kubeConfig());
});
test.after(async () => {
  await cluster?.release();
});

function claim(cidr: string, extra: Partial<IpClaim['spec']> = {}): IpClaim {
  return { apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name: claimName(cidr) }, spec: { cidr, ...extra } };
}

test('the three CRDs are Established', async () => {
  for (const crd of ['ipclaims', 'ipnodes', 'ipclaimpools']) {
    const got = await cluster.kubectl([
      'get',
      'crd',
      `${crd}.ipcontroller.ext`,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Established")].status}',
    ]);
    assert.is(got.stdout, 'True', `${crd}: ${got.stderr}`);
  }
});

test('kubectl get ipclaims shows IP, NODE, SERVICE(S) as text and AGE', async () => {
  const c = claim('192.0.2.201/32', { nodeName: 'node-a', services: ['default/web', 'shop/front'] });
  await clients.claims.create(c);
  try {
    // What the agent writes with its status (agent/status.ts): the Service list as text.
    await clients.claims.patchStatus(c.metadata.name ?? '', {
      status: { phase: 'Assigned', node: 'node-a', serviceList: 'default/web, shop/front' },
    });
    const out = await cluster.kubectl(['get', 'ipclaims', c.metadata.name ?? '']);
    assert.is(out.code, 0, out.stderr);
    const [header, row] = out.stdout.trim().split('\n');
    assert.match(header ?? '', /^NAME\s+IP\s+NODE\s+SERVICE\(S\)\s+PHASE\s+AGE$/);
    assert.match(row ?? '', /^192-0-2-201-32\s+192\.0\.2\.201\/32\s+node-a\s+default\/web, shop\/front\s+Assigned\s+/);
  } finally {
    await clients.claims.delete(c.metadata.name ?? '');
  }
});

test('every field of the three CRDs has a description; kubectl explain says what ranges are', async () => {
  const crds = await cluster.kubectl([
    'get',
    'crd',
    'ipclaims.ipcontroller.ext',
    'ipnodes.ipcontroller.ext',
    'ipclaimpools.ipcontroller.ext',
    '-o',
    'json',
  ]);
  assert.is(crds.code, 0, crds.stderr);
  type Schema = {
    type?: string;
    description?: string;
    properties?: Record<string, Schema>;
    items?: Schema;
    additionalProperties?: Schema | boolean;
  };
  const missing: string[] = [];
  const walk = (s: Schema, path: string): void => {
    // metadata is the one field the apiserver forbids describing (it is ObjectMeta's own schema).
    if (!s.description && !path.endsWith('.metadata')) missing.push(path);
    for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${path}.${k}`);
    if (s.items) walk(s.items, `${path}[]`);
    if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${path}{}`);
  };
  const list = JSON.parse(crds.stdout) as {
    items: Array<{ spec: { names: { kind: string }; versions: Array<{ schema: { openAPIV3Schema: Schema } }> } }>;
  };
  for (const crd of list.items) walk(crd.spec.versions[0]?.schema.openAPIV3Schema ?? {}, crd.spec.names.kind);
  assert.equal(missing, []);
  let explained = '';
  await waitFor(
    'kubectl explain serves the published schema',
    async () => {
      const out = await cluster.kubectl(['explain', 'ipclaimpool.spec.ranges']);
      explained = out.stdout.replace(/\s+/g, ' '); // kubectl wraps long descriptions
      return out.code === 0 && /inclusive \[first, last\]/.test(explained);
    },
    30_000,
    500,
  );
  assert.match(explained, /outside cidr, of the other family or backwards makes the pool invalid/);
});

test('kubectl get ipnodes shows the probe round trip and the claims held', async () => {
  const name = uniqueName('node');
  await clients.nodes.create({
    apiVersion: API_VERSION,
    kind: 'IpNode',
    metadata: { name },
    spec: { probeAddress: '192.0.2.1', probePort: 9610 },
  });
  try {
    const now = new Date().toISOString();
    await clients.nodes.patchStatus(name, {
      status: {
        renewTime: now,
        claimsHeld: 3,
        probe: { by: 's', observedAt: now, rttMs: 0.42, consecutiveFailures: 0, failureThreshold: 3, monitorMs: 4000, draining: false },
      },
    });
    const out = await cluster.kubectl(['get', 'ipnodes', name]);
    assert.is(out.code, 0, out.stderr);
    const [header, row] = out.stdout.trim().split('\n');
    assert.match(header ?? '', /^NAME\s+READY\s+PROBE\s+RTT\(MS\)\s+CLAIMS\s+IFACE\s+HEARTBEAT\s+AGE$/);
    assert.match(row ?? '', new RegExp(`^${name}\\s.*192\\.0\\.2\\.1\\s+0\\.42\\s+3\\s+`));
  } finally {
    await clients.nodes.delete(name);
  }
});

test('kubectl get ipclaimpools shows CIDR, USED, FREE and the EXCLUDED addresses', async () => {
  const name = uniqueName('pool');
  const pool: IpClaimPool = { apiVersion: API_VERSION, kind: 'IpClaimPool', metadata: { name }, spec: { cidr: '198.51.100.0/24' } };
  await clients.pools.create(pool);
  try {
    const excluded = [
      { address: '198.51.100.5', reason: 'NodeAddress', message: 'InternalIP of Node n1' },
      {
        address: '198.51.100.9',
        reason: 'AddressConflict',
        message: '198.51.100.9 is answered by 02:00:5e:00:53:99',
        seenAt: new Date().toISOString(),
      },
    ];
    await clients.pools.patchStatus(name, { status: { used: 3, free: 249, allocations: {}, excluded, excludedCount: 2 } });
    const out = await cluster.kubectl(['get', 'ipclaimpools', name]);
    assert.is(out.code, 0, out.stderr);
    const [header, row] = out.stdout.trim().split('\n');
    assert.match(header ?? '', /^NAME\s+CIDR\s+USED\s+FREE\s+EXCLUDED\s+AGE$/);
    assert.match(row ?? '', new RegExp(`^${name}\\s+198\\.51\\.100\\.0/24\\s+3\\s+249\\s+2\\s+`));
    assert.equal((await clients.pools.get(name))?.status?.excluded, excluded, 'the schema keeps every field');
  } finally {
    await clients.pools.delete(name);
  }
});

test('a pool whose cidr is not an IP prefix is rejected at admission with a clear message', async () => {
  const name = uniqueName('badpool');
  const manifest = JSON.stringify({ apiVersion: API_VERSION, kind: 'IpClaimPool', metadata: { name }, spec: { cidr: '192.0.2.300/24' } });
  const out = await applyJson(manifest);
  assert.is.not(out.code, 0);
  assert.match(out.stderr, /spec\.cidr: Invalid value.*cidr must be an IP prefix, such as 192\.0\.2\.0\/24/);
  const range = JSON.stringify({
    apiVersion: API_VERSION,
    kind: 'IpClaimPool',
    metadata: { name },
    spec: { cidr: '192.0.2.0/24', ranges: [['192.0.2.1', 'nope']] },
  });
  const rangeOut = await applyJson(range);
  assert.is.not(rangeOut.code, 0);
  assert.match(rangeOut.stderr, /each end of a range must be an IP address/);
  assert.is(await clients.pools.get(name), null);
});

test('a claim without cidr is rejected at admission', async () => {
  const manifest = JSON.stringify({
    apiVersion: API_VERSION,
    kind: 'IpClaim',
    metadata: { name: uniqueName('nocidr') },
    spec: { nodeName: 'node-a' },
  });
  const out = await applyJson(manifest);
  assert.is.not(out.code, 0);
  assert.match(out.stderr, /spec\.cidr: Required value/);
});

test('IPv6 claims are accepted under their derived name', async () => {
  const c = claim('2001:db8::a/128');
  const created = await clients.claims.create(c);
  try {
    assert.is(created.metadata.name, '2001-db8--a-128');
    assert.is(created.spec.cidr, '2001:db8::a/128');
  } finally {
    await clients.claims.delete(created.metadata.name ?? '');
  }
});

test('create, watch and delete of an IpClaim round-trip through client-node', async () => {
  const c = claim('203.0.113.77/32', { nodeName: 'node-b', services: ['default/watched'] });
  const seen: string[] = [];
  const watch = new Watch(cluster.kubeConfig());
  const request = await watch.watch(
    clients.claims.watchPath,
    { fieldSelector: `metadata.name=${c.metadata.name}` },
    (phase, obj: IpClaim) => seen.push(`${phase} ${obj.spec.cidr} ${obj.spec.nodeName ?? ''} ${obj.status?.phase ?? ''}`),
    () => {},
  );
  try {
    await clients.claims.create(c);
    await clients.claims.patchStatus(c.metadata.name ?? '', { status: { phase: 'Assigned', node: 'node-b' } });
    const fetched = await clients.claims.get(c.metadata.name ?? '');
    assert.is(fetched?.status?.phase, 'Assigned');
    assert.ok(await clients.claims.delete(c.metadata.name ?? ''));
    assert.not.ok(await clients.claims.delete(c.metadata.name ?? ''), 'deleting twice reports it was gone');
    await waitFor('ADDED, MODIFIED and DELETED events', async () => seen.some((s) => s.startsWith('DELETED')), 10_000);
    assert.equal(seen, [
      'ADDED 203.0.113.77/32 node-b ',
      'MODIFIED 203.0.113.77/32 node-b Assigned',
      'DELETED 203.0.113.77/32 node-b Assigned',
    ]);
  } finally {
    request.abort();
  }
});

function applyJson(manifest: string) {
  return cluster.kubectl(['apply', '-f', '-'], manifest);
}

test.run();
