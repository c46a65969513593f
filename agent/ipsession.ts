// One long-lived `ip -j -force -batch -` for the reconcile's address reads and changes, instead
// of a process per read and per change. Why: spawning from the agent (a Node process of 150-250
// MB) cost 3-5 ms on a quiet host and 27 ms p50 / 75 ms p90 with other work on both cores
// (measured from a 234 MB process at load 15), twice per reconcile, on the path from a moved
// claim to its address being up.
//
// Framing: ip runs batch lines one at a time, in order, and with -force goes on after a failed
// one, printing the error and "Command failed -:N" (N counts the lines the process has read).
// Every request ends with MARK_LINE, which ip cannot parse: its "Command failed -:N" on stderr
// says that every earlier line has run. A JSON command's output is one line on stdout, flushed
// before the next line runs. Pure: requestLines, replyOf; IpSession runs them.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { parseBatchErrors } from './addresses.js';

/** A line ip cannot parse (it names no object), so it fails at once without a kernel call. */
export const MARK_LINE = 'ipcontroller-mark';

/** How long one request may take before the process is taken as hung and ended. */
export const SESSION_TIMEOUT_MS = 10_000;

export interface SessionReply {
  /** Line index within the request (0-based) -> error text, for the lines that failed. */
  errors: Map<number, string>;
  /** Each JSON output line, in order. */
  json: string[];
}

/** The lines to write for a request: its lines and the mark. Lines with a newline would shift the count. */
export function requestLines(lines: string[]): string {
  for (const line of lines) if (/[\n\r]/.test(line) || line.trim() === '') throw new Error(`bad batch line ${JSON.stringify(line)}`);
  return [...lines, MARK_LINE].join('\n') + '\n';
}

/**
 * The reply to a request whose first line is the session's line `first` (0-based) with `count`
 * lines, from the stderr and stdout text read since it was written: null until the mark's
 * failure has come and the expected JSON lines with it.
 */
export function replyOf(stderr: string, stdout: string, req: { first: number; count: number; jsonLines: number }): SessionReply | null {
  const failed = parseBatchErrors(stderr);
  if (!failed.has(req.first + req.count)) return null;
  // Only lines ended by a newline: a pipe may hand over a long JSON line in pieces.
  const json = stdout
    .split('\n')
    .slice(0, -1)
    .filter((l) => l.trim() !== '');
  if (json.length < req.jsonLines) return null;
  const errors = new Map<number, string>();
  for (let i = 0; i < req.count; i++) {
    const error = failed.get(req.first + i);
    if (error !== undefined) errors.set(i, error);
  }
  return { errors, json };
}

interface Pending {
  first: number;
  count: number;
  jsonLines: number;
  resolve(reply: SessionReply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * The process and one request at a time (requests queue). A request that fails (the process
 * exited or hung) rejects and the next starts a new process.
 */
export class IpSession {
  private child: ChildProcessWithoutNullStreams | undefined;
  private lines = 0;
  private stderr = '';
  private stdout = '';
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** ipArgs: global options before the batch's (a test runs it in its namespace with -n). */
  constructor(private readonly opts: { timeoutMs?: number; ipArgs?: string[] } = {}) {}

  /** Runs lines in order; jsonLines: how many of them print JSON (each one line). */
  run(lines: string[], jsonLines = 0): Promise<SessionReply> {
    const next = this.queue.then(() => this.runNow(lines, jsonLines));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Ends the process (the agent is stopping). */
  close(): void {
    this.closed = true;
    this.end(new Error('ip session closed'));
  }

  private runNow(lines: string[], jsonLines: number): Promise<SessionReply> {
    if (this.closed) return Promise.reject(new Error('ip session closed'));
    const text = requestLines(lines);
    const child = (this.child ??= this.open());
    return new Promise<SessionReply>((resolve, reject) => {
      const timeoutMs = this.opts.timeoutMs ?? SESSION_TIMEOUT_MS;
      const timer = setTimeout(() => this.end(new Error(`ip -batch did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.pending = { first: this.lines, count: lines.length, jsonLines, resolve, reject, timer };
      this.stderr = '';
      this.stdout = '';
      this.lines += lines.length + 1;
      child.stdin.write(text);
    });
  }

  private open(): ChildProcessWithoutNullStreams {
    const child = spawn('ip', [...(this.opts.ipArgs ?? []), '-j', '-force', '-batch', '-']);
    this.lines = 0;
    child.stdin.on('error', () => undefined); // it exited: 'close' ends the request
    child.stdout.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      this.check();
    });
    child.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      this.check();
    });
    child.on('error', (err) => this.end(new Error(`ip -batch: ${err.message}`, { cause: err }), child));
    child.on('close', (code) => this.end(new Error(`ip -batch exited ${code ?? 'on a signal'}`), child));
    return child;
  }

  private check(): void {
    const p = this.pending;
    if (!p) return;
    const reply = replyOf(this.stderr, this.stdout, p);
    if (!reply) return;
    clearTimeout(p.timer);
    this.pending = undefined;
    p.resolve(reply);
  }

  /** Fails the request in flight and ends the process (only `which`, when given: a late event of an old one changes nothing). */
  private end(err: Error, which?: ChildProcessWithoutNullStreams): void {
    if (which && which !== this.child) return;
    const child = this.child;
    this.child = undefined;
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    if (child && child.exitCode === null) {
      child.stdin.end();
      child.kill('SIGKILL');
    }
  }
}
