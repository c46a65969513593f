// Agent benchmark (root): the agent runs as its own process in a lab node namespace against a
// real apiserver; a capture in a client namespace on the same bridge times the frames.
//   bulk: 1,000 claims (500 IPv4, 500 IPv6) for the node exist, the agent starts: time until
//         all addresses are on the interface, all are announced on the wire, all claims Assigned;
//         then the claims are deleted: time until every address is gone.
//   latency: claims written one at a time while the agent runs: claim write -> first
//         announcement frame on the wire (p50, p99).
import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { ipClients } from '../../api/client.js';
import { API_VERSION, type IpClaim } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';
import { Lab, startAgentProcess, startApiForwarder, startCapture, type CapturedFrame } from '../lab/index.js';
import { testCluster, uniqueName } from '../support/cluster.js';
import { inBatches, percentile } from './_harness.js';

const BULK_V4 = 500;
const BULK_V6 = 500;
const LATENCY_SAMPLES = Number(process.env.IPC_BENCH_AGENT_SAMPLES ?? 100);
const BENCH_LABEL = 'ipcontroller.bench/run';

const log = (msg: string): void => void process.stderr.write(`  agent bench: ${msg}\n`);

function v4(i: number): string {
  // 198.51.100.1-250, then 203.0.113.1-250.
  return i < 250 ? `198.51.100.${i + 1}` : `203.0.113.${i - 249}`;
}
const v6 = (i: number): string => `2001:db8:b::${(i + 1).toString(16)}`;

const round = (n: number, digits = 1): number => Number(n.toFixed(digits));

const announced = (f: CapturedFrame): string | undefined =>
  f.arp && f.arp.senderIp === f.arp.targetIp ? f.arp.senderIp : f.na?.override ? f.na.target : undefined;

