// The one API client both programs use: connections kept alive, a deadline on every request,
// and the pool reset after a deadline passes.
//
// client-node 1.4's makeApiClient builds a new http(s).Agent for every request, so every call
// pays a TCP and TLS handshake (the agent measured 300 status writes at 1.4 s that way, 0.6 s
// over kept-alive connections; at the scheduler's cold start with 5,000 Services the handshake
// is most of the cost). Here the kubeconfig still authenticates the requests (its headers, read
// again every AUTH_REFRESH_MS so rotated tokens keep working: CachedCredentials), but the agent
// it builds is replaced by one keep-alive agent with the same TLS options. Proxy agents are
// left alone.
//
// Every request has a deadline. A request to an apiserver behind a partition would otherwise
// hang until TCP gives up (minutes) and then land long after the writer lost the right to make
// it; on a timeout the pool's sockets are reset (RST, unsent bytes dropped), not closed
// gracefully, so a held write is not delivered when the partition heals, and the next request
// builds a fresh pool instead of queueing behind the hung sockets.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import {
  createConfiguration,
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  Observable,
  type HttpLibrary,
  ServerConfiguration,
  type Configuration,
  type ConfigurationOptions,
  type KubeConfig,
  RequestContext,
  type ResponseContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';

export type ApiFactory = <T>(api: new (config: Configuration) => T) => T;

export interface KeepAliveOptions {
  /** Sockets per pool (default 32). */
  maxSockets?: number;
  /** Deadline of every request, ms (default 30,000). */
  requestTimeoutMs?: number;
  /** How long one reading of the kubeconfig's credentials is used (default AUTH_REFRESH_MS). */
  authRefreshMs?: number;
}

/**
 * client-node's applySecurityAuthentication reads the kubeconfig's credential files and builds a
 * new agent on every call: about 0.3-0.6 ms of CPU per request, most of a small write's cost on
 * the client side. One reading is used for this long, then read again (client-go reads a
 * token file again once a minute), so a rotated token is picked up within it.
 */
export const AUTH_REFRESH_MS = 10_000;

/** What applySecurityAuthentication gives a request: its headers, and the agent it built. */
interface Credentials {
  headers: Record<string, string>;
  agent: unknown;
}

/** The part of KubeConfig this uses (tests pass their own). */
export type Authenticator = Pick<KubeConfig, 'applySecurityAuthentication'>;

/**
 * The kubeconfig's credentials, read at most once per refreshMs (one reading for the requests
 * that ask at the same time), applied to each request as the kubeconfig would apply them.
 */
export class CachedCredentials {
  private current: { at: number; credentials: Credentials } | undefined;
  private pending: Promise<Credentials> | undefined;

