// The scheduler as the Helm chart runs it, for benchmarks whose figures users should get:
// `node <scheduler.nodeFlags> dist/cli.js scheduler` in a container limited to
// scheduler.resources.limits.memory. The limit matters before any OOM: node sizes V8's heap from
// the memory cgroup it starts in (libuv reads the limit), so a 512 MiB container gets a 256 MiB
// old generation and 1 MiB semi-spaces where this 24 GiB machine gives 4 GiB, and V8 lets a small
// heap grow less between full collections. RSS and CPU of a process started on the host are
// therefore not what a Pod does; a memory cgroup with the chart's limit is.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface SchedulerValues {
  scheduler?: { nodeFlags?: unknown; resources?: { limits?: { memory?: unknown } } };
}

function values(): SchedulerValues {
  return parse(readFileSync(join(ROOT, 'examples/helm/ipcontroller/values.yaml'), 'utf8')) as SchedulerValues;
}

/** The chart sets no --log-level: a Pod logs at the scheduler's default. What the as-shipped runs say in their JSON. */
export const SHIPPED_LOG_LEVEL = 'info (the default; the chart sets none)';

/**
 * values.yaml scheduler.nodeFlags: the node flags in front of `dist/cli.js scheduler`.
 * IPC_BENCH_SHIPPED_NODE_FLAGS='<flags>' measures a candidate in their place ('' for none).
 */
export function shippedNodeFlags(): string[] {
  const candidate = process.env.IPC_BENCH_SHIPPED_NODE_FLAGS;
  if (candidate !== undefined) return candidate.split(' ').filter(Boolean);
  const flags = values().scheduler?.nodeFlags;
  return Array.isArray(flags) ? flags.filter((f): f is string => typeof f === 'string') : [];
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

/** A Kubernetes memory quantity in bytes ("512Mi", "1G", "134217728"); the forms a memory limit is written in. */
export function quantityBytes(quantity: string): number {
  const m = /^(\d+)(|k|M|G|Ki|Mi|Gi)$/.exec(quantity.trim());
  if (!m) throw new Error(`memory quantity ${JSON.stringify(quantity)} is not an integer with k, M, G, Ki, Mi or Gi`);
  return Number(m[1]) * (UNITS[m[2] ?? ''] ?? 1);
}

/** values.yaml scheduler.resources.limits.memory in bytes, or null when the chart sets none. */
export function shippedMemoryLimitBytes(): number | null {
  const limit = values().scheduler?.resources?.limits?.memory;
  return typeof limit === 'string' || typeof limit === 'number' ? quantityBytes(String(limit)) : null;
}

/**
 * A memory cgroup this run made, by name, with a limit: processes started through wrap() are in
 * it before node starts, as a container's are. cgroup v1 (this VM) or v2 with the memory controller.
 */
export class MemoryCgroup {
  private constructor(readonly dir: string) {}

  /** Null when this machine offers no memory cgroup to make (not root, or no controller). */
  static create(name: string, limitBytes: number): MemoryCgroup | null {
    const v1 = '/sys/fs/cgroup/memory';
    const v2 = '/sys/fs/cgroup';
    const where = existsSync(join(v1, 'memory.limit_in_bytes'))
      ? { dir: join(v1, name), limitFile: 'memory.limit_in_bytes' }
      : existsSync(join(v2, 'cgroup.subtree_control')) &&
          readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('memory')
        ? { dir: join(v2, name), limitFile: 'memory.max' }
        : null;
    if (!where) return null;
    try {
      mkdirSync(where.dir);
    } catch {
      return null;
    }
    const group = new MemoryCgroup(where.dir);
    try {
      writeFileSync(join(where.dir, where.limitFile), String(limitBytes));
      return group;
    } catch {
      group.remove();
      return null;
    }
  }

  /** `command args` started inside the group: a shell joins it, then execs the command (same pid). */
  wrap(command: string, args: string[]): { command: string; args: string[] } {
    return { command: '/bin/sh', args: ['-c', 'echo $$ > "$0" && exec "$@"', join(this.dir, 'cgroup.procs'), command, ...args] };
  }

  /** Removes the group once its processes have exited (the kernel refuses while one is left). */
  remove(): void {
    try {
      rmdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
