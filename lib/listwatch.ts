// The one list+watch loop, for the scheduler's caches and the agent's claims (the model is
// kubernetes-client/javascript src/cache.ts, with its decisions as pure functions here).
// client-node's own informer stops for good on a non-410 error; this loop lists again after any
// error, with a doubling backoff on the injected clock. Objects go into a Store that compares
// resourceVersions and remembers deletions, so a late watch event cannot roll it back and a
// write-through (our own write put in at once) is not undone by the event that follows it.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Clock } from './clock.js';
import { every } from './every.js';
import type { Logger } from './logger.js';
import { StreamWatch } from './watchstream.js';

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
  has(key: string): boolean {
    return this.map.has(key);
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

/** One object as a store keeps it: its key, the value parsed from it, its resourceVersion. */
export interface Parsed<T> {
  key: string;
  value: T;
  rv: string;
}

/** A list response (one page of it): the items, the resourceVersion to watch from, and the token of the next page. */
export interface Listed {
  items: unknown[];
  resourceVersion: string;
  /** metadata.continue: absent or empty on the last page. */
  continue?: string;
}

/** One page of a chunked list: at most limit items, after the page whose continue token this is. */
export interface PageRequest {
  limit: number;
  continue?: string;
}

/**
 * Items per page of a list. A list of 5,000 Services or claims in one response is one large JSON
 * text, its parse tree and client-node's typed copy of it, all alive at once; in pages of 500 only
 * one page is (client-go's pager uses the same size).
 */
export const LIST_PAGE_SIZE = 500;

/** How often one list starts again from its first page after its continue token expired. */
export const MAX_LIST_RESTARTS = 3;

/** The next page to ask for after page (asked for with limit), or null when it was the last (pure). */
export function nextPage(page: Pick<Listed, 'continue'>, limit: number): PageRequest | null {
  return page.continue ? { limit, continue: page.continue } : null;
}

/**
 * Whether a failed page request means listing again from the first page (pure): a 410 Gone on a
 * continue token says the list's revision was compacted away, and its pages so far cannot be
 * completed consistently. A 410 on a first page, or after MAX_LIST_RESTARTS restarts, is an error.
 */
export function restartList(err: unknown, request: PageRequest, restarts: number): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 410 && request.continue !== undefined && restarts < MAX_LIST_RESTARTS;
}

export interface ListWatchOptions<T> {
  what: string;
  /** Watch path, e.g. /api/v1/services. */
  path: string;
  /** Lists one page (limit and continue as the apiserver takes them). */
  list(page: PageRequest): Promise<Listed>;
  /** Items per page (default LIST_PAGE_SIZE). */
  pageSize?: number;
  /** The parsed entry, or null to leave the object out of the store. */
  parse(raw: unknown): Parsed<T> | null;
  store: Store<T>;
  /** Called after any change to the store from the API. */
  onChange(): void;
  /** Called after every complete list, changed or not. */
  onListed?(): void;
  kubeConfig: KubeConfig;
  clock: Clock;
  log: Logger;
  /** Backoff after errors, ms: doubles from first to max. */
  backoff?: { first: number; max: number };
  /**
   * List again every resyncMs (each watch lasts that long). Without it a watch lasts 240-300 s
   * and the next one resumes from the last resourceVersion; only a 410 Gone or an error lists again.
   */
  resyncMs?: number;
  onError?(err: unknown): void;
}

export const DEFAULT_BACKOFF = { first: 500, max: 10_000 };

/** The pause before the next attempt after one more failure (prev 0: none yet). */
export function nextBackoff(prev: number, backoff: { first: number; max: number } = DEFAULT_BACKOFF): number {
  return prev === 0 ? backoff.first : Math.min(prev * 2, backoff.max);
}

/** The watch's timeoutSeconds: resyncMs when set, else 240-300 s spread by random (0..1) so watches do not all end together. */
export function watchSeconds(resyncMs: number | undefined, random: number): number {
  if (resyncMs !== undefined) return Math.max(1, Math.ceil(resyncMs / 1000));
  return 240 + Math.floor(random * 60);
}

