// The client side of a downtime measurement, run inside the client namespace: one fresh HTTP
// connection to the URL every interval, each with a short timeout, for a bounded time or
// until SIGTERM. Writes one JSON line per finished request: {t, s, ok, body|error}, where
// t is the completion and s the start time in ms since the epoch. Usage: request-loop.ts <url> <intervalMs> <maxMs>
import { request } from 'node:http';
import { CLIENT_TIMEOUT_MS } from '../support/downtime.js';

const [url, intervalText, maxText] = process.argv.slice(2);
if (!url || !intervalText || !maxText) {
  process.stderr.write('usage: request-loop.ts <url> <intervalMs> <maxMs>\n');
  process.exit(2);
}
const intervalMs = Number(intervalText);
const deadline = Date.now() + Number(maxText);
const timeoutMs = CLIENT_TIMEOUT_MS;
let stopping = false;
process.on('SIGTERM', () => (stopping = true));

function once(): void {
  const s = Date.now();
  const emit = (result: { ok: boolean; body?: string; error?: string }): void => {
    process.stdout.write(JSON.stringify({ t: Date.now(), s, ...result }) + '\n');
  };
  const req = request(url as string, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
    let body = '';
    res.on('data', (c: Buffer) => (body += c.toString()));
    res.on('end', () => emit({ ok: res.statusCode === 200, body: body.trim() }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (err) => emit({ ok: false, error: err.message }));
  req.end();
}

const timer = setInterval(() => {
  if (stopping || Date.now() > deadline) {
    clearInterval(timer);
    // Let requests in flight finish (each is bounded by timeoutMs), then leave.
    setTimeout(() => process.exit(0), timeoutMs + 50);
    return;
  }
  once();
}, intervalMs);
