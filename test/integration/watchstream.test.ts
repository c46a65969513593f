// StreamWatch (lib/watchstream.ts), the list+watch loop's watch in both programs, against a
// loopback HTTP server that answers as the apiserver does: events arrive whole and in order
// however the stream is cut, a refused watch ends with its status code, the server ending the
// stream ends the watch cleanly, and an abort ends it and closes the connection.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { StreamWatch } from '../../lib/watchstream.js';
import { waitFor } from '../controlplane/harness.js';

async function serve(
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; kc: KubeConfig; urls: string[] }> {
  const urls: string[] = [];
  const server = createServer((req, res) => {
    urls.push(req.url ?? '');
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${address.port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'tok' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { server, kc, urls };
}

function watched(kc: KubeConfig, params: Record<string, string | number | boolean>) {
  const events: Array<[string, unknown]> = [];
  let ended: { err: unknown } | undefined;
  const started = new StreamWatch(kc).watch(
    '/api/v1/services',
    params,
    (type, object) => events.push([type, object]),
    (err) => {
      ended = { err };
    },
  );
  return { events, started, ended: () => ended };
}

test('events cut anywhere arrive whole and in order; the server ending the stream ends the watch with no error', async () => {
  const lines = ['{"type":"ADDED","object":{"n":1}}', '{"type":"MODIFIED","object":{"n":2}}', '{"type":"BOOKMARK","object":{"n":3}}'];
  const text = lines.join('\n') + '\n';
  const { server, kc, urls } = await serve((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    // Cut in 7-byte pieces, each written on its own turn, so lines span chunks.
    let at = 0;
    const next = (): void => {
      if (at >= text.length) return void res.end();
      res.write(text.slice(at, (at += 7)));
      setImmediate(next);
    };
    next();
  });
  const w = watched(kc, { resourceVersion: '5', allowWatchBookmarks: true, timeoutSeconds: 20 });
  await waitFor('the watch ended', async () => w.ended() !== undefined, 10_000, 5);
  assert.equal(w.events, [
    ['ADDED', { n: 1 }],
    ['MODIFIED', { n: 2 }],
    ['BOOKMARK', { n: 3 }],
  ]);
  assert.is(w.ended()?.err, null);
  const url = new URL(urls[0] ?? '', 'http://x');
  assert.is(url.searchParams.get('watch'), 'true');
  assert.is(url.searchParams.get('resourceVersion'), '5');
  assert.is(url.searchParams.get('timeoutSeconds'), '20');
  server.close();
});

test('a refused watch ends with an error that carries the status code', async () => {
  const { server, kc } = await serve((_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end('{"kind":"Status","code":403}');
  });
  const w = watched(kc, {});
  await waitFor('the watch ended', async () => w.ended() !== undefined, 10_000, 5);
  assert.is((w.ended()?.err as { statusCode?: number }).statusCode, 403);
  assert.equal(w.events, []);
  server.close();
});

test('the token goes out; an abort ends the watch and closes its connection', async () => {
  let auth: string | undefined;
  let closed = false;
  const { server, kc } = await serve((req, res) => {
    auth = req.headers.authorization;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"type":"ADDED","object":{}}\n');
    res.on('close', () => (closed = true));
  });
  const w = watched(kc, {});
  await waitFor('the first event', async () => w.events.length === 1, 10_000, 5);
  assert.is(auth, 'Bearer tok');
  (await w.started).abort();
  await waitFor('the watch ended and the server saw the connection close', async () => w.ended() !== undefined && closed, 10_000, 5);
  server.close();
});

test.run();