  constructor(
    private readonly kc: Authenticator,
    private readonly server: string,
    private readonly refreshMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Sets the request's auth headers; returns the agent the kubeconfig built for it. */
  async apply(context: RequestContext): Promise<unknown> {
    const { headers, agent } = await this.credentials();
    for (const [key, value] of Object.entries(headers)) context.setHeaderParam(key, value);
    return agent;
  }

  private async credentials(): Promise<Credentials> {
    if (this.current && this.now() - this.current.at < this.refreshMs) return this.current.credentials;
    this.pending ??= this.read().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async read(): Promise<Credentials> {
    const probe = new RequestContext(this.server, HttpMethod.GET);
    await this.kc.applySecurityAuthentication(probe);
    const credentials = { headers: { ...probe.getHeaders() }, agent: probe.getAgent() };
    this.current = { at: this.now(), credentials };
    return credentials;
  }
}

/** Per-request options that abort the request with signal (client-node middleware). */
export function withSignal(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (ctx: RequestContext) => {
          const previous = ctx.getSignal();
          ctx.setSignal(previous ? AbortSignal.any([previous, signal]) : signal);
          return new Observable(Promise.resolve(ctx));
        },
        post: (res: ResponseContext) => new Observable(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** Rejects when p takes longer than ms, so a promise that is not a request cannot stall a loop. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(`${what}: no answer within ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resets every socket of the agent: RST instead of FIN, so queued bytes are never sent. */
export function resetSockets(agent: HttpAgent): void {
  for (const list of [...Object.values(agent.sockets), ...Object.values(agent.freeSockets)]) {
    for (const socket of (list ?? []) as Socket[]) resetSocket(socket);
  }
  agent.destroy();
}

/**
 * RST where Node can send one, so bytes a black-holed connection still holds are never sent.
 * resetAndDestroy() needs a TCP handle; a TLS socket (every connection to an apiserver) holds a
 * TLS wrap and it throws ERR_INVALID_HANDLE_TYPE, which crashed schedulers in the chaos matrix.
 * The TLS wrap's parent is the TCP handle (a Node internal, so it is looked for, not assumed):
 * that one is reset. Whatever is left is destroyed.
 */
export function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
    return;
  } catch {
    // not a TCP handle: below
  }
  const tcp = (socket as unknown as { _handle?: { _parent?: { reset?: (done: () => void) => number } } })._handle?._parent;
  try {
    // destroy() only once the RST is out: before it, the TLS wrap's shutdown sends a FIN first.
    if (tcp?.reset?.(() => socket.destroy()) === 0) return;
  } catch {
    // no reset: destroy() ends it with a FIN
  }
  socket.destroy();
}

/** Whether an agent the kubeconfig built is a plain one we may replace (not a proxy agent). */
export function replaceable(built: unknown): boolean {
  return !built || built.constructor === HttpsAgent || built.constructor === HttpAgent;
}

/** Sends through fetch with a deadline per request; onTimeout hears of the agent that hung. */
class DeadlineHttp implements HttpLibrary {
  private readonly inner = new IsomorphicFetchHttpLibrary();
  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: (agent: HttpAgent | undefined) => void,
  ) {}
  send(request: RequestContext): Observable<ResponseContext> {
    const ctl = new AbortController();
    const timer = setTimeout(() => {
      ctl.abort(new Error(`request timed out after ${this.timeoutMs} ms`));
      this.onTimeout(request.getAgent() as HttpAgent | undefined);
    }, this.timeoutMs);
    const previous = request.getSignal();
    request.setSignal(previous ? AbortSignal.any([previous, ctl.signal]) : ctl.signal);
    return new Observable(
      this.inner
        .send(request)
        .toPromise()
        .finally(() => clearTimeout(timer)),
    );
  }
}

/** One shared keep-alive pool, built from the first agent the kubeconfig makes; reset() drops it. */
class SharedPool {
  private shared: HttpAgent | undefined;
  constructor(private readonly maxSockets: number) {}

  /** The pool to use in place of built (same TLS options). */
  for(built: unknown): HttpAgent {
    this.shared ??=
      built instanceof HttpsAgent
        ? new HttpsAgent({ ...(built as HttpsAgent & { options: object }).options, keepAlive: true, maxSockets: this.maxSockets })
        : new HttpAgent({ keepAlive: true, maxSockets: this.maxSockets });
    return this.shared;
  }

  /** Resets the pool if agent is the current one (a request on an older pool timing out changes nothing). */
  reset(agent: HttpAgent | undefined): void {
    if (!agent || agent !== this.shared) return;
    this.shared = undefined; // the next request builds a fresh pool
    resetSockets(agent);
  }
}

/** API clients (from the returned factory) over one keep-alive pool with a deadline per request. */
export function keepAliveApis(kc: KubeConfig, options: KeepAliveOptions = {}): ApiFactory {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const pool = new SharedPool(options.maxSockets ?? 32);
  const http = new DeadlineHttp(options.requestTimeoutMs ?? 30_000, (agent) => pool.reset(agent));
  const credentials = new CachedCredentials(kc, cluster.server, options.authRefreshMs ?? AUTH_REFRESH_MS);
  const auth: SecurityAuthentication = {
    getName: () => 'default',
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      const built = await credentials.apply(context);
      context.setAgent(replaceable(built) ? pool.for(built) : (built as HttpAgent));
    },
  };
  return (api) =>
    new api(
      createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: auth }, httpApi: http }),
    );
}
