// NodeHttp (lib/keepalive.ts), client-node's transport in both programs, against a loopback
// HTTP server: what client-node sends arrives as sent, the answer comes back whole (gunzipped
// when compressed), errors stay ApiExceptions, and a request past its deadline or aborted by
// its signal ends with an error (the deadline also hands the hung pool to the reset). jsonCall,
// the scheduler's raw JSON writes over the same transport, sends what it is given and fails as
// client-node does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { ApiException, CoreV1Api, HttpMethod, RequestContext, createConfiguration, ServerConfiguration } from '@kubernetes/client-node';
import { isConflict } from '../../api/client.js';
import { jsonCall, NodeHttp } from '../../lib/keepalive.js';
import { waitFor } from '../controlplane/harness.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

async function serve(answer: (req: Seen, res: ServerResponse) => void): Promise<{ server: Server; base: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(s);
      answer(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, base: `http://127.0.0.1:${address.port}`, seen };
}

const json = (res: ServerResponse, code: number, body: unknown): void => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

function core(base: string, http: NodeHttp): CoreV1Api {
  return new CoreV1Api(createConfiguration({ baseServer: new ServerConfiguration(base, {}), httpApi: http }));
}

test('a patch goes out as client-node built it and its answer comes back as a typed object', async () => {
  const { server, base, seen } = await serve((req, res) =>
    json(res, 200, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'a', namespace: 'ns', resourceVersion: '7' },
      status: JSON.parse(req.body).status,
    }),
  );
  const body = { metadata: { resourceVersion: '6' }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } } };
  const written = await core(base, new NodeHttp(5_000, () => undefined)).patchNamespacedServiceStatus({ namespace: 'ns', name: 'a', body });
  assert.is(seen[0]?.method, 'PATCH');
  assert.is(seen[0]?.url, '/api/v1/namespaces/ns/services/a/status');
  assert.equal(JSON.parse(seen[0]?.body ?? ''), body);
  assert.is(seen[0]?.headers['content-length'], String(Buffer.byteLength(seen[0]?.body ?? '')));
  assert.is(written.metadata?.resourceVersion, '7');
  assert.is(written.status?.loadBalancer?.ingress?.[0]?.ip, '192.0.2.1');
  server.close();
});

test('a compressed answer is gunzipped; an error status is an ApiException with the code', async () => {
  const big = { kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '9' }, items: [] };
  const { server, base } = await serve((req, res) => {
    if (req.url.startsWith('/api/v1/services')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify(big)));
      return;
    }
    json(res, 409, { kind: 'Status', apiVersion: 'v1', code: 409, reason: 'Conflict', message: 'the object has been modified' });
  });
  const api = core(base, new NodeHttp(5_000, () => undefined));
  const list = await api.listServiceForAllNamespaces();
  assert.is(list.metadata?.resourceVersion, '9');
  const err = await api.patchNamespacedServiceStatus({ namespace: 'ns', name: 'a', body: {} }).catch((e: unknown) => e);
  assert.instance(err, ApiException);
  assert.is((err as ApiException<unknown>).code, 409);
  server.close();
});

test('past its deadline a request fails and the agent it hung on is handed over for a reset', async () => {
  const { server, base } = await serve(() => undefined); // never answers
  const agent = new Agent({ keepAlive: true });
  const hung: Array<Agent | undefined> = [];
  const request = new RequestContext(`${base}/api/v1/namespaces`, HttpMethod.GET);
  request.setAgent(agent);
  const err = await new NodeHttp(200, (a) => hung.push(a))
    .send(request)
    .toPromise()
    .catch((e: unknown) => e);
  assert.match(String(err), /timed out after 200 ms/);
  assert.equal(hung, [agent]);
  agent.destroy();
  server.closeAllConnections();
  server.close();
});

test('a request whose signal aborts fails at once with the reason', async () => {
  const { server, base, seen } = await serve(() => undefined);
  const ctl = new AbortController();
  const request = new RequestContext(`${base}/api/v1/namespaces`, HttpMethod.GET);
  request.setSignal(ctl.signal);
  const pending = new NodeHttp(30_000, () => undefined)
    .send(request)
    .toPromise()
    .catch((e: unknown) => e);
  await waitFor('the request arrived', async () => seen.length === 1, 10_000, 5);
  ctl.abort(new Error('leadership lost'));
  assert.match(String(await pending), /leadership lost/);
  server.closeAllConnections();
  server.close();
});

test('jsonCall sends the body with its content type and auth, and answers with the parsed JSON', async () => {
  const { server, base, seen } = await serve((req, res) =>
    json(res, 200, { metadata: { resourceVersion: '8' }, echo: JSON.parse(req.body) }),
  );
  const auth = {
    getName: () => 'default',
    applySecurityAuthentication: async (c: RequestContext): Promise<void> => c.setHeaderParam('Authorization', 'Bearer t'),
  };
  const call = jsonCall(base, new NodeHttp(5_000, () => undefined), auth);
  const body = { metadata: { resourceVersion: '7' }, status: { loadBalancer: { ingress: [{ ip: '2001:db8::a' }] } } };
  const answer = await call({
    method: HttpMethod.PATCH,
    path: '/api/v1/namespaces/ns/services/a/status',
    body,
    contentType: 'application/merge-patch+json',
  });
  assert.equal(answer, { metadata: { resourceVersion: '8' }, echo: body });
  assert.is(seen[0]?.method, 'PATCH');
  assert.is(seen[0]?.url, '/api/v1/namespaces/ns/services/a/status');
  assert.is(seen[0]?.headers['content-type'], 'application/merge-patch+json');
  assert.is(seen[0]?.headers.authorization, 'Bearer t');
  assert.is(seen[0]?.headers.accept, 'application/json');
  server.close();
});

test('jsonCall: an error status is an ApiException with the code and the Status as text, as client-node gives it', async () => {
  const status = { kind: 'Status', apiVersion: 'v1', code: 409, reason: 'Conflict', message: 'the object has been modified' };
  const { server, base } = await serve((_req, res) => json(res, 409, status));
  const auth = { getName: () => 'default', applySecurityAuthentication: async (): Promise<void> => undefined };
  const err = await jsonCall(
    base,
    new NodeHttp(5_000, () => undefined),
    auth,
  )({ method: HttpMethod.POST, path: '/apis/g/v1/x', body: {} }).catch((e: unknown) => e);
  assert.ok(isConflict(err));
  assert.equal(JSON.parse(String((err as ApiException<unknown>).body)), status);
  server.close();
});

test.run();
