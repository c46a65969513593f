// Every manifest users apply from examples/ is accepted by a real apiserver (server-side dry
// run, so admission and schema validation run for real).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
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
  await cluster?.release();
});

const manifests = [
  'crds.yaml',
  'auth.yaml',
  'agent-policy.yaml',
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

/** The helm binary: build-helm.sh returns the cached one at once (make get-deps built it). */
function helmBinary(): string {
  return (
    execFileSync('bash', [fileURLToPath(new URL('../controlplane/build-helm.sh', import.meta.url))], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop() ?? 'helm'
  );
}
const chart = join(examples, 'helm', 'ipcontroller');

test('the Helm chart renders and every object passes server-side dry run', async () => {
  const helm = helmBinary();
  const rendered = execFileSync(
    helm,
    [
      'template',
      'ipc',
      chart,
      '--namespace',
      'ipcontroller-system',
      '--include-crds',
      '--set',
      'pool.cidr=192.0.2.0/24',
      '--set',
      'agent.iface=eth1',
      '--set',
      'scheduler.rebalance=true',
    ],
    { encoding: 'utf8' },
  );
  const kinds = [...rendered.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]).sort();
  assert.equal(kinds, [
    'ClusterRole',
    'ClusterRole',
    'ClusterRoleBinding',
    'ClusterRoleBinding',
    'CustomResourceDefinition',
    'CustomResourceDefinition',
    'CustomResourceDefinition',
    'DaemonSet',
    'Deployment',
    'IpClaimPool',
    'Role',
    'RoleBinding',
    'ServiceAccount',
    'ServiceAccount',
    'ValidatingAdmissionPolicy',
    'ValidatingAdmissionPolicyBinding',
  ]);
  assert.match(rendered, /- --iface=eth1/);
  assert.match(rendered, /- --rebalance/);
  // The agent policy names the release's own agent account, and its binding the release's policy.
  assert.match(rendered, /expression: "request\.userInfo\.username == 'system:serviceaccount:ipcontroller-system:ipc-agent'"/);
  assert.match(rendered, /policyName: ipc-agent-own-node/);
  const without = execFileSync(
    helm,
    ['template', 'ipc', chart, '--namespace', 'ipcontroller-system', '--set', 'agent.ownNodePolicy=false'],
    { encoding: 'utf8' },
  );
  assert.not.match(without, /ValidatingAdmissionPolicy/);
  const out = await cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], rendered);
  assert.is(out.code, 0, out.stderr);
  assert.is(out.stdout.match(/\(server dry run\)/g)?.length, kinds.length);
});

interface PodPlacement {
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: { podAntiAffinity?: unknown; nodeAffinity?: unknown };
}

/** The scheduler Deployment's Pod placement as the chart renders it with these --set flags. */
function schedulerPlacement(set: string[]): { yaml: string; pod: PodPlacement } {
  const yaml = execFileSync(
    helmBinary(),
    ['template', 'ipc', chart, '--namespace', 'ipcontroller-system', '-s', 'templates/scheduler.yaml', ...set],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const deployment = parseAllDocuments(yaml)
    .map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: PodPlacement } } } | null)
    .find((d) => d?.kind === 'Deployment');
  return { yaml, pod: deployment?.spec?.template?.spec ?? {} };
}

test('the chart places the scheduler off agent nodes when it can, and takes nodeSelector, tolerations and affinity', async () => {
  const byDefault = schedulerPlacement([]).pod;
  assert.equal(byDefault.affinity?.nodeAffinity, {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 100, preference: { matchExpressions: [{ key: 'ipcontroller', operator: 'NotIn', values: [''] }] } },
    ],
  });
  assert.ok(byDefault.affinity?.podAntiAffinity, 'the replicas still prefer different nodes');
  assert.is(byDefault.nodeSelector, undefined);
  assert.is(byDefault.tolerations, undefined);

  assert.is(schedulerPlacement(['--set', 'scheduler.preferNonAgentNodes=false']).pod.affinity?.nodeAffinity, undefined);

  const own = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
      },
    },
  };
  const custom = schedulerPlacement([
    '--set',
    'scheduler.nodeSelector.kubernetes\\.io/os=linux',
    '--set-json',
    'scheduler.tolerations=[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"}]',
    '--set-json',
    `scheduler.affinity=${JSON.stringify(own)}`,
  ]);
  assert.equal(custom.pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
  assert.equal(custom.pod.tolerations, [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }]);
  assert.equal(custom.pod.affinity, own, "the user's affinity replaces the chart's");
  const out = await cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], custom.yaml);
  assert.is(out.code, 0, out.stderr);
});

test('the agent DaemonSet adds only NET_ADMIN and NET_RAW and is not privileged', async () => {
  const out = await cluster.kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', join(examples, 'claims', 'controller.yaml')]);
  assert.is(out.code, 0, out.stderr);
  const ds = JSON.parse(out.stdout) as {
    spec: {
      template: {
        spec: {
          hostNetwork: boolean;
          nodeSelector: Record<string, string>;
          containers: { securityContext: { privileged?: boolean; capabilities: { add: string[]; drop: string[] } } }[];
        };
      };
    };
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
