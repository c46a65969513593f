// The RBAC rules of examples/auth.yaml hold on a real apiserver with RBAC on: each program's
// ServiceAccount (token from the TokenRequest API) is refused what it must not do. That the
// same accounts can do their whole job is shown by the e2e lab, which runs every scenario
// with agents and schedulers authenticated as these accounts.
// examples/agent-policy.yaml narrows the agent further, as the Node authorizer does for
// kubelets: with the Pod-bound token of a Pod on node A it may write IpNode A and the status of
// claims on A, and nothing of node B's; tokens that name no Pod on a node write nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ApiException, CoordinationV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { ipClients, type IpClients } from '../../api/client.js';
import { claimName } from '../../api/names.js';
import { API_VERSION, type IpClaim, type IpClaimStatus, type IpNode } from '../../api/types.js';
import { kubePort } from '../../agent/kube.js';
import { ClaimNotOnThisNode } from '../../agent/refusals.js';
import { systemClock } from '../../lib/clock.js';
import { waitFor } from '../controlplane/harness.js';
import { AGENT_ACCOUNT, SCHEDULER_ACCOUNT, serviceAccountToken } from '../e2e/twonode.js';
import {
  AGENT_POLICY_MANIFEST,
  AGENT_POLICY_NAME,
  agentPod,
  agentPolicyInForce,
  deleteAgentPod,
  kubeConfigForToken,
  legacySecretToken,
  podBoundToken,
  serviceAccountTokenBound,
} from '../support/agent-identity.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';

let cluster: TestCluster;
let admin: KubeConfig;
let agent: KubeConfig;
let scheduler: KubeConfig;
/** Two agent nodes, each with a Pod of the agent's account on it and that Pod's token. */
let nodeA: string;
let nodeB: string;
let agentA: KubeConfig;
let agentB: KubeConfig;
const pods: V1Pod[] = [];
const claims: string[] = [];
const ipNodes: string[] = [];
const secrets: string[] = [];

function asToken(admin: KubeConfig, token: string): KubeConfig {
  return kubeConfigForToken(admin, token);
}

async function status(call: () => Promise<unknown>): Promise<number> {
  return (await outcome(call)).code;
}

/** The status code of a call and, when refused, the apiserver's message. */
async function outcome(call: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call();
    return { code: 200, message: '' };
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    let message = String(err.body);
    try {
      message = (JSON.parse(String(err.body)) as { message?: string }).message ?? message;
    } catch {
      /* not a Status */
    }
    return { code: err.code, message };
  }
}

const ipNode = (name: string): IpNode => ({
  apiVersion: API_VERSION,
  kind: 'IpNode',
  metadata: { name },
  spec: { probeAddress: '192.0.2.1', probePort: 9610 },
});

/** A claim on nodeName, made by the admin (as the scheduler would). */
async function claimOn(address: string, nodeName: string): Promise<string> {
  const name = claimName(address);
  const body: IpClaim = { apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name }, spec: { cidr: `${address}/32`, nodeName } };
  await ipClients(admin).claims.delete(name);
  await ipClients(admin).claims.create(body);
  claims.push(name);
  return name;
}

const assignedStatus = (node: string): IpClaimStatus => ({ phase: 'Assigned', node });
const assigned = (node: string): { status: IpClaimStatus } => ({ status: assignedStatus(node) });

