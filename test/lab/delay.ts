// A userspace delay for one direction of a stream (this kernel has no sch_netem): every chunk
// is held for the delay the caller reads at the time it arrived, and chunks leave in order.
// Used by the lab's API forwarders for the "slow node" faults of issue 9.
import type { Readable, Writable } from 'node:stream';

/** Pipes from into to, holding each chunk delayMs() (read when it arrives); order is kept. */
export function delayedPipe(from: Readable, to: Writable, delayMs: () => number): void {
  const queue: { due: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = (): void => {
    timer = undefined;
    const now = Date.now();
    while (queue.length > 0 && (queue[0]?.due ?? Infinity) <= now) to.write(queue.shift()?.chunk);
    if (queue.length > 0) timer = setTimeout(drain, Math.max(1, (queue[0]?.due ?? now) - now));
  };
  from.on('data', (chunk: Buffer) => {
    const delay = delayMs();
    if (delay <= 0 && queue.length === 0) {
      to.write(chunk);
      return;
    }
    queue.push({ due: Date.now() + delay, chunk });
    timer ??= setTimeout(drain, Math.max(1, delay));
  });
  from.on('end', () => {
    const finish = (): void => {
      if (queue.length > 0) setTimeout(finish, 10);
      else to.end();
    };
    finish();
  });
  from.on('close', () => {
    if (timer) clearTimeout(timer);
  });
}
