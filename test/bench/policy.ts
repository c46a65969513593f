// What examples/agent-policy.yaml costs per agent write, measured as docs/NODE-SCOPED-AGENT did:
// the agent's own Kubernetes port (one keep-alive connection) sends sequential merge-PATCHes of
// its IpNode status and of a claim's status, with the policy and without it, in alternating
// rounds. Reported: client-side latency (mean, p50, p95) per series and the apiserver's own time
// in the ValidatingAdmissionPolicy plugin per allowed write (its admission duration metric).
//   node --import tsx test/bench/run.ts policy      (no root needed)
import { performance } from 'node:perf_hooks';
import { CoreV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { kubePort, type KubePort } from '../../agent/kube.js';
import { ipClients } from '../../api/client.js';
import { claimName } from '../../api/names.js';
import { API_VERSION } from '../../api/types.js';
import { systemClock } from '../../lib/clock.js';
import { waitFor } from '../controlplane/harness.js';
import { AGENT_ACCOUNT } from '../e2e/twonode.js';
import {
  AGENT_POLICY_MANIFEST,
  agentPod,
  applyManifest,
  deleteAgentPod,
  dryRunIpNode,
  kubeConfigForToken,
  podBoundToken,
} from '../support/agent-identity.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';
import { percentile } from './_harness.js';
import { fileURLToPath } from 'node:url';

const ROUNDS = Number(process.env.IPC_BENCH_POLICY_ROUNDS ?? 3);
const WRITES = Number(process.env.IPC_BENCH_POLICY_WRITES ?? 200);
const WARMUP = 20;
const AUTH_MANIFEST = fileURLToPath(new URL('../../examples/auth.yaml', import.meta.url));
const log = (msg: string): void => void process.stderr.write(`  policy bench: ${msg}\n`);

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

/** Sum and count of the apiserver's time in the VAP plugin for allowed UPDATEs. */
async function vapAdmission(cluster: TestCluster): Promise<{ sum: number; count: number }> {
  const text = (await cluster.kubectl(['get', '--raw', '/metrics'])).stdout;
  const labels = 'name="ValidatingAdmissionPolicy",operation="UPDATE",rejected="false",type="validate"';
  const read = (suffix: string): number => {
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`apiserver_admission_controller_admission_duration_seconds_${suffix}{${labels}}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  return { sum: read('sum'), count: read('count') };
}

interface Series {
  latencies: number[];
  vapSeconds: number;
  vapCount: number;
}

async function series(cluster: TestCluster, write: () => Promise<void>): Promise<Series> {
  for (let i = 0; i < WARMUP; i++) await write();
  const before = await vapAdmission(cluster);
  const latencies: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const t0 = performance.now();
    await write();
    latencies.push(performance.now() - t0);
  }
  const after = await vapAdmission(cluster);
  return { latencies, vapSeconds: after.sum - before.sum, vapCount: after.count - before.count };
}

function summary(all: Series[]): Record<string, number> {
  const sorted = all.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const vapSeconds = all.reduce((n, s) => n + s.vapSeconds, 0);
  const vapCount = all.reduce((n, s) => n + s.vapCount, 0);
  return {
    writes: sorted.length,
    meanMs: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
    p50Ms: round(percentile(sorted, 50)),
    p95Ms: round(percentile(sorted, 95)),
    vapMicrosPerWrite: vapCount ? round((vapSeconds / vapCount) * 1e6, 1) : 0,
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const cluster = await testCluster();
  const admin = cluster.kubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const ip = ipClients(admin);
  const [nodeName, otherNode] = [uniqueName('bench-node'), uniqueName('bench-other')];
  const claim = claimName('203.0.113.250');
  let podName = '';
  try {
    await applyManifest(admin, AUTH_MANIFEST);
    await core.createNode({ body: { metadata: { name: nodeName } } });
    const pod = await agentPod(core, AGENT_ACCOUNT, nodeName);
    podName = pod.metadata?.name ?? '';
    const agentKc = kubeConfigForToken(admin, await podBoundToken(core, AGENT_ACCOUNT, pod));
    await ip.claims.delete(claim);
    await ip.claims.create({
      apiVersion: API_VERSION,
      kind: 'IpClaim',
      metadata: { name: claim },
      spec: { cidr: '203.0.113.250/32', nodeName },
    });
    await ip.nodes.delete(nodeName);
    await ip.nodes.create({
      apiVersion: API_VERSION,
      kind: 'IpNode',
      metadata: { name: nodeName },
      spec: { probeAddress: '192.0.2.1', probePort: 9610 },
    });
    const port: KubePort = kubePort(agentKc, { clock: systemClock, logger: pino({ level: 'silent' }), relistMs: 60_000, nodeName });
    const writes = {
      ipNodeStatus: () => port.patchIpNodeStatus(nodeName, { renewTime: new Date().toISOString() }),
      claimStatus: () => port.patchClaimStatus(claim, { phase: 'Assigned', node: nodeName, lastTransitionTime: new Date().toISOString() }),
    };
    const policy = async (on: boolean): Promise<void> => {
      if (on) await applyManifest(admin, AGENT_POLICY_MANIFEST);
      else await cluster.kubectl(['delete', '--ignore-not-found', '-f', AGENT_POLICY_MANIFEST]);
      // The switch is confirmed by a write the policy refuses: a dry-run create of another IpNode.
      await waitFor(`policy ${on ? 'on' : 'off'}`, async () => (await dryRunIpNode(agentKc, otherNode)) === (on ? 403 : 201), 20_000, 100);
    };
    const runs: Record<string, Series[]> = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const on of [false, true]) {
        await policy(on);
        for (const [kind, write] of Object.entries(writes)) {
          const key = `${kind}.${on ? 'withPolicy' : 'withoutPolicy'}`;
          (runs[key] ??= []).push(await series(cluster, write));
        }
      }
      log(`round ${r + 1}/${ROUNDS} done`);
    }
    const result: Record<string, unknown> = { rounds: ROUNDS, writesPerSeries: WRITES };
    for (const [key, all] of Object.entries(runs)) {
      result[key] = {
        ...summary(all),
        p50PerRoundMs: all.map((s) =>
          round(
            percentile(
              [...s.latencies].sort((a, b) => a - b),
              50,
            ),
          ),
        ),
      };
    }
    return result;
  } finally {
    await cluster.kubectl(['delete', '--ignore-not-found', '-f', AGENT_POLICY_MANIFEST]);
    await ip.claims.delete(claim).catch(() => false);
    await ip.nodes.delete(nodeName).catch(() => false);
    if (podName) await deleteAgentPod(core, AGENT_ACCOUNT.namespace, podName).catch(() => undefined);
    await core.deleteNode({ name: nodeName }).catch(() => undefined);
    await cluster.release();
  }
}
