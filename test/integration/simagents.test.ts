// The probe-scale benchmark's simulated agents (test/bench/simagents, a Go program): built as the
// bench builds it, started with a few addresses, they answer the scheduler's UDP probe in the
// wire format of api/probewire.ts and HTTP /healthz as an agent does, each as the right node,
// and count what they answered by scheduler identity. Needs Go at /usr/local/go (as the
// control-plane builds do) and no apiserver.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { decodeAnswer, encodeProbe, type AnswerDatagram } from '../../api/probewire.js';
import { PROBE_HEADER, PROBE_PATH } from '../../api/probe.js';
import { freePort } from '../controlplane/harness.js';
import { SIM_NODE_PREFIX, simAddress, startSimAgents, type SimAgents } from '../bench/_simagents.js';

const COUNT = 252; // agent 250 is the first on the second /24 (127.77.1.1)
let agents: SimAgents | undefined;
let port = 0;

test.before(async () => {
  port = await freePort();
  agents = await startSimAgents(COUNT, port);
});

test.after(async () => {
  await agents?.stop();
});

/** Sends datagrams from one socket and resolves with the first answer, or rejects after a deadline. */
function exchange(to: string, datagrams: Buffer[], deadlineMs = 10_000): Promise<{ answer: AnswerDatagram | null; from: RemoteInfo }> {
  const socket = createSocket('udp4');
  return new Promise<{ answer: AnswerDatagram | null; from: RemoteInfo }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from ${to} within ${deadlineMs}ms`)), deadlineMs);
    socket.once('message', (msg, from) => {
      clearTimeout(timer);
      resolve({ answer: decodeAnswer(msg), from });
    });
    for (const d of datagrams) socket.send(d, port, to);
  }).finally(() => socket.close());
}

test('a UDP probe is answered with its sequence, ok, and the name of the node at that address', async () => {
  for (const i of [0, 1, 250, COUNT - 1]) {
    const seq = 0xfffffff0 + i;
    const { answer, from } = await exchange(simAddress(i), [encodeProbe({ seq, identity: 'it-udp' })]);
    assert.equal(answer, { seq: seq >>> 0, ok: true, draining: false, node: `${SIM_NODE_PREFIX}${i}` }, `agent ${i}`);
    assert.is(from.address, simAddress(i), 'answered from the probed address');
    assert.is(from.port, port);
  }
});

test('what is not a probe gets no answer: the first answer echoes the probe sent after it', async () => {
  const junk = [Buffer.from('GET /healthz HTTP/1.1\r\n'), encodeProbe({ seq: 1, identity: 'it-junk' }).subarray(0, 12)];
  const { answer } = await exchange(simAddress(2), [...junk, encodeProbe({ seq: 42, identity: 'it-udp' })]);
  assert.is(answer?.seq, 42);
  assert.is(answer?.node, `${SIM_NODE_PREFIX}2`);
});

test('HTTP GET /healthz answers as the agent does, as the node at that address', async () => {
  const res = await fetch(`http://${simAddress(3)}:${port}${PROBE_PATH}`, { headers: { [PROBE_HEADER]: 'it-http' } });
  assert.is(res.status, 200);
  assert.is(await res.text(), JSON.stringify({ ok: true, node: `${SIM_NODE_PREFIX}3`, draining: false }));
});

test('probes answered are counted by scheduler identity and printed on SIGUSR2', async () => {
  const counts = await agents?.counts();
  assert.equal(counts?.['it-udp'], { http: 0, udp: 5 });
  assert.equal(counts?.['it-http'], { http: 1, udp: 0 });
  assert.is(counts?.['it-junk'], undefined, 'a cut probe is not counted');
});

test('it exits when its stdin ends', async () => {
  const child = agents?.child;
  child?.stdin?.end();
  const code = await new Promise<number | null>((resolve) => {
    if (child?.exitCode !== null) resolve(child?.exitCode ?? null);
    child?.once('exit', (c) => resolve(c));
  });
  assert.is(code, 0);
});

test.run();