test.before(async () => {
  cluster = await testCluster();
  const applied = await cluster.kubectl([
    'apply',
    '-f',
    fileURLToPath(new URL('../../examples/auth.yaml', import.meta.url)),
    '-f',
    AGENT_POLICY_MANIFEST,
  ]);
  assert.is(applied.code, 0, applied.stderr);
  admin = cluster.kubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  agent = asToken(admin, await serviceAccountToken(core, AGENT_ACCOUNT));
  scheduler = asToken(admin, await serviceAccountToken(core, SCHEDULER_ACCOUNT));
  [nodeA, nodeB] = [uniqueName('node-a'), uniqueName('node-b')];
  for (const name of [nodeA, nodeB]) await core.createNode({ body: { metadata: { name } } });
  const [podA, podB] = [await agentPod(core, AGENT_ACCOUNT, nodeA), await agentPod(core, AGENT_ACCOUNT, nodeB)];
  pods.push(podA, podB);
  agentA = asToken(admin, await podBoundToken(core, AGENT_ACCOUNT, podA));
  agentB = asToken(admin, await podBoundToken(core, AGENT_ACCOUNT, podB));
  await agentPolicyInForce(agentA, nodeB);
});
test.after(async () => {
  if (admin) {
    // Leave the shared control plane as other files expect it: no policy, none of our objects.
    const core = admin.makeApiClient(CoreV1Api);
    const ip = ipClients(admin);
    await cluster.kubectl(['delete', '--ignore-not-found', '-f', AGENT_POLICY_MANIFEST]);
    for (const name of claims) await ip.claims.delete(name);
    for (const name of ipNodes) await ip.nodes.delete(name);
    for (const pod of pods) await deleteAgentPod(core, AGENT_ACCOUNT.namespace, pod.metadata?.name ?? '');
    for (const name of secrets) await core.deleteNamespacedSecret({ name, namespace: AGENT_ACCOUNT.namespace }).catch(() => undefined);
    for (const name of [nodeA, nodeB]) if (name) await core.deleteNode({ name }).catch(() => undefined);
  }
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
    await status(() =>
      ip.claims.create({ apiVersion: API_VERSION, kind: 'IpClaim', metadata: { name: '192-0-2-99-32' }, spec: { cidr: '192.0.2.99/32' } }),
    ),
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
    await status(() =>
      ip.nodes.create({
        apiVersion: API_VERSION,
        kind: 'IpNode',
        metadata: { name: 'forged' },
        spec: { probeAddress: '192.0.2.1', probePort: 1 },
      }),
    ),
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
    assert.is(
      await status(() =>
        ip.pools.create({
          apiVersion: API_VERSION,
          kind: 'IpClaimPool',
          metadata: { name: uniqueName('forged') },
          spec: { cidr: '192.0.2.0/24' },
        }),
      ),
      403,
    );
  } finally {
    await admin.pools.delete(pool);
  }
  assert.is(
    await status(() =>
      core.createNamespacedService({
        namespace: 'default',
        body: { metadata: { name: uniqueName('svc') }, spec: { ports: [{ port: 80 }] } },
      }),
    ),
    403,
  );
});

test('an agent with the Pod-bound token of a Pod on node A writes IpNode A and the status of claims on A', async () => {
  const ip = ipClients(agentA);
  ipNodes.push(nodeA);
  assert.is(await status(() => ip.nodes.create(ipNode(nodeA))), 200);
  assert.is(await status(() => ip.nodes.patch(nodeA, { spec: { probePort: 9611 } })), 200);
  assert.is(await status(() => ip.nodes.patchStatus(nodeA, { status: { renewTime: new Date().toISOString() } })), 200);
  const claim = await claimOn('203.0.113.151', nodeA);
  assert.is(await status(() => ip.claims.patchStatus(claim, assigned(nodeA))), 200);
  assert.is((await ipClients(admin).claims.get(claim))?.status?.node, nodeA);
});

test("the same token is refused node B's IpNode and claims, and B's token node A's, with a message that says why", async () => {
  ipNodes.push(nodeB);
  await ipClients(admin).nodes.delete(nodeB);
  await ipClients(admin).nodes.create(ipNode(nodeB));
  const claimA = await claimOn('203.0.113.152', nodeA);
  const claimB = await claimOn('203.0.113.153', nodeB);
  const unplaced = await claimOn('203.0.113.154', '');
  for (const [from, to, client, ownClaim, otherClaim] of [
    [nodeA, nodeB, ipClients(agentA), claimA, claimB],
    [nodeB, nodeA, ipClients(agentB), claimB, claimA],
  ] as [string, string, IpClients, string, string][]) {
    const onlyIpNode = new RegExp(`ipcontroller-agent on node ${from} may write only IpNode ${from}, not ${to}`);
    for (const write of [
      () => client.nodes.patchStatus(to, { status: { renewTime: new Date().toISOString() } }),
      () => client.nodes.patch(to, { spec: { probeAddress: '192.0.2.66' } }),
    ]) {
      const refused = await outcome(write);
      assert.is(refused.code, 403);
      assert.match(refused.message, onlyIpNode);
    }
    const forged = await outcome(() => client.nodes.create(ipNode(`${to}-forged`)));
    assert.is(forged.code, 403);
    assert.match(forged.message, /may write only IpNode/);
    const claim = await outcome(() => client.claims.patchStatus(otherClaim, assigned(from)));
    assert.is(claim.code, 403);
    assert.match(claim.message, new RegExp(`may write only the status of IpClaims on ${from}; ${otherClaim} is on ${to}`));
    // A spec.nodeName forged into the status write is not seen: the stored spec decides.
    const forgedSpec = await outcome(() => client.claims.patchStatus(otherClaim, { spec: { nodeName: from }, ...assigned(from) }));
    assert.is(forgedSpec.code, 403);
    assert.match((await outcome(() => client.claims.patchStatus(unplaced, assigned(from)))).message, /is on no node/);
    assert.is(await status(() => client.claims.patchStatus(ownClaim, assigned(from))), 200);
    // Reads are not admission's business: every claim and IpNode stays readable.
    assert.is(await status(() => client.claims.get(otherClaim)), 200);
    assert.is(await status(() => client.nodes.get(to)), 200);
  }
  assert.is((await ipClients(admin).nodes.get(nodeB))?.spec.probeAddress, '192.0.2.1', "node B's IpNode is as it was");
  assert.is((await ipClients(admin).claims.get(claimB))?.status?.node, nodeB);
});

