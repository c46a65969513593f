// List+watch into an in-memory store, restarted with backoff on any error (client-node's own
// informer stops for good on non-410 errors). Our own writes go into the store at once
// (write-through), so the next reconcile never acts on a view older than what it wrote;
// resourceVersions are compared so a late watch event cannot roll the store back.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';

interface Entry<T> {
  value: T;
  rv: string;
}

/** Whether resourceVersion a is newer than b. They are etcd revisions in practice; when either
 *  is not a number they are taken as changed (newer). */
export function newerRv(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

export class Store<T> {
  private readonly map = new Map<string, Entry<T>>();
  /** Deleted keys and the last version seen, so a late event does not bring them back. */
  private readonly tombstones = new Map<string, string>();
  synced = false;

  get(key: string): T | undefined {
    return this.map.get(key)?.value;
  }
  values(): T[] {
    return [...this.map.values()].map((e) => e.value);
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
  get size(): number {
    return this.map.size;
  }

  /** Stores value unless what is stored (or was deleted) is newer; true when it changed. */
  upsert(key: string, value: T, rv: string): boolean {
    const current = this.map.get(key);
    if (current && current.rv !== '' && rv !== '' && !newerRv(rv, current.rv)) return false;
    const dead = this.tombstones.get(key);
    if (dead !== undefined && !newerRv(rv, dead)) return false;
    this.tombstones.delete(key);
    this.map.set(key, { value, rv });
    return true;
  }

  /**
   * Stores what a direct read (GET) returned: only an entry that is newer keeps its place;
   * a tombstone does not (the object exists, whatever a removal remembered).
   */
  take(key: string, value: T, rv: string): boolean {
    const current = this.map.get(key);
    if (current && current.rv !== '' && rv !== '' && newerRv(current.rv, rv)) return false;
    this.tombstones.delete(key);
    this.map.set(key, { value, rv });
    return true;
  }

  /** Removes the key; with rv (a DELETED event's version), not when what is stored is newer. */
  remove(key: string, rv = ''): boolean {
    const current = this.map.get(key);
    if (!current) return false;
    if (rv !== '' && current.rv !== '' && newerRv(current.rv, rv)) return false;
    this.tombstones.set(key, rv !== '' && newerRv(rv, current.rv) ? rv : current.rv);
    this.map.delete(key);
    return true;
  }

  /** Replaces the whole content after a list; true when anything changed. */
  replaceAll(items: Array<{ key: string; value: T; rv: string }>): boolean {
    this.tombstones.clear();
    const keep = new Set(items.map((i) => i.key));
    let changed = false;
    for (const key of [...this.map.keys()]) {
      if (!keep.has(key)) {
        this.map.delete(key);
        changed = true;
      }
    }
    for (const item of items) {
      const current = this.map.get(item.key);
      if (!current || current.rv !== item.rv) changed = true;
      this.map.set(item.key, { value: item.value, rv: item.rv });
    }
    this.synced = true;
    return changed;
  }
}

export interface Parsed<T> {
  key: string;
  value: T;
  rv: string;
}

export interface ListWatchOptions<T> {
  what: string;
  /** Watch path, e.g. /api/v1/services. */
  path: string;
  list(): Promise<{ items: unknown[]; resourceVersion: string }>;
  parse(raw: unknown): Parsed<T> | null;
  store: Store<T>;
  /** Called after any change to the store from the API. */
  onChange(): void;
  kubeConfig: KubeConfig;
  clock: Clock;
  log: Logger;
  /** Backoff after errors, ms: doubles from first to max. */
  backoff?: { first: number; max: number };
  onError?(err: unknown): void;
}

interface WatchEnd {
  rv: string;
  /** The server said 410 Gone: list again. */
  expired: boolean;
}

/** Runs list+watch until the signal aborts. */
export async function listWatch<T>(opts: ListWatchOptions<T>, signal: AbortSignal): Promise<void> {
  const backoff = opts.backoff ?? { first: 500, max: 10_000 };
  let delay = backoff.first;
  while (!signal.aborted) {
    try {
      const listed = await opts.list();
      const items = listed.items.map((raw) => opts.parse(raw)).filter((p): p is Parsed<T> => p !== null);
      if (opts.store.replaceAll(items) || items.length === 0) opts.onChange();
      let rv = listed.resourceVersion;
      for (;;) {
        const end = await watchOnce(opts, rv, signal);
        delay = backoff.first;
        if (end.expired || signal.aborted) break;
        rv = end.rv;
      }
    } catch (err) {
      if (signal.aborted) return;
      opts.onError?.(err);
      opts.log.warn({ err: String(err), retryMs: delay }, `${opts.what}: list/watch failed, retrying`);
      try {
        await opts.clock.sleep(delay, signal);
      } catch {
        return;
      }
      delay = Math.min(delay * 2, backoff.max);
    }
  }
}

function rvOf(raw: unknown): string {
  const meta = (raw as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
  return typeof meta?.resourceVersion === 'string' ? meta.resourceVersion : '';
}

function watchOnce<T>(opts: ListWatchOptions<T>, startRv: string, signal: AbortSignal): Promise<WatchEnd> {
  return new Promise<WatchEnd>((resolve, reject) => {
    let rv = startRv;
    let expired = false;
    let controller: AbortController | undefined;
    const onAbort = (): void => controller?.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const onEvent = (type: string, raw: unknown): void => {
      if (type === 'ERROR') {
        const code = (raw as { code?: unknown } | null)?.code;
        if (code === 410) expired = true;
        else opts.log.warn({ status: raw }, `${opts.what}: watch error event`);
        controller?.abort();
        return;
      }
      const objectRv = rvOf(raw);
      if (objectRv) rv = objectRv;
      if (type === 'BOOKMARK') return;
      const parsed = opts.parse(raw);
      if (!parsed) return;
      const changed =
        type === 'DELETED' ? opts.store.remove(parsed.key, parsed.rv) : opts.store.upsert(parsed.key, parsed.value, parsed.rv);
      if (changed) opts.onChange();
    };
    const done = (err: unknown): void => {
      signal.removeEventListener('abort', onAbort);
      if (err && !signal.aborted && !expired && (err as { name?: string }).name !== 'AbortError')
        reject(err instanceof Error ? err : new Error(String(err)));
      else resolve({ rv, expired });
    };
    const params = { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 240 + Math.floor(Math.random() * 60) };
    new Watch(opts.kubeConfig)
      .watch(opts.path, params, onEvent, done)
      .then((c) => {
        controller = c;
        if (signal.aborted) c.abort();
      })
      .catch(reject);
  });
}