export async function run(): Promise<Record<string, unknown>> {
  const cluster = await testCluster();
  const clients = ipClients(cluster.kubeConfig());
  const lab = Lab.create();
  const runId = uniqueName('bench');
  const nodeName = `${runId}-node`;
  const result: Record<string, unknown> = {};
  try {
    const nodeNs = await lab.addNamespace('n1');
    const clientNs = await lab.addNamespace('cl');
    await lab.attach(nodeNs, { mac: '02:00:5e:20:00:01', addresses: ['192.0.2.11/24', '2001:db8:b::ffff/64'] });
    await lab.attach(clientNs, { mac: '02:00:5e:20:00:99', addresses: ['192.0.2.100/24'] });
    const forwarder = await startApiForwarder(lab, cluster.kubeconfigPath);
    const kubeconfig = await forwarder.kubeconfigFor(nodeNs);
    await cluster
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNode({ body: { metadata: { name: nodeName, labels: { ipcontroller: '' } } } });
    const capture = await startCapture(clientNs, 'eth0');
    const claim = (name: string, cidr: string): IpClaim => ({
      apiVersion: API_VERSION,
      kind: 'IpClaim',
      metadata: { name, labels: { [BENCH_LABEL]: runId } },
      spec: { cidr, nodeName },
    });
    const countOnIface = async (): Promise<number> => {
      const r = await lab.exec(nodeNs, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
      const links = JSON.parse(r.stdout || '[]') as { addr_info?: { metric?: number }[] }[];
      return (links[0]?.addr_info ?? []).filter((a) => a.metric === 4242).length;
    };

    // ---- bulk
    const bulk = [
      ...Array.from({ length: BULK_V4 }, (_, i) => `${v4(i)}/32`),
      ...Array.from({ length: BULK_V6 }, (_, i) => `${v6(i)}/128`),
    ];
    log(`creating ${bulk.length} claims`);
    await inBatches(
      bulk.map((cidr, i) => [cidr, `${runId}-b${i}`] as const),
      32,
      async ([cidr, name]) => {
        await clients.claims.create(claim(name, cidr));
      },
    );
    const ips = new Set(bulk.map((c) => c.split('/')[0] as string));
    const firstFrame = new Map<string, number>();
    const tally = (): void => {
      for (const f of capture.frames) {
        const ip = announced(f);
        if (ip && ips.has(ip) && !firstFrame.has(ip)) firstFrame.set(ip, f.time);
      }
    };
    log('starting the agent with 1,000 claims waiting');
    const spawned = Date.now();
    const agent = startAgentProcess(lab, nodeNs, { kubeconfig, hostname: nodeName, iface: 'eth0', args: ['--drain-timeout', '2s'] });
    await agent.ready(60_000);
    const readyAt = Date.now();
    let allUpAt = 0;
    await waitFor(
      '1,000 addresses on eth0',
      async () => {
        const n = await countOnIface();
        if (n >= bulk.length) allUpAt = Date.now();
        return n >= bulk.length;
      },
      120_000,
      50,
    );
    await waitFor(
      '1,000 addresses announced',
      async () => {
        tally();
        return firstFrame.size >= bulk.length;
      },
      60_000,
      50,
    );
    const allAnnouncedAt = Math.max(...firstFrame.values());
    const firstAnnouncedAt = Math.min(...firstFrame.values());
    let allAssignedAt = 0;
    await waitFor(
      '1,000 claims Assigned',
      async () => {
        const listed = await clients.claims.list(`${BENCH_LABEL}=${runId}`);
        const done = listed.items.filter((c) => c.status?.phase === 'Assigned' && c.status.node === nodeName).length;
        if (done >= bulk.length) allAssignedAt = Date.now();
        return done >= bulk.length;
      },
      120_000,
      250,
    );
    let metrics = '';
    await waitFor(
      'agent /metrics',
      async () => {
        metrics = (await agent.get('/metrics')).body;
        return metrics.includes('ipcontroller_agent_announcements_sent_total{');
      },
      20_000,
      500,
    );
    const framesSent = [...metrics.matchAll(/^ipcontroller_agent_announcements_sent_total\{kind="(\w+)"\} (\d+)/gm)].map((m) => [
      m[1],
      Number(m[2]),
    ]);
    // The agent's own account: one reconcile that added every address and sent the first round.
    const bulkReconcile = readFileSync(agent.proc.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"addresses changed"'))
      .map((l) => JSON.parse(l) as { added: number; ms: number })
      .sort((a, b) => b.added - a.added)[0];
    log('deleting the claims');
    const deleteStart = Date.now();
    await inBatches(
      bulk.map((_, i) => `${runId}-b${i}`),
      32,
      async (name) => {
        await clients.claims.delete(name);
      },
    );
    const deletesDoneAt = Date.now();
    await waitFor('every address removed', async () => (await countOnIface()) === 0, 120_000, 50);
    const allGoneAt = Date.now();
    result.bulk = {
      addresses: bulk.length,
      ipv4: BULK_V4,
      ipv6: BULK_V6,
      reconcile_adding_all_ms: bulkReconcile?.ms,
      reconcile_adding_all_added: bulkReconcile?.added,
      agent_spawn_to_ready_s: round((readyAt - spawned) / 1000, 2),
      agent_spawn_to_all_up_s: round((allUpAt - spawned) / 1000, 2),
      first_to_last_announcement_ms: round(allAnnouncedAt - firstAnnouncedAt),
      agent_spawn_to_all_announced_s: round((allAnnouncedAt - spawned) / 1000, 2),
      agent_spawn_to_all_claims_assigned_s: round((allAssignedAt - spawned) / 1000, 2),
      claim_deletes_s: round((deletesDoneAt - deleteStart) / 1000, 2),
      claim_deletes_start_to_all_addresses_removed_s: round((allGoneAt - deleteStart) / 1000, 2),
      frames_sent_first_round_and_repeats: Object.fromEntries(framesSent),
      note: 'reconcile_adding_all_ms: inside the agent, from the start of the reconcile (claims already listed) through ip -j addr, one ip -batch with every address and the first announcement round for all of them. agent_spawn_* include starting Node+tsx in the namespace and the first claim list; first_to_last_announcement_ms is the wire spread of the first round',
    };
    log(JSON.stringify(result.bulk));

    // ---- claim write -> first frame on the wire
    await waitFor('bench claims gone', async () => (await clients.claims.list(`${BENCH_LABEL}=${runId}`)).items.length === 0, 60_000, 250);
    const latencies: number[] = [];
    const upLatencies: number[] = [];
    log(`${LATENCY_SAMPLES} claims one at a time`);
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const ip = i % 2 === 0 ? `192.0.2.${20 + (i >> 1)}` : `2001:db8:b::1:${(i + 1).toString(16)}`;
      const name = `${runId}-l${i}`;
      const written = Date.now();
      await clients.claims.create(claim(name, ip.includes(':') ? `${ip}/128` : `${ip}/32`));
      const frame = await capture.waitFor(`announcement of ${ip}`, (f) => f.time >= written - 5 && announced(f) === ip, 10_000);
      latencies.push(frame.time - written);
      await waitFor(`${name} Assigned`, async () => (await clients.claims.get(name))?.status?.phase === 'Assigned', 10_000, 10);
      upLatencies.push(Date.now() - written);
      await clients.claims.delete(name);
      // One claim at a time: the next write starts once this address is gone again.
      await waitFor(
        `${ip} removed`,
        async () => {
          const r = await lab.exec(nodeNs, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
          return !r.stdout.includes(`"${ip}"`);
        },
        10_000,
        20,
      );
    }
    latencies.sort((a, b) => a - b);
    upLatencies.sort((a, b) => a - b);
    result.claim_write_to_first_frame_ms = {
      samples: latencies.length,
      p50: round(percentile(latencies, 50)),
      p99: round(percentile(latencies, 99)),
      min: round(latencies[0] ?? NaN),
      max: round(latencies[latencies.length - 1] ?? NaN),
      note: 'from just before the create call to the first GARP/NA on the wire (tcpdump timestamp), half IPv4 half IPv6',
    };
    result.claim_write_to_status_assigned_ms = {
      p50: round(percentile(upLatencies, 50)),
      p99: round(percentile(upLatencies, 99)),
      note: 'as seen by a client polling every 10 ms',
    };
    log(JSON.stringify(result.claim_write_to_first_frame_ms));
    await agent.proc.stop(5000);
    await capture.stop();
    result.capture_dropped_by_kernel = capture.dropped() ?? null;
    await forwarder.close();
  } finally {
    await cluster.kubectl(['delete', 'ipclaims', '-l', `${BENCH_LABEL}=${runId}`, '--wait=false']);
    await clients.nodes.delete(nodeName).catch(() => false);
    await cluster
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .deleteNode({ name: nodeName })
      .catch(() => undefined);
    await lab.destroy();
    await cluster.release();
  }
  return result;
}