test('after the scheduler moves a claim from A to B, A can no longer write its status; the agent takes that calmly and does not ask again', async () => {
  const name = await claimOn('203.0.113.155', nodeA);
  // The agent's own port, with its copy of the claims taken before the move (a watch that lags).
  const port = kubePort(agentA, { clock: systemClock, logger: pino({ level: 'silent' }), relistMs: 60_000, nodeName: nodeA });
  const watching = new AbortController();
  port.claims.run(() => undefined, watching.signal);
  await waitFor(
    'the agent lists the claim',
    async () => port.claims.entries().some((e) => e.ok && e.claim.metadata.name === name && e.claim.spec.nodeName === nodeA),
    10_000,
    50,
  );
  watching.abort();
  await port.patchClaimStatus(name, assignedStatus(nodeA));

  assert.is(await status(() => ipClients(scheduler).claims.patch(name, { spec: { nodeName: nodeB } })), 200);
  const refused = await outcome(() => ipClients(agentA).claims.patchStatus(name, assigned(nodeA)));
  assert.is(refused.code, 403);
  assert.match(refused.message, new RegExp(`${name} is on ${nodeB}`));
  const denials = async (): Promise<number> => policyDenials((await cluster.kubectl(['get', '--raw', '/metrics'])).stdout);
  const before = await denials();
  const first = await port.patchClaimStatus(name, assignedStatus(nodeA)).then(
    () => null,
    (err: unknown) => err,
  );
  assert.instance(first, ClaimNotOnThisNode);
  assert.is((first as ClaimNotOnThisNode).nodeName, nodeB);
  const afterFirst = await denials();
  assert.is(afterFirst, before + 1, 'the write reached the apiserver once');
  for (let i = 0; i < 3; i++) {
    const again = await port.patchClaimStatus(name, assignedStatus(nodeA)).then(
      () => null,
      (err: unknown) => err,
    );
    assert.instance(again, ClaimNotOnThisNode);
  }
  assert.is(await denials(), afterFirst, 'the same refused write is not sent again while the claim looks the same');
  assert.is(await status(() => ipClients(agentB).claims.patchStatus(name, assigned(nodeB))), 200);
});

test("the scheduler's and an admin's writes pass the policy", async () => {
  const claimB = await claimOn('203.0.113.156', nodeB);
  const sched = ipClients(scheduler);
  assert.is(await status(() => sched.claims.patch(claimB, { spec: { nodeName: nodeA } })), 200);
  assert.is(await status(() => sched.claims.patchStatus(claimB, { status: { phase: 'Pending' } })), 200);
  const adm = ipClients(admin);
  assert.is(await status(() => adm.claims.patchStatus(claimB, assigned(nodeA))), 200);
  assert.is(await status(() => adm.nodes.patchStatus(nodeB, { status: { renewTime: new Date().toISOString() } })), 200);
  assert.is(await status(() => adm.nodes.patch(nodeB, { spec: { probePort: 9612 } })), 200);
});