/** What one watch event does to the loop. */
export type WatchStep<T> =
  | { kind: 'apply'; deleted: boolean; parsed: Parsed<T> | null; rv: string }
  | { kind: 'bookmark'; rv: string }
  /** 410 Gone: the resourceVersion is too old; list again at once. */
  | { kind: 'expired' }
  /** Any other ERROR event: the watch failed (back off, list again). */
  | { kind: 'failed'; error: Error };

function rvOf(raw: unknown): string {
  const meta = (raw as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
  return typeof meta?.resourceVersion === 'string' ? meta.resourceVersion : '';
}

/** Decides what a watch event means (pure). */
export function watchStep<T>(type: string, raw: unknown, parse: (raw: unknown) => Parsed<T> | null): WatchStep<T> {
  if (type === 'ERROR') {
    const status = (raw ?? {}) as { code?: unknown; message?: unknown };
    if (status.code === 410) return { kind: 'expired' };
    return { kind: 'failed', error: new Error(`watch error event: ${String(status.code)} ${String(status.message ?? '')}`.trim()) };
  }
  if (type === 'BOOKMARK') return { kind: 'bookmark', rv: rvOf(raw) };
  return { kind: 'apply', deleted: type === 'DELETED', parsed: parse(raw), rv: rvOf(raw) };
}

/** Applies a parsed event to the store (versioned either way); true when the store changed. */
export function applyEvent<T>(store: Store<T>, deleted: boolean, parsed: Parsed<T> | null): boolean {
  if (!parsed) return false;
  return deleted ? store.remove(parsed.key, parsed.rv) : store.upsert(parsed.key, parsed.value, parsed.rv);
}

/**
 * Lists every page, parsing each as it comes, so only one page's raw objects are alive at a time.
 * Nothing is stored here: the caller replaces its store after the last page (a list that fails
 * half-way changes nothing) and watches from the last page's resourceVersion. An expired
 * continue token lists again from the first page.
 */
export async function listPages<T>(
  opts: Pick<ListWatchOptions<T>, 'what' | 'list' | 'parse' | 'pageSize' | 'log'>,
): Promise<{ items: Array<Parsed<T>>; resourceVersion: string }> {
  const limit = opts.pageSize ?? LIST_PAGE_SIZE;
  let items: Array<Parsed<T>> = [];
  let request: PageRequest | null = { limit };
  let restarts = 0;
  let resourceVersion = '';
  while (request) {
    let page: Listed;
    try {
      page = await opts.list(request);
    } catch (err) {
      if (!restartList(err, request, restarts)) throw err;
      restarts++;
      opts.log.info({ restarts }, `${opts.what}: list continue token expired (410 Gone), listing again from the first page`);
      items = [];
      request = { limit };
      continue;
    }
    for (const raw of page.items) {
      const parsed = opts.parse(raw);
      if (parsed) items.push(parsed);
    }
    resourceVersion = page.resourceVersion;
    request = nextPage(page, limit);
  }
  return { items, resourceVersion };
}

/** How a watch ended without an error: the server closed it, 410 Gone, or a relist was asked for. */
interface WatchEnd {
  rv: string;
  relist: boolean;
}

/** Slack past the watch's timeoutSeconds before a watch the server did not end is taken as hung. */
const WATCHDOG_SLACK_MS = 15_000;

/**
 * A list+watch loop into a store, with relist() to list again at once (the agent's answer to
 * a stall or an API outage) and listedAt() (when the last complete list finished).
 */
export class ListWatch<T> {
  private lastList = 0;
  private pause = 0;
  private relistAsked = false;
  private current: AbortController | undefined;
  constructor(private readonly opts: ListWatchOptions<T>) {}

  listedAt(): number {
    return this.lastList;
  }

  /** Ends the current watch so the objects are listed again at once. */
  relist(): void {
    this.relistAsked = true;
    this.current?.abort();
  }

  /** Runs until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = this.opts.backoff ?? DEFAULT_BACKOFF;
    await every(
      this.opts.clock,
      () => this.pause,
      signal,
      () => this.cycle(signal).catch((err: unknown) => this.failed(err, backoff, signal)),
    );
  }

  /** One list, then watches until a relist is due. */
  /** A list or watch failed: back off (the next period is the pause) and say so. */
  private failed(err: unknown, backoff: { first: number; max: number }, signal: AbortSignal): void {
    if (signal.aborted) return;
    this.pause = nextBackoff(this.pause, backoff);
    this.opts.onError?.(err);
    this.opts.log.warn(
      { err: String(err instanceof Error ? err.message : err), retryMs: this.pause },
      `${this.opts.what}: list/watch failed, retrying`,
    );
  }

  private async cycle(signal: AbortSignal): Promise<void> {
    this.relistAsked = false;
    let rv = await this.listInto();
    while (!signal.aborted && !this.relistAsked) {
      const end = await this.watchOnce(rv, signal);
      this.pause = 0; // a watch that ended cleanly resets the backoff
      if (end.relist || this.opts.resyncMs !== undefined) return;
      rv = end.rv;
    }
  }

  /**
   * Lists into the store and returns the resourceVersion to watch from. A function of its own so
   * the list response is garbage once it returns: held in cycle()'s frame, it stayed alive for as
   * long as the watches that follow (a heap snapshot of the scheduler at 5,000 Services showed
   * every listed Service and claim, client-node objects with their managedFields, kept that way).
   */
  private async listInto(): Promise<string> {
    const opts = this.opts;
    const { items, resourceVersion } = await listPages(opts);
    const changed = opts.store.replaceAll(items);
    this.lastList = opts.clock.now();
    if (changed || items.length === 0) opts.onChange();
    opts.onListed?.();
    return resourceVersion;
  }

  private watchOnce(startRv: string, signal: AbortSignal): Promise<WatchEnd> {
    const opts = this.opts;
    return new Promise<WatchEnd>((resolve, reject) => {
      let rv = startRv;
      let relist = false;
      let failure: Error | undefined;
      let finished = false;
      const controller = new AbortController();
      this.current = controller;
      const stop = (): void => controller.abort();
      signal.addEventListener('abort', stop, { once: true });
      const seconds = watchSeconds(opts.resyncMs, Math.random());
      // The server ends the watch after timeoutSeconds; if it has not by then, the connection hangs.
      const watchdog = setTimeout(stop, seconds * 1000 + WATCHDOG_SLACK_MS);
      const onEvent = (type: string, raw: unknown): void => {
        const step = watchStep(type, raw, opts.parse);
        if (step.kind === 'expired' || step.kind === 'failed') {
          relist = step.kind === 'expired';
          failure = step.kind === 'failed' ? step.error : undefined;
          stop();
          return;
        }
        if (step.rv) rv = step.rv;
        if (step.kind === 'apply' && applyEvent(opts.store, step.deleted, step.parsed)) opts.onChange();
      };
      const done = (err: unknown): void => {
        if (finished) return;
        finished = true;
        clearTimeout(watchdog);
        signal.removeEventListener('abort', stop);
        if (this.current === controller) this.current = undefined;
        const aborted = controller.signal.aborted || (err as { name?: string } | null)?.name === 'AbortError';
        if (failure) reject(failure);
        else if (err && !aborted) reject(err instanceof Error ? err : new Error(String(err)));
        else resolve({ rv, relist: relist || this.relistAsked });
      };
      // A watch that starts after the abort is ended as soon as its request is made.
      const abortWith = (request: AbortController): void => {
        if (controller.signal.aborted) request.abort();
        else controller.signal.addEventListener('abort', () => request.abort(), { once: true });
      };
      if (signal.aborted) return done(undefined);
      const params = { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: seconds };
      new StreamWatch(opts.kubeConfig).watch(opts.path, params, onEvent, done).then(abortWith, done);
    });
  }
}

/** Runs list+watch until the signal aborts. */
export function listWatch<T>(opts: ListWatchOptions<T>, signal: AbortSignal): Promise<void> {
  return new ListWatch(opts).run(signal);
}
