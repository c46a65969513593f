// resetSocket (the scheduler's keep-alive pool reset after a request deadline): plain TCP and
// TLS connections both end and neither throws (TLS once did, and crashed the scheduler on its
// first request timeout in the chaos matrix).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer as createTcpServer, connect as connectTcp, type Server, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { waitFor } from '../controlplane/harness.js';
import { resetSocket } from '../../lib/keepalive.js';

/** A TCP server that records how each connection ended. */
async function listen(): Promise<{ server: Server; port: number; ends: string[]; accepted: () => number }> {
  const ends: string[] = [];
  let accepted = 0;
  const server = createTcpServer((c) => {
    accepted++;
    c.on('data', () => undefined);
    c.on('error', (err: NodeJS.ErrnoException) => ends.push(err.code ?? 'error'));
    c.on('end', () => ends.push('FIN'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, ends, accepted: () => accepted };
}

async function connected(socket: Socket, event: string): Promise<void> {
  socket.on('error', () => undefined);
  await new Promise<void>((r) => socket.once(event, () => r()));
}

test('a plain TCP connection is reset: the peer reads ECONNRESET', async () => {
  const { server, port, ends, accepted } = await listen();
  const socket = connectTcp(port, '127.0.0.1');
  await connected(socket, 'connect');
  await waitFor('the server accepted it', async () => accepted() === 1, 10_000, 10);
  resetSocket(socket);
  await waitFor('the peer sees the connection end', async () => ends.length > 0, 10_000, 20);
  assert.equal(ends, ['ECONNRESET']);
  server.close();
});

// The RST itself goes out through the TLS wrap's TCP handle (a Node internal); mid-handshake,
// as here, the peer may see a FIN first. What matters is that it never throws: it did.
test('a TLS connection (no handshake answer, as a black-holed apiserver) is ended without throwing', async () => {
  const { server, port, ends, accepted } = await listen();
  const socket = connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await connected(socket, 'connect');
  await waitFor('the server accepted it', async () => accepted() === 1, 10_000, 10);
  assert.not.throws(() => resetSocket(socket));
  await waitFor('the peer sees the connection end', async () => ends.length > 0, 10_000, 20);
  assert.ok(['ECONNRESET', 'FIN'].includes(ends[0] ?? ''), ends.join());
  await waitFor('the socket is destroyed', async () => socket.destroyed, 10_000, 20);
  server.close();
});

test.run();
