// The apiserver's own write rate on this machine: N creates of a tiny object from a trivial
// writer (node:https with keep-alive, no client library, no parsing of the answers), at a
// given number of requests in flight. This is the floor under any controller's write rate
// here: the scheduler cannot write faster than the apiserver accepts a ConfigMap.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface FloorResult {
  objects: string;
  writes: number;
  inFlight: number;
  seconds: number;
  writesPerSecond: number;
  /** This writer's own CPU per write (node:https, no parsing): the least any Node client here spends on one. */
  clientCpuMsPerWrite: number;
}

interface Target {
  url: URL;
  token: string;
  agent: Agent;
}

function targetOf(kc: KubeConfig, inFlight: number): Target {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user?.token) throw new Error('write floor: kubeconfig without a cluster or a token');
  const ca = cluster.caFile ? readFileSync(cluster.caFile) : cluster.caData ? Buffer.from(cluster.caData, 'base64') : undefined;
  return {
    url: new URL(cluster.server),
    token: user.token,
    agent: new Agent({ keepAlive: true, maxSockets: inFlight, ...(ca ? { ca } : {}) }),
  };
}

interface Call {
  method: string;
  path: string;
  body?: string;
  contentType?: string;
}

function send(t: Target, { method, path, body, contentType = 'application/json' }: Call): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: t.url.hostname,
        port: t.url.port,
        method,
        path,
        agent: t.agent,
        headers: { authorization: `Bearer ${t.token}`, 'content-type': contentType, accept: 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A floor run's figures from its count, wall time and the client's CPU over it. */
function floorResult(objects: string, writes: number, inFlight: number, run: { seconds: number; used: NodeJS.CpuUsage }): FloorResult {
  const { seconds, used } = run;
  return {
    objects,
    writes,
    inFlight,
    seconds: +seconds.toFixed(2),
    writesPerSecond: Math.round(writes / seconds),
    clientCpuMsPerWrite: +((used.user + used.system) / 1000 / writes).toFixed(3),
  };
}

/** Creates `writes` tiny ConfigMaps in `namespace` with `inFlight` requests at a time, then deletes them. */
export async function writeFloor(kc: KubeConfig, namespace: string, writes: number, inFlight: number): Promise<FloorResult> {
  const t = targetOf(kc, inFlight);
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const prefix = `floor-${inFlight}-`;
  let next = 0;
  let refused = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < writes) {
        const name = `${prefix}${next++}`;
        const code = await send(t, {
          method: 'POST',
          path,
          body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } }),
        });
        if (code !== 201) refused++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  await send(t, { method: 'DELETE', path }).catch(() => 0);
  t.agent.destroy();
  if (refused > 0) throw new Error(`write floor: ${refused} of ${writes} creates refused`);
  return floorResult('ConfigMap', writes, inFlight, { seconds, used });
}

/** Writes the apiserver has served so far, by "VERB resource[/subresource]" (from its own apiserver_request_total). */
export async function apiserverWrites(kc: KubeConfig): Promise<Map<string, number>> {
  const t = targetOf(kc, 1);
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      { host: t.url.hostname, port: t.url.port, path: '/metrics', agent: t.agent, headers: { authorization: `Bearer ${t.token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.agent.destroy();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY'].includes(labels.verb ?? '')) continue;
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.split(' ').pop()));
  }
  return out;
}

/** What was written between two apiserverWrites() readings, without what the bench itself writes (ignore). */
export function writesBetween(before: Map<string, number>, after: Map<string, number>, ignore: RegExp): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, n] of after) {
    const d = n - (before.get(key) ?? 0);
    if (d > 0 && !ignore.test(key)) out[key] = d;
  }
  return out;
}

/** One Service of the cold start as the trivial writer writes it: its claim, then its ingress. */
export interface ColdWrite {
  service: string;
  /** The Service's resourceVersion, the ingress patch's precondition as the scheduler sends it. */
  resourceVersion: string;
  claim: { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> };
  ip: string;
}

/**
 * The cold start's own writes from the trivial writer (no client library, no parsing, no
 * decisions): for each Service its IpClaim create, then its status.loadBalancer.ingress merge
 * patch, with the bodies the scheduler sends, inFlight Services at a time. The floor under the
 * scheduler's cold start for exactly its writes: what the apiserver spends on them, on its own.
 */
export async function coldStartFloor(kc: KubeConfig, namespace: string, cold: ColdWrite[], inFlight: number): Promise<FloorResult> {
  const t = targetOf(kc, inFlight);
  const claims = cold[0] ? `/apis/${cold[0].claim.apiVersion}/ipclaims` : '';
  let next = 0;
  let refused = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < cold.length) {
        const c = cold[next++] as ColdWrite;
        if ((await send(t, { method: 'POST', path: claims, body: JSON.stringify(c.claim) })) !== 201) refused++;
        const patch = {
          metadata: { resourceVersion: c.resourceVersion },
          status: { loadBalancer: { ingress: [{ ip: c.ip, ipMode: 'VIP' }] } },
        };
        const path = `/api/v1/namespaces/${namespace}/services/${c.service}/status`;
        const body = JSON.stringify(patch);
        if ((await send(t, { method: 'PATCH', path, body, contentType: 'application/merge-patch+json' })) !== 200) refused++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  t.agent.destroy();
  if (refused > 0) throw new Error(`cold start floor: ${refused} of ${cold.length * 2} writes refused`);
  return floorResult('IpClaim create + Service status patch', cold.length * 2, inFlight, { seconds, used });
}
