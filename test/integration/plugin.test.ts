// `kubectl ipcontroller` as a user runs it: kubectl finds the plugin on the PATH (a wrapper dir
// holding an executable kubectl-ipcontroller) and runs it against the real apiserver, where a
// real scheduler decides. Each pending reason: `why` gives the same reason the scheduler wrote
// in the Service's condition. A move: `history` and `status -o json` show it with its duration.
// `kubectl wait --for=condition=ipcontroller.ext/AddressReady` works on a Service.
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SERVICE_CONDITION } from '../../api/conditions.js';
import { waitFor } from '../controlplane/harness.js';
import type { Explanation } from '../../plugin/explain.js';
import type { History } from '../../plugin/history.js';
import type { StatusModel } from '../../plugin/model.js';
import { pluginPath, type PluginRun } from '../support/plugin-path.js';
import { fixtureRunner, type FakeAgent, type Fixture } from './scheduler-fixtures.js';

const withFixture = fixtureRunner(test);

const plugin = pluginPath();
test.after(() => plugin.remove());

/** `kubectl ARGS` with the plugin on PATH and the cluster in KUBECONFIG, as a user's shell has it. */
function kubectl(f: Fixture, args: string[]): Promise<PluginRun> {
  return plugin.kubectl(process.env.IPC_TEST_KUBECTL ?? 'kubectl', f.cluster.kubeconfigPath, args);
}

async function pluginJson<T>(f: Fixture, args: string[]): Promise<T> {
  const run = await kubectl(f, ['ipcontroller', ...args, '-o', 'json']);
  assert.is(run.code, 0, `kubectl ipcontroller ${args.join(' ')}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** Our condition on the Service, as the scheduler wrote it. */
async function serviceCondition(f: Fixture, name: string): Promise<{ status: string; reason: string; message: string } | undefined> {
  const c = (await f.readService(name)).status?.conditions?.find((x) => x.type === SERVICE_CONDITION);
  return c ? { status: c.status, reason: c.reason, message: c.message } : undefined;
}

async function agents(f: Fixture): Promise<[FakeAgent, FakeAgent]> {
  const a = await f.node('pa');
  const b = await f.node('pb');
  return [a, b].sort((x, y) => (x.node < y.node ? -1 : 1)) as [FakeAgent, FakeAgent];
}

test('kubectl finds the plugin on the PATH; --help and a bad flag', () =>
  withFixture(async (f) => {
    const help = await kubectl(f, ['ipcontroller', '--help']);
    assert.is(help.code, 0, help.stderr);
    assert.match(help.stdout, /kubectl ipcontroller why SERVICE/);
    const plugins = await kubectl(f, ['plugin', 'list']);
    assert.match(plugins.stdout, /kubectl-ipcontroller/);
    const bad = await kubectl(f, ['ipcontroller', 'status', '-o', 'wide']);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /--output must be text, json or yaml/);
  }));

test('each pending reason: why says what the scheduler wrote in the Service condition', () =>
  withFixture(async (f) => {
    await agents(f);
    const pool = await f.pool('203.0.113.0/24', [['203.0.113.10', '203.0.113.11']], 'pplug');
    const v6 = await f.pool('2001:db8:13::/120', undefined, 'pplug6');
    const invalid = await f.pool('203.0.113.0/24', [['203.0.113.40', '203.0.113.30']], 'pplugbad');
    // Older Services fill the pool first.
    const first = await f.service('full-a', {}, { 'ipcontroller.ext/pool': pool });
    const second = await f.service('full-b', {}, { 'ipcontroller.ext/pool': pool });
    await f.scheduler();
    await waitFor(
      'the pool is full',
      async () => (await serviceCondition(f, first))?.reason === 'Ready' && (await serviceCondition(f, second))?.reason === 'Ready',
      20_000,
      200,
    );
    const cases: Array<[string, Record<string, unknown>, Record<string, string>]> = [
      ['PoolExhausted', {}, { 'ipcontroller.ext/pool': pool }],
      ['AddressOutsidePool', {}, { 'ipcontroller.ext/loadBalancerIPs': '198.51.100.77' }],
      ['AddressInUse', {}, { 'ipcontroller.ext/loadBalancerIPs': '203.0.113.10' }],
      ['PoolNotFound', {}, { 'ipcontroller.ext/pool': 'no-such-pool' }],
      ['PoolInvalid', {}, { 'ipcontroller.ext/pool': invalid }],
      ['NoPoolForFamily', {}, { 'ipcontroller.ext/pool': v6 }],
      ['InvalidRequest', {}, { 'ipcontroller.ext/loadBalancerIPs': 'not-an-ip' }],
      // spec.externalIPs with externalTrafficPolicy: Local, and no serving endpoint on any node.
      ['NoServingEndpoint', { type: 'ClusterIP', externalTrafficPolicy: 'Local', externalIPs: ['198.51.100.99'] }, {}],
    ];
    const names: Array<[string, string]> = [];
    for (const [reason, spec, annotations] of cases) names.push([reason, await f.service(reason.toLowerCase(), spec, annotations)]);
    for (const [reason, name] of names) {
      await waitFor(
        `${name}: the scheduler's condition says ${reason}`,
        async () => (await serviceCondition(f, name))?.reason === reason,
        20_000,
        200,
      );
      const written = await serviceCondition(f, name);
      const why = await pluginJson<Explanation>(f, ['why', name, '-n', f.namespace]);
      assert.is(written?.status, 'False');
      assert.is(why.condition?.reason, written?.reason, `${reason}: why says ${why.condition?.reason}, the scheduler ${written?.reason}`);
      assert.is(why.condition?.message, written?.message);
      assert.is(why.pending[0]?.reason, reason);
      assert.match(why.summary, new RegExp(`^pending: ${reason}`));
      const text = await kubectl(f, ['ipcontroller', 'why', `${f.namespace}/${name}`]);
      assert.is(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`Pending\\n  ${reason}: `));
      assert.not.ok(text.stdout.includes('\u001b['), 'no colour: stdout is not a terminal');
    }
    // `kubectl wait` on the False condition works as well.
    const [, full] = names[0] ?? ['', ''];
    const waited = await kubectl(f, [
      'wait',
      `--for=condition=${SERVICE_CONDITION}=False`,
      `svc/${full}`,
      '-n',
      f.namespace,
      '--timeout=20s',
    ]);
    assert.is(waited.code, 0, waited.stderr);
  }));

