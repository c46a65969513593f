// Runs inside a lab namespace: listens on that namespace's 127.0.0.1:<port> and forwards each
// connection to a Unix socket (a path, so it is reachable from every network namespace).
// Usage: node --import tsx test/lab/forwarder.ts <port> <socket path>. Prints "ready" when listening.
import { createConnection, createServer } from 'node:net';
import { splice } from './splice.js';

const [portText, socketPath] = process.argv.slice(2);
const port = Number(portText);
if (!socketPath || !Number.isInteger(port)) {
  process.stderr.write('usage: forwarder.ts <port> <socket path>\n');
  process.exit(2);
}
const server = createServer((client) => splice(client, createConnection(socketPath)));
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => server.close(() => process.exit(0)));
