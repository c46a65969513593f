// Every manifest users apply from examples/ is accepted by a real apiserver (server-side dry
// run, so admission and schema validation run for real).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { testCluster, type TestCluster } from '../support/cluster.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));
let cluster: TestCluster;

test.before(async () => {
  cluster = await testCluster();
  // auth.yaml creates the namespace the workloads live in, so it is applied for real.
  const auth = await cluster.kubectl(['apply', '-f', join(examples, 'auth.yaml')]);
  assert.is(auth.code, 0, auth.stderr);
});
test.after(async () => {
  await cluster.release();
});

const manifests = [
  'crds.yaml',
  'auth.yaml',
  'ip-pool.yml',
  'nginx.yaml',
  ...readdirSync(join(examples, 'claims')).map((f) => join('claims', f)),
];

for (const manifest of manifests) {
  test(`examples/${manifest} passes server-side dry run`, async () => {
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-f', join(examples, manifest)]);
    assert.is(out.code, 0, out.stderr);
    assert.match(out.stdout, /\(server dry run\)/);
  });
}

test('the agent DaemonSet adds only NET_ADMIN and NET_RAW and is not privileged', async () => {
  const out = await cluster.kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', join(examples, 'claims', 'controller.yaml')]);
  assert.is(out.code, 0, out.stderr);
  const ds = JSON.parse(out.stdout) as {
    spec: { template: { spec: { hostNetwork: boolean; nodeSelector: Record<string, string>; containers: { securityContext: { privileged?: boolean; capabilities: { add: string[]; drop: string[] } } }[] } } };
  };
  const pod = ds.spec.template.spec;
  assert.is(pod.hostNetwork, true);
  assert.equal(pod.nodeSelector, { ipcontroller: '' });
  const sc = pod.containers[0]?.securityContext;
  assert.equal(sc?.capabilities.add.sort(), ['NET_ADMIN', 'NET_RAW']);
  assert.equal(sc?.capabilities.drop, ['ALL']);
  assert.is(sc?.privileged, false);
});

test.run();
