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
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import {
  ApiException,
  createConfiguration,
  HttpMethod,
  Observable,
  type HttpLibrary,
  ServerConfiguration,
  type Configuration,
  type ConfigurationOptions,
  type KubeConfig,
  RequestContext,
  ResponseContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';

const gunzipAsync = promisify(gunzip);

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

/** A response's headers as client-node reads them: lower-case names, repeated values joined. */
function headersOf(res: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers))
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/** The whole body of a response, gunzipped if the apiserver compressed it (it does above 128 KiB). */
function bodyOf(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('error', reject);
    res.on('end', () => {
      const raw = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      resolve(res.headers['content-encoding'] === 'gzip' ? gunzipAsync(raw) : raw);
    });
  });
}

/**
 * client-node's HttpLibrary over node:http(s) itself, with a deadline per request; onTimeout
 * hears of the agent that hung. client-node still builds every request (path, query, headers,
 * auth, body) and reads every response (status, ApiException, deserialising); only the
 * transport is this one. Its default transport, node-fetch, costs more CPU per request than
 * the request itself on a small write (a Request and Headers object, a PassThrough stream for
 * each body, an AbortSignal.any and an AbortController for each deadline): about a third of
 * the scheduler's CPU in a 5,000-Service cold start. The deadline covers the whole exchange,
 * body included; a signal on the request (withSignal) aborts it too. A FormData body (no
 * Kubernetes call sends one) is refused.
 */
export class NodeHttp implements HttpLibrary {
  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: (agent: HttpAgent | undefined) => void,
  ) {}

  send(request: RequestContext): Observable<ResponseContext> {
    const body = request.getBody();
    if (body !== undefined && typeof body !== 'string' && !(body instanceof URLSearchParams))
      return new Observable(Promise.reject(new Error('NodeHttp: a FormData body is not supported')));
    return new Observable(this.exchange(request, body === undefined ? undefined : String(body)));
  }

  private exchange(request: RequestContext, body: string | undefined): Promise<ResponseContext> {
    const url = new URL(request.getUrl());
    const agent = request.getAgent() as HttpAgent | undefined;
    const headers: Record<string, string | number> = { 'accept-encoding': 'gzip', ...request.getHeaders() };
    if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
    const signal = request.getSignal();
    return new Promise<ResponseContext>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method: request.getHttpMethod(), headers, agent }, (res) => {
        bodyOf(res).then((data) => {
          if (settled) return;
          settled = true;
          done();
          resolve(
            new ResponseContext(res.statusCode ?? 0, headersOf(res), { text: async () => data.toString('utf8'), binary: async () => data }),
          );
        }, fail);
      });
      const timer = setTimeout(() => {
        fail(new Error(`request timed out after ${this.timeoutMs} ms`));
        this.onTimeout(agent);
      }, this.timeoutMs);
      const aborted = (): void => fail(signal?.reason instanceof Error ? signal.reason : new Error('request aborted'));
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', aborted);
      };
      let settled = false;
      function fail(err: unknown): void {
        if (settled) return;
        settled = true;
        done();
        req.destroy();
        reject(err);
      }
      req.on('error', fail);
      if (signal?.aborted) return aborted();
      signal?.addEventListener('abort', aborted, { once: true });
      req.end(body);
    });
  }
}

/**
 * An https.Agent that works out each target's pool key once. Node's getName() appends every TLS
 * option to host:port on every request, the kubeconfig's CA (a Buffer) decoded to a string each
 * time: about 9 KB of garbage and 15 us of CPU per request, 11% of what a 5,000-Service cold
 * start allocated. This agent's TLS options are its own, the same for every request (addRequest
 * lays them over the request's), so one target's key never changes.
 */
export class KeyedHttpsAgent extends HttpsAgent {
  private readonly names = new Map<string, string>();

  override getName(options?: Parameters<HttpsAgent['getName']>[0]): string {
    const target = HttpAgent.prototype.getName.call(this, options);
    let name = this.names.get(target);
    if (name === undefined) {
      name = super.getName(options);
      this.names.set(target, name);
    }
    return name;
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
        ? new KeyedHttpsAgent({ ...(built as HttpsAgent & { options: object }).options, keepAlive: true, maxSockets: this.maxSockets })
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

/** One call with a JSON body and answer, made without client-node's typed machinery. */
export interface JsonRequest {
  method: HttpMethod;
  /** Path from the server's root, e.g. /api/v1/namespaces/ns/services/web/status. */
  path: string;
  /** None for a GET. */
  body?: unknown;
  /** Content-Type of the body (default application/json; a merge patch names its own). */
  contentType?: string;
}

/** Sends a JsonRequest; resolves to the parsed answer, rejects with ApiException (code, body as text) as client-node does. */
export type JsonCall = (request: JsonRequest) => Promise<unknown>;

/** Typed API clients and raw JSON calls, over one keep-alive pool with a deadline per request. */
export interface KeepAliveClient {
  apis: ApiFactory;
  json: JsonCall;
}

/** API clients (from the returned factory) over one keep-alive pool with a deadline per request. */
export function keepAliveApis(kc: KubeConfig, options: KeepAliveOptions = {}): ApiFactory {
  return keepAliveClient(kc, options).apis;
}

export function keepAliveClient(kc: KubeConfig, options: KeepAliveOptions = {}): KeepAliveClient {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const pool = new SharedPool(options.maxSockets ?? 32);
  const http = new NodeHttp(options.requestTimeoutMs ?? 30_000, (agent) => pool.reset(agent));
  const credentials = new CachedCredentials(kc, cluster.server, options.authRefreshMs ?? AUTH_REFRESH_MS);
  const auth: SecurityAuthentication = {
    getName: () => 'default',
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      const built = await credentials.apply(context);
      context.setAgent(replaceable(built) ? pool.for(built) : (built as HttpAgent));
    },
  };
  const apis: ApiFactory = (api) =>
    new api(
      createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: auth }, httpApi: http }),
    );
  return { apis, json: jsonCall(cluster.server, http, auth) };
}

/**
 * Raw JSON calls through the same transport, credentials and pool as the typed clients (so the
 * same deadline and pool reset). For the scheduler's two writes per Service in a cold start and
 * its lists: a typed call also builds a request through an observable chain, parses media types
 * and turns the answer into model classes (about 0.05 ms of CPU per write more than this, and a
 * typed copy of every listed Service).
 */
export function jsonCall(server: string, http: HttpLibrary, auth: SecurityAuthentication): JsonCall {
  return async ({ method, path, body, contentType = 'application/json' }) => {
    const context = new RequestContext(server + path, method);
    context.setHeaderParam('Accept', 'application/json');
    if (body !== undefined) {
      context.setHeaderParam('Content-Type', contentType);
      context.setBody(JSON.stringify(body));
    }
    await auth.applySecurityAuthentication(context);
    const response = await http.send(context).toPromise();
    const text = await response.body.text();
    const code = response.httpStatusCode;
    if (code < 200 || code > 299) throw new ApiException(code, `HTTP ${code} from ${method} ${path}`, text, response.headers);
    return JSON.parse(text) as unknown;
  };
}
