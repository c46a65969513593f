// Answers the scheduler's UDP probes (api/probewire.ts) on the status server's port number, over
// UDP: one datagram in, one out, no connection, no HTTP parsing. HTTP GET /healthz stays for
// kubelet and for schedulers that still probe over HTTP. Each probe is answered by the agent's
// answerProbe(identity), which also records it for the fencing rule, as /healthz does.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { decodeProbe, encodeAnswer } from '../api/probewire.js';

export interface ProbeAnswer {
  ok: boolean;
  node: string;
  draining: boolean;
}

/** The answer datagram for one received datagram, or null when it is not a probe (dropped). */
export function probeAnswer(datagram: Buffer, answer: (identity: string) => ProbeAnswer): Buffer | null {
  const probe = decodeProbe(datagram);
  if (!probe) return null;
  const a = answer(probe.identity);
  return encodeAnswer({ seq: probe.seq, ok: a.ok, draining: a.draining, node: a.node });
}

export interface ProbeResponder {
  port: number;
  close(): Promise<void>;
}

export interface ProbeResponderOptions {
  /** As the status server's host: '' or '0.0.0.0' or '::' listen everywhere. */
  host: string;
  port: number;
  answer(identity: string): ProbeAnswer;
  onError?(err: Error): void;
}

/** Binds the responder; '' / '::' take both families (a dual-stack socket), as the HTTP server does. */
export async function startProbeResponder(options: ProbeResponderOptions): Promise<ProbeResponder> {
  const host = options.host === '' ? '::' : options.host;
  const socket: Socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
  socket.on('message', (msg, rinfo) => {
    const out = probeAnswer(msg, options.answer);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', (err) => options.onError?.(err));
  return {
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
