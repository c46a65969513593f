// Runs inside a lab namespace: listens on that namespace's 127.0.0.1:<port> and forwards each
// connection to a Unix socket (a path, so it is reachable from every network namespace).
// Usage: node --import tsx test/lab/forwarder.ts <port> <socket path> [delay ms]. Prints "ready"
// when listening. SIGUSR2 turns the delay on and off: every chunk, both ways, is held that long
// (a slow API path without netem, which this kernel lacks).
import { createConnection, createServer } from 'node:net';
import { delayedPipe } from './delay.js';

const [portText, socketPath, delayText] = process.argv.slice(2);
const port = Number(portText);
const delayWhenSlow = Number(delayText ?? 1000);
if (!socketPath || !Number.isInteger(port) || !Number.isFinite(delayWhenSlow)) {
  process.stderr.write('usage: forwarder.ts <port> <socket path> [delay ms]\n');
  process.exit(2);
}
let slow = false;
process.on('SIGUSR2', () => {
  slow = !slow;
  process.stdout.write(slow ? `slow ${delayWhenSlow}\n` : 'fast\n');
});
const delay = (): number => (slow ? delayWhenSlow : 0);
const server = createServer((client) => {
  const upstream = createConnection(socketPath);
  delayedPipe(client, upstream, delay);
  delayedPipe(upstream, client, delay);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => server.close(() => process.exit(0)));
