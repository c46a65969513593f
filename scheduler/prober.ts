// Probes every agent's /healthz directly, every --probe-interval, over keep-alive HTTP, and
// reports each result. Which results make a node failed is decided in health.ts.
import { Agent, request } from 'node:http';
import type { Clock } from '../lib/clock.js';
import type { ProbeResult } from './health.js';

export const PROBE_HEADER = 'x-ipcontroller-probe';

export interface ProbeTarget {
  node: string;
  address: string;
  port: number;
}

/** One probe; the port the scheduler's probing runs on (real HTTP, or a test double). */
export type ProbeFn = (target: ProbeTarget, timeoutMs: number) => Promise<ProbeResult>;

/** The real probe: GET /healthz with the scheduler's identity; 200 and {"ok":true,"node":name}. */
export function httpProbe(identity: string, clock: Clock): ProbeFn {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
  return (target, timeoutMs) =>
    new Promise<ProbeResult>((resolve) => {
      const started = clock.now();
      let settled = false;
      const finish = (result: ProbeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const req = request(
        { hostname: target.address, port: target.port, path: '/healthz', method: 'GET', agent, headers: { [PROBE_HEADER]: identity } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (body.length < 4096) body += chunk;
          });
          res.on('end', () => finish(judge(target, res.statusCode ?? 0, body, clock.now() - started)));
          res.on('error', (err) => finish({ ok: false, error: err.message }));
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new Error(`timeout after ${timeoutMs}ms`));
      }, timeoutMs);
      req.on('error', (err) => finish({ ok: false, error: err.message }));
      req.end();
    });
}

function judge(target: ProbeTarget, status: number, body: string, rttMs: number): ProbeResult {
  if (status !== 200) return { ok: false, error: `HTTP ${status}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, error: 'answer is not JSON' };
  }
  const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (o.ok !== true) return { ok: false, error: 'answer says ok: false' };
  if (typeof o.node === 'string' && o.node !== target.node) return { ok: false, error: `answered as node ${o.node}` };
  return { ok: true, draining: o.draining === true, rttMs };
}

export interface ProberOptions {
  probe: ProbeFn;
  intervalMs: number;
  timeoutMs: number;
  clock: Clock;
  onResult(node: string, result: ProbeResult): void;
}

/** One probe loop per target; `sync` starts, restarts and stops loops to match the targets. */
export class Prober {
  private readonly loops = new Map<string, { target: ProbeTarget; stop: AbortController }>();

  constructor(
    private readonly opts: ProberOptions,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener('abort', () => this.sync([]), { once: true });
  }

  sync(targets: ProbeTarget[]): void {
    const wanted = new Map(targets.map((t) => [t.node, t]));
    for (const [node, loop] of this.loops) {
      const t = wanted.get(node);
      if (!t || t.address !== loop.target.address || t.port !== loop.target.port || this.signal.aborted) {
        loop.stop.abort();
        this.loops.delete(node);
      }
    }
    if (this.signal.aborted) return;
    for (const target of wanted.values()) {
      if (this.loops.has(target.node)) continue;
      const stop = new AbortController();
      this.loops.set(target.node, { target, stop });
      void this.loop(target, stop.signal);
    }
  }

  private async loop(target: ProbeTarget, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = this.opts.clock.now();
      const result = await this.opts.probe(target, this.opts.timeoutMs);
      if (signal.aborted) return;
      this.opts.onResult(target.node, result);
      try {
        await this.opts.clock.sleep(Math.max(0, this.opts.intervalMs - (this.opts.clock.now() - started)), signal);
      } catch {
        return;
      }
    }
  }
}