test("no candidate node: both agents fail their probes; why names each node's reason, as the scheduler does", () =>
  withFixture(async (f) => {
    const [a, b] = await agents(f);
    await f.pool('203.0.113.0/24', [['203.0.113.20', '203.0.113.21']], 'pnone');
    a.mode = 'fail';
    b.mode = 'fail';
    const name = await f.service('nocand');
    await f.scheduler();
    await waitFor(
      'NoCandidateNode on the Service',
      async () => (await serviceCondition(f, name))?.reason === 'NoCandidateNode',
      20_000,
      200,
    );
    await waitFor(
      'the leader published its probe view of both nodes',
      async () => {
        const nodes = await Promise.all([a, b].map((x) => f.clients.nodes.get(x.node)));
        return nodes.every((n) => (n?.status?.probe?.consecutiveFailures ?? 0) >= 3);
      },
      20_000,
      200,
    );
    const why = await pluginJson<Explanation>(f, ['why', name]);
    assert.is(why.condition?.reason, 'NoCandidateNode');
    const verdicts = Object.fromEntries(
      (why.addresses[0]?.nodes ?? []).filter((n) => n.node === a.node || n.node === b.node).map((n) => [n.node, n.reason]),
    );
    assert.equal(verdicts, { [a.node]: 'probe', [b.node]: 'probe' });
  }));

