// A client that asks url every intervalMs from inside a lab namespace (test/e2e/request-loop.ts),
// logging every answer, for the process lab and the real-node lab alike.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../controlplane/harness.js';
import { CLIENT_TIMEOUT_MS, parseRequestLog, type RequestResult } from '../support/downtime.js';
import type { Lab, Netns } from './lab.js';

const REQUEST_LOOP = fileURLToPath(new URL('../e2e/request-loop.ts', import.meta.url));

export interface RequestLoop {
  /** Results so far, in completion order. */
  results(): RequestResult[];
  /** Waits until the loop has seen n successful answers in a row (it starts in about a second). */
  steady(n?: number, timeoutMs?: number): Promise<void>;
  /**
   * Waits until every request started before the call has ended and a request started after
   * them has been answered, so a downtime read next counts the failures still in flight and
   * finds the answer after them.
   */
  settled(timeoutMs?: number): Promise<void>;
  /** Stops the loop and returns every request's result, in completion order. */
  stop(): Promise<RequestResult[]>;
}

export interface RequestTiming {
  intervalMs: number;
  maxMs: number;
  steadyTimeoutMs: number;
}

export function startRequestLoop(lab: Lab, ns: Netns, url: string, timing: RequestTiming): RequestLoop {
  const { intervalMs, maxMs, steadyTimeoutMs } = timing;
  const proc = lab.spawn(ns, [process.execPath, '--import', 'tsx', REQUEST_LOOP, url, String(intervalMs), String(maxMs)], {
    label: `requests-${Date.now().toString(36)}`,
  });
  const results = (): RequestResult[] => parseRequestLog(readFileSync(proc.logFile, 'utf8'));
  return {
    results,
    async steady(n = 10, timeoutMs = steadyTimeoutMs) {
      await waitFor(
        `${n} answers in a row from ${url}`,
        async () => {
          const tail = results().slice(-n);
          return tail.length === n && tail.every((r) => r.ok);
        },
        timeoutMs,
        50,
      );
    },
    async settled(timeoutMs = steadyTimeoutMs) {
      // A request started this much later completes after every one started before the call.
      const after = Date.now() + CLIENT_TIMEOUT_MS + 50;
      await waitFor(
        'requests in flight ended, then one answered',
        async () => results().some((r) => r.ok && (r.s ?? r.t) > after),
        timeoutMs,
        50,
      );
    },
    async stop() {
      proc.signal('SIGTERM');
      await proc.exited;
      return results();
    },
  };
}
