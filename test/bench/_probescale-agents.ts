// Simulated agents for the probe-scale benchmark, as one separate process so that their cost is
// not counted in the bench or the schedulers: agent i answers on 127.77.<i/250>.<1+i%250>, every
// one on the same port number, over HTTP GET /healthz (as agent/agent.ts healthz() answers) and
// over UDP (as agent/proberesponder.ts answers), both on that port.
// Usage: node --import tsx test/bench/_probescale-agents.ts <count> <port>; prints "ready" once
// every endpoint listens, and a JSON line of probe counts by scheduler identity on SIGUSR2; exits on SIGTERM or stdin end.
import { createServer, type Server } from 'node:http';
import { createSocket, type Socket } from 'node:dgram';
import { probeAnswer } from '../../agent/proberesponder.js';

export const SIM_NODE_PREFIX = 'ps-';

/** The loopback address of simulated agent i (0-based). */
export function simAddress(i: number): string {
  return `127.77.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/** Probes answered, by the identity of the scheduler replica that sent them. */
type Counts = Record<string, { http: number; udp: number }>;

function count(counts: Counts, identity: string, via: 'http' | 'udp'): void {
  const c = (counts[identity] ??= { http: 0, udp: 0 });
  c[via]++;
}

async function serveHttp(node: string, address: string, port: number, counts: Counts): Promise<Server> {
  const server = createServer((req, res) => {
    const who = req.headers['x-ipcontroller-probe'];
    if (typeof who === 'string') count(counts, who, 'http');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, node, draining: false }));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return server;
}

async function serveUdp(node: string, address: string, port: number, counts: Counts): Promise<Socket> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    const answer = probeAnswer(msg, (identity) => {
      count(counts, identity, 'udp');
      return { ok: true, node, draining: false };
    });
    if (!answer) return;
    socket.send(answer, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve());
  });
  return socket;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2]);
  const port = Number(process.argv[3]);
  const counts: Counts = {};
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const node = `${SIM_NODE_PREFIX}${i}`;
    servers.push(await serveHttp(node, simAddress(i), port, counts));
    sockets.push(await serveUdp(node, simAddress(i), port, counts));
  }
  process.on('SIGUSR2', () => process.stdout.write(`${JSON.stringify(counts)}\n`));
  const quit = (): void => {
    for (const s of servers) s.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.stdin.on('end', quit);
  process.stdin.resume();
  process.stdout.write('ready\n');
}

if (process.argv[1]?.endsWith('_probescale-agents.ts')) await main();
