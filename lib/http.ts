// The small HTTP server each program runs: /metrics for Prometheus, /healthz for liveness
// (and, for the agent, the scheduler's probes), /readyz for readiness.
import express from 'express';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthReport {
  ok: boolean;
  /** Extra fields shown in the JSON body, e.g. { draining: true }. */
  detail?: Record<string, unknown>;
}

/** What a health check may look at: the request's headers (e.g. who is probing). */
export interface HealthRequest {
  headers: IncomingHttpHeaders;
}

export interface StatusServerOptions {
  host: string;
  port: number;
  registry: Registry;
  healthz: (request: HealthRequest) => HealthReport;
  readyz: (request: HealthRequest) => HealthReport;
}

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const app = express();
  app.disable('x-powered-by');
  const report = (check: (request: HealthRequest) => HealthReport) => (req: express.Request, res: express.Response) => {
    const result = check({ headers: req.headers });
    res.status(result.ok ? 200 : 503).json({ ok: result.ok, ...result.detail });
  };
  app.get('/healthz', report(options.healthz));
  app.get('/readyz', report(options.readyz));
  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', options.registry.contentType);
    res.send(await options.registry.metrics());
  });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(options.port, options.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  // Probes come every 200 ms from the scheduler; keep-alive spares a TCP handshake each time.
  server.keepAliveTimeout = 5_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