test('tokens that name no Pod on a node are refused every agent write, with the reason; reads still work', async () => {
  const core = admin.makeApiClient(CoreV1Api);
  ipNodes.push(nodeA);
  if (!(await ipClients(admin).nodes.get(nodeA))) await ipClients(admin).nodes.create(ipNode(nodeA));
  const claimA = await claimOn('203.0.113.157', nodeA);
  const secretName = uniqueName('agent-legacy');
  secrets.push(secretName);
  const legacy = await legacySecretToken(core, AGENT_ACCOUNT, cluster.serviceAccountKeyPath(), secretName);
  const nodeUid = (await core.readNode({ name: nodeA })).metadata?.uid ?? '';
  const unscheduled = await agentPod(core, AGENT_ACCOUNT, undefined, uniqueName('agent-unscheduled'));
  pods.push(unscheduled);
  const tokens: [string, string, RegExp][] = [
    ['plain TokenRequest', await serviceAccountTokenBound(core, AGENT_ACCOUNT, undefined), /no pod binding/],
    ['Node-bound', await serviceAccountTokenBound(core, AGENT_ACCOUNT, { kind: 'Node', name: nodeA, uid: nodeUid }), /no pod binding/],
    [
      'Secret-bound',
      await serviceAccountTokenBound(core, AGENT_ACCOUNT, { kind: 'Secret', name: secretName, uid: legacy.secretUid }),
      /no pod binding/,
    ],
    ['legacy Secret token', legacy.token, /no pod binding/],
    ['bound to a Pod on no node', await podBoundToken(core, AGENT_ACCOUNT, unscheduled), /no node binding/],
  ];
  for (const [kind, token, why] of tokens) {
    const ip = ipClients(asToken(admin, token));
    assert.is(await status(() => ip.claims.list()), 200, `${kind}: reads work`);
    assert.is(await status(() => ip.nodes.get(nodeA)), 200, `${kind}: reads work`);
    for (const write of [
      () => ip.nodes.patchStatus(nodeA, { status: { renewTime: new Date().toISOString() } }),
      () => ip.nodes.create(ipNode(uniqueName('forged'))),
      () => ip.claims.patchStatus(claimA, assigned(nodeA)),
    ]) {
      const refused = await outcome(write);
      assert.is(refused.code, 403, `${kind}: ${refused.message}`);
      assert.match(refused.message, /ipcontroller-agent must use the Pod-bound token of a Pod on a node/);
      assert.match(refused.message, why);
    }
  }
});

test('a token with no user extra at all is refused by the policy itself, never let through by an evaluation error (failurePolicy Fail)', async () => {
  // The legacy token has no userInfo.extra: an unguarded expression would fail to evaluate,
  // which failurePolicy Ignore would turn into a 200. The refusal must be the policy's own.
  const core = admin.makeApiClient(CoreV1Api);
  const secretName = uniqueName('agent-legacy');
  secrets.push(secretName);
  const { token } = await legacySecretToken(core, AGENT_ACCOUNT, cluster.serviceAccountKeyPath(), secretName);
  const whoami = await cluster.kubectl(['auth', 'whoami', '-o', 'json', `--token=${token}`]);
  assert.is(whoami.code, 0, whoami.stderr);
  const user = (JSON.parse(whoami.stdout) as { status: { userInfo: { username: string; extra?: unknown } } }).status.userInfo;
  assert.is(user.username, 'system:serviceaccount:ipcontroller-system:ipcontroller-agent');
  assert.is(user.extra, undefined, 'this token carries no extra');
  const refused = await outcome(() =>
    ipClients(asToken(admin, token)).nodes.patchStatus(nodeA, { status: { renewTime: new Date().toISOString() } }),
  );
  assert.is(refused.code, 403, refused.message);
  assert.match(
    refused.message,
    new RegExp(`ValidatingAdmissionPolicy '${AGENT_POLICY_NAME}' .*denied request: ipcontroller-agent must use the Pod-bound token`),
  );
  const policy = await cluster.kubectl(['get', 'validatingadmissionpolicy', AGENT_POLICY_NAME, '-o', 'json']);
  const spec = JSON.parse(policy.stdout) as {
    spec: { failurePolicy: string };
    status?: { typeChecking?: { expressionWarnings?: unknown[] } };
  };
  assert.is(spec.spec.failurePolicy, 'Fail');
  assert.equal(spec.status?.typeChecking?.expressionWarnings ?? [], [], 'the expressions type-check against the CRD schemas');
});

/** Requests the agent policy denied so far, from the apiserver's own metrics. */
function policyDenials(metrics: string): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_validating_admission_policy_check_total{')) continue;
    if (line.includes(`policy="${AGENT_POLICY_NAME}"`) && line.includes('enforcement_action="deny"'))
      total += Number(line.split(' ').pop());
  }
  return total;
}

test.run();