test('a Service that gets its address: kubectl wait for the condition; a move, its history and status -o json with its duration', () =>
  withFixture(async (f) => {
    const [a, b] = await agents(f);
    await f.pool('203.0.113.0/24', [['203.0.113.30', '203.0.113.31']], 'pmove');
    const name = await f.service('moving');
    await f.scheduler({ nodeFilter: 'first-alive' });
    const ready = await kubectl(f, ['wait', `--for=condition=${SERVICE_CONDITION}`, `svc/${name}`, '-n', f.namespace, '--timeout=30s']);
    assert.is(ready.code, 0, ready.stderr);
    assert.match(ready.stdout, /condition met/);
    const [claim] = await f.claimsOf(name);
    assert.is(claim?.spec.nodeName, a.node, 'first-alive: the first node by name');
    const before = await pluginJson<Explanation>(f, ['why', name]);
    assert.equal(before.addresses[0]?.decision, { kind: 'keep', node: a.node }, 'why agrees with where the scheduler put it');

    a.mode = 'silent';
    await waitFor(
      'IPMoved with the duration, once b reported the address up',
      async () => (await f.events(name)).some((e) => e.reason === 'IPMoved' && / took \d+\.\d{3}s/.test(e.message ?? '')),
      20_000,
      200,
    );
    const moved = (await f.events(name)).find((e) => e.reason === 'IPMoved');
    assert.match(
      moved?.message ?? '',
      new RegExp(
        `^203\\.0\\.113\\.30 moved from node ${a.node} to ${b.node}: probe; took \\d+\\.\\d{3}s \\(failure detected -> claim written \\d+\\.\\d{3}s -> address up on ${b.node} \\d+\\.\\d{3}s\\)$`,
      ),
    );
    const after = (await f.claimsOf(name))[0];
    assert.is(after?.status?.lastMove?.from, a.node);
    assert.is(after?.status?.lastMove?.to, b.node);
    assert.is(after?.status?.lastMove?.reason, 'probe');
    assert.ok(after?.status?.lastMove?.upAt, 'upAt written by the new node');
    assert.is(after?.status?.serviceList, `${f.namespace}/${name}`);

    const afterWhy = await pluginJson<Explanation>(f, ['why', name]);
    assert.equal(afterWhy.addresses[0]?.decision, { kind: 'keep', node: b.node });
    assert.is(
      afterWhy.addresses[0]?.nodes.find((n) => n.node === a.node)?.reason,
      after?.status?.lastMove?.reason,
      'why gives the reason the scheduler moved for',
    );

    const history = await pluginJson<History>(f, ['history', name, '-n', f.namespace]);
    const reasons = history.entries.map((e) => e.reason);
    assert.ok(reasons.includes('IPAllocated') && reasons.includes('IPAssigned') && reasons.includes('IPMoved'), reasons.join(', '));
    assert.ok(reasons.indexOf('IPAssigned') < reasons.indexOf('IPMoved'), 'oldest first');
    assert.match(history.note, /--event-ttl \(1 hour by default\)/);
    const historyText = await kubectl(f, ['ipcontroller', 'history', name]);
    assert.match(historyText.stdout, new RegExp(`IPMoved\\s+203\\.0\\.113\\.30 moved from node ${a.node} to ${b.node}: probe; took`));

    // The leader's probe reports are written on its probe timer, apart from the move and its Event.
    await waitFor(
      "the leader's probe reports: a failed, b answering with an RTT",
      async () => {
        const [pa, pb] = await Promise.all([a.node, b.node].map(async (n) => (await f.clients.nodes.get(n))?.status?.probe));
        return (pa?.consecutiveFailures ?? 0) >= (pa?.failureThreshold ?? 1) && pb?.consecutiveFailures === 0 && pb.rttMs !== undefined;
      },
      10_000,
    );
    const status = await pluginJson<StatusModel>(f, ['status']);
    const row = status.addresses.find((r) => r.address === '203.0.113.30');
    assert.is(row?.node, b.node);
    assert.is(row?.phase, 'Assigned');
    assert.equal(row?.services, [`${f.namespace}/${name}`]);
    assert.is(row?.lastMove?.to, b.node);
    assert.ok((row?.lastMove?.durations.total ?? -1) >= 0, 'the move took a measured time');
    const nodeA = status.nodes.find((n) => n.name === a.node);
    assert.is(nodeA?.candidate, false);
    assert.is(nodeA?.reason, 'probe', 'status says what the scheduler moved for');
    const nodeB = status.nodes.find((n) => n.name === b.node);
    assert.is(nodeB?.candidate, true, JSON.stringify(nodeB));
    assert.ok(nodeB?.rttMs !== undefined, `RTT from the leader's probe report: ${JSON.stringify(nodeB)}`);
    const text = await kubectl(f, ['ipcontroller', 'status']);
    assert.match(text.stdout, new RegExp(`203\\.0\\.113\\.30\\s+${f.namespace}/${name}\\s+\\S+\\s+${b.node}\\s+Assigned`));
    const yaml = await kubectl(f, ['ipcontroller', 'status', '-o', 'yaml', `--kubeconfig=${f.cluster.kubeconfigPath}`]);
    assert.is(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /addresses:\n/);
  }));

test('before the scheduler runs, why predicts the address and node it will give each Service; then it does', () =>
  withFixture(async (f) => {
    await agents(f);
    await f.pool('203.0.113.0/24', [['203.0.113.60', '203.0.113.63']], 'pfair');
    const names: string[] = [];
    for (let i = 0; i < 4; i++) names.push(await f.service('fair'));
    const predicted = new Map<string, { address: string; node: string }>();
    for (const name of names) {
      const why = await pluginJson<Explanation>(f, ['why', name]);
      const d = why.addresses[0]?.decision;
      assert.is(d?.kind, 'assign', `${name}: ${JSON.stringify(d)}`);
      predicted.set(name, { address: why.addresses[0]?.address ?? '', node: d?.kind === 'assign' ? d.node : '' });
    }
    assert.is(new Set([...predicted.values()].map((p) => p.node)).size, 2, 'fair: both nodes get claims');
    await f.scheduler();
    await waitFor(
      'all four placed',
      async () => (await Promise.all(names.map((n) => f.claimsOf(n)))).every((c) => c[0]?.spec.nodeName),
      20_000,
      200,
    );
    for (const name of names) {
      const [claim] = await f.claimsOf(name);
      assert.equal(
        { address: claim?.spec.cidr.split('/')[0], node: claim?.spec.nodeName },
        predicted.get(name),
        `${name}: the scheduler did what why said`,
      );
    }
  }));

test('status -w prints again when something changes', () =>
  withFixture(async (f) => {
    await agents(f);
    await f.pool('203.0.113.0/24', [['203.0.113.50', '203.0.113.51']], 'pwatch');
    await f.scheduler();
    const env = plugin.env(f.cluster.kubeconfigPath);
    const child = spawn(process.env.IPC_TEST_KUBECTL ?? 'kubectl', ['ipcontroller', 'status', '-w', '--interval', '300ms'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the first screen', async () => out.includes('ADDRESSES'), 20_000, 100);
      const name = await f.service('watched');
      await waitFor(
        'a second screen with the new address',
        async () => out.split('Scheduler leader:').length >= 3 && out.includes(`${f.namespace}/${name}`),
        20_000,
        100,
      );
    } finally {
      child.kill('SIGINT');
    }
  }));

test.run();
