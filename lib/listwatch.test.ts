import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import {
  applyEvent,
  listPages,
  MAX_LIST_RESTARTS,
  newerRv,
  nextBackoff,
  nextPage,
  restartList,
  Store,
  watchSeconds,
  watchStep,
  type Listed,
  type PageRequest,
  type Parsed,
} from './listwatch.js';

test('resourceVersions compare as numbers; anything else counts as a change', () => {
  assert.ok(newerRv('10', '9'));
  assert.not.ok(newerRv('9', '10'));
  assert.not.ok(newerRv('9', '9'));
  assert.ok(newerRv('abc', 'abd'));
});

test('a late watch event does not roll back our own write', () => {
  const s = new Store<string>();
  assert.ok(s.upsert('x', 'written by us', '12'));
  assert.not.ok(s.upsert('x', 'stale event', '11'));
  assert.is(s.get('x'), 'written by us');
  assert.ok(s.upsert('x', 'newer', '13'));
});

test('a deleted key is not brought back by an older event, but is by a newer one', () => {
  const s = new Store<string>();
  s.upsert('x', 'v', '5');
  assert.ok(s.remove('x'));
  assert.not.ok(s.upsert('x', 'old', '5'));
  assert.is(s.get('x'), undefined);
  assert.ok(s.upsert('x', 'recreated', '9'));
});

test('a stale DELETED event does not remove a newer object', () => {
  const s = new Store<string>();
  s.upsert('x', 'recreated', '20');
  assert.not.ok(s.remove('x', '15'));
  assert.is(s.get('x'), 'recreated');
  assert.ok(s.remove('x', '21'));
});

test('replaceAll after a list: removes what is gone, marks synced, reports change', () => {
  const s = new Store<string>();
  s.upsert('a', 'a', '1');
  s.upsert('b', 'b', '1');
  assert.ok(
    s.replaceAll([
      { key: 'b', value: 'b', rv: '1' },
      { key: 'c', value: 'c', rv: '2' },
    ]),
  );
  assert.equal(s.keys().sort(), ['b', 'c']);
  assert.ok(s.synced);
  assert.not.ok(
    s.replaceAll([
      { key: 'b', value: 'b', rv: '1' },
      { key: 'c', value: 'c', rv: '2' },
    ]),
  );
});

const parse = (raw: unknown): Parsed<string> | null => {
  const meta = (raw as { metadata?: { name?: string; resourceVersion?: string } }).metadata;
  return meta?.name ? { key: meta.name, value: meta.name, rv: meta.resourceVersion ?? '' } : null;
};
const obj = (name: string, rv: string): unknown => ({ metadata: { name, resourceVersion: rv } });

test('backoff doubles from first to max and starts again at first', () => {
  const b = { first: 500, max: 2000 };
  assert.equal([nextBackoff(0, b), nextBackoff(500, b), nextBackoff(1000, b), nextBackoff(2000, b)], [500, 1000, 2000, 2000]);
});

test('a watch lasts --resync when one is set, else 240-300 s', () => {
  assert.is(watchSeconds(30_000, 0.5), 30);
  assert.is(watchSeconds(200, 0.5), 1);
  assert.is(watchSeconds(undefined, 0), 240);
  assert.is(watchSeconds(undefined, 0.999), 299);
});

test('410 Gone lists again; any other ERROR event fails the watch (backoff, then list)', () => {
  assert.equal(watchStep('ERROR', { kind: 'Status', code: 410, message: 'too old' }, parse), { kind: 'expired' });
  const failed = watchStep('ERROR', { kind: 'Status', code: 500, message: 'etcd down' }, parse);
  assert.is(failed.kind, 'failed');
  if (failed.kind === 'failed') assert.match(failed.error.message, '500 etcd down');
});

test('a bookmark moves the resourceVersion and changes nothing', () => {
  assert.equal(watchStep('BOOKMARK', obj('', '42'), parse), { kind: 'bookmark', rv: '42' });
});

