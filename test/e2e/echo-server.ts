// Stands in for kube-proxy and the pod behind a Service inside a lab node namespace: answers
// every HTTP request with the node's name, on every address of the namespace (so also on the
// external IPs the agent adds). Usage: echo-server.ts <node-name> <port>
import { createServer } from 'node:http';

const [nodeName, portText] = process.argv.slice(2);
if (!nodeName || !portText) {
  process.stderr.write('usage: echo-server.ts <node-name> <port>\n');
  process.exit(2);
}
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
  res.end(`${nodeName}\n`);
});
server.listen(Number(portText), '::', () => process.stdout.write(`listening ${portText}\n`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => server.close(() => process.exit(0)));