test('events go into the store versioned: a late MODIFIED and a stale DELETED change nothing', () => {
  const s = new Store<string>();
  const apply = (type: string, raw: unknown): boolean => {
    const step = watchStep(type, raw, parse);
    return step.kind === 'apply' && applyEvent(s, step.deleted, step.parsed);
  };
  assert.ok(apply('ADDED', obj('a', '5')));
  assert.not.ok(apply('MODIFIED', obj('a', '4')));
  assert.not.ok(apply('DELETED', obj('a', '3')));
  assert.is(s.get('a'), 'a');
  assert.ok(apply('DELETED', obj('a', '6')));
  assert.not.ok(apply('ADDED', obj('a', '5')), 'the delete is remembered');
  assert.not.ok(apply('ADDED', { metadata: {} }), 'an object the parser refuses is left out');
});

test('a list goes on while a page carries a continue token, with the same limit', () => {
  assert.equal(nextPage({ continue: 'tok' }, 500), { limit: 500, continue: 'tok' });
  assert.is(nextPage({ continue: '' }, 500), null, 'an empty token ends the list');
  assert.is(nextPage({}, 500), null);
});

test('only a 410 Gone on a continue token starts the list again from its first page, a few times at most', () => {
  const gone = { code: 410 };
  assert.ok(restartList(gone, { limit: 500, continue: 'tok' }, 0));
  assert.not.ok(restartList(gone, { limit: 500 }, 0), 'a 410 on the first page is an error');
  assert.not.ok(restartList({ code: 500 }, { limit: 500, continue: 'tok' }, 0));
  assert.not.ok(restartList(new Error('socket hang up'), { limit: 500, continue: 'tok' }, 0));
  assert.not.ok(restartList(gone, { limit: 500, continue: 'tok' }, MAX_LIST_RESTARTS), 'then it fails (backoff, list again)');
});

/** A paging server over names: pages of limit, tokens that are offsets; expireAt makes that token answer 410 once. */
function pager(
  names: string[],
  rv: string,
  expireAt = new Set<string>(),
): { list(page: PageRequest): Promise<Listed>; asked: PageRequest[] } {
  const asked: PageRequest[] = [];
  return {
    asked,
    list(page: PageRequest): Promise<Listed> {
      asked.push(page);
      if (page.continue && expireAt.delete(page.continue)) return Promise.reject(Object.assign(new Error('Expired'), { code: 410 }));
      const from = Number(page.continue ?? 0);
      const next = from + page.limit;
      const items = names.slice(from, next).map((n) => obj(n, rv));
      return Promise.resolve({ items, resourceVersion: rv, ...(next < names.length ? { continue: String(next) } : {}) });
    },
  };
}

const quiet = pino({ level: 'silent' });

test('a list of more items than a page holds is read page by page, every item once, the resourceVersion from the last page', async () => {
  const names = Array.from({ length: 12 }, (_, i) => `o${i}`);
  const server = pager([...names, ''], '77');
  const listed = await listPages({ what: 'test', list: server.list, parse, pageSize: 5, log: quiet });
  assert.equal(
    listed.items.map((i) => i.key),
    names,
    'the unnamed object the parser refuses is left out',
  );
  assert.is(listed.resourceVersion, '77');
  assert.equal(server.asked, [{ limit: 5 }, { limit: 5, continue: '5' }, { limit: 5, continue: '10' }]);
});

test('an expired continue token lists again from the first page, without the first pass items twice', async () => {
  const names = Array.from({ length: 12 }, (_, i) => `o${i}`);
  const server = pager(names, '9', new Set(['10']));
  const listed = await listPages({ what: 'test', list: server.list, parse, pageSize: 5, log: quiet });
  assert.equal(
    listed.items.map((i) => i.key),
    names,
  );
  assert.equal(
    server.asked.map((p) => p.continue ?? 'first'),
    ['first', '5', '10', 'first', '5', '10'],
  );
});

test('a page that fails otherwise fails the whole list', async () => {
  const list = (page: PageRequest): Promise<Listed> =>
    page.continue
      ? Promise.reject(new Error('connection reset'))
      : Promise.resolve({ items: [obj('a', '1')], resourceVersion: '1', continue: 'x' });
  try {
    await listPages({ what: 'test', list, parse, pageSize: 1, log: quiet });
    assert.unreachable('the list failed half-way');
  } catch (err) {
    assert.match(String(err), 'connection reset');
  }
});

test.run();
