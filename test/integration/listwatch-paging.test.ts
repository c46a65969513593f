// The list+watch loop (lib/listwatch.ts) lists in pages (limit / continue) against a real
// apiserver: a list of more objects than one page holds fills the store with exactly those
// objects, and a list after deletions the store never heard of removes them. Through the
// scheduler's own list functions (scheduler/kube.ts): Services come back typed (client-node
// names the token _continue), IpClaims as raw JSON (continue).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { API_VERSION, PLURAL } from '../../api/types.js';
import { systemClock } from '../../lib/clock.js';
import { ListWatch, Store, type Listed, type PageRequest, type Parsed } from '../../lib/listwatch.js';
import { kubeFor, type Kube } from '../../scheduler/kube.js';
import { waitFor } from '../controlplane/harness.js';
import { testCluster, uniqueName, type TestCluster } from '../support/cluster.js';

const PAGE = 10;
const COUNT = 25;

let cluster: TestCluster;
let kc: KubeConfig;
let kube: Kube;

test.before(async () => {
  cluster = await testCluster();
  kc = cluster.kubeConfig();
  kube = kubeFor(kc, 'listwatch-paging-test');
});
test.after(async () => {
  await cluster?.release();
});

/** Names as this test made them (others' objects share the apiserver: the parser leaves them out). */
function parseOurs(keep: (raw: { metadata?: { name?: string; namespace?: string; resourceVersion?: string } }) => string | null) {
  return (raw: unknown): Parsed<string> | null => {
    const r = raw as { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };
    const key = keep(r);
    return key ? { key, value: key, rv: r.metadata?.resourceVersion ?? '' } : null;
  };
}

/**
 * Runs a ListWatch over store until it has listed once (and a change predicate holds), then stops
 * it, so whatever the store learns next can only come from the next loop's list.
 */
async function listOnce(
  what: string,
  opts: { path: string; list(page: PageRequest): Promise<Listed>; parse(raw: unknown): Parsed<string> | null; store: Store<string> },
  until: () => boolean,
): Promise<PageRequest[]> {
  const asked: PageRequest[] = [];
  const controller = new AbortController();
  const loop = new ListWatch<string>({
    what,
    path: opts.path,
    list: (page) => {
      asked.push(page);
      return opts.list(page);
    },
    parse: opts.parse,
    store: opts.store,
    pageSize: PAGE,
    onChange: () => undefined,
    kubeConfig: kc,
    clock: systemClock,
    log: pino({ level: 'silent' }),
  });
  const running = loop.run(controller.signal);
  try {
    await waitFor(`${what}: listed`, () => Promise.resolve(loop.listedAt() > 0 && until()), 30_000, 50);
  } finally {
    controller.abort();
    await running.catch(() => undefined);
  }
  return asked;
}

test(`${COUNT} Services in pages of ${PAGE}: every one in the store once; a list after deleting 7 removes exactly those`, async () => {
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = uniqueName('paging');
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  try {
    const names = Array.from({ length: COUNT }, (_, i) => `svc-${i}`);
    for (const name of names) {
      await core.createNamespacedService({ namespace, body: { metadata: { name }, spec: { ports: [{ port: 80, protocol: 'TCP' }] } } });
    }
    const store = new Store<string>();
    const parse = parseOurs((r) => (r.metadata?.namespace === namespace ? (r.metadata.name ?? null) : null));
    const source = { path: '/api/v1/services', list: (page: PageRequest) => kube.lists.services(page), parse, store };
    const first = await listOnce('services', source, () => store.size === COUNT);
    assert.equal(store.keys().sort(), [...names].sort());
    assert.ok(first.length >= Math.ceil(COUNT / PAGE), `listed in pages: ${JSON.stringify(first)}`);
    assert.ok(
      first.every((p) => p.limit === PAGE),
      'every page asked with the limit',
    );
    assert.ok(
      first.slice(1).every((p) => p.continue),
      'every page after the first continues the one before',
    );

    const gone = names.slice(3, 10);
    for (const name of gone) await core.deleteNamespacedService({ namespace, name });
    await listOnce('services', source, () => store.size === COUNT - gone.length);
    assert.equal(store.keys().sort(), names.filter((n) => !gone.includes(n)).sort(), 'the deleted Services are gone, the others stay');
  } finally {
    await core.deleteNamespace({ name: namespace });
  }
});

test(`${COUNT} IpClaims (raw JSON pages) fill the store exactly, and a list after deletions removes them`, async () => {
  const prefix = uniqueName('paging');
  const names = Array.from({ length: COUNT }, (_, i) => `${prefix}-${i}`);
  const created: string[] = [];
  try {
    for (const [i, name] of names.entries()) {
      await kube.clients.claims.create({
        apiVersion: API_VERSION,
        kind: 'IpClaim',
        metadata: { name },
        spec: { cidr: `203.0.113.${100 + i}/32` },
      });
      created.push(name);
    }
    const store = new Store<string>();
    const parse = parseOurs((r) => (r.metadata?.name?.startsWith(`${prefix}-`) ? r.metadata.name : null));
    const source = {
      path: kube.clients.claims.watchPath,
      list: (page: PageRequest) => kube.lists.custom(PLURAL.IpClaim, page),
      parse,
      store,
    };
    const first = await listOnce('ipclaims', source, () => store.size === COUNT);
    assert.equal(store.keys().sort(), [...names].sort());
    assert.ok(first.length >= Math.ceil(COUNT / PAGE) && first.slice(1).every((p) => p.continue), JSON.stringify(first));

    const gone = names.slice(0, 12);
    for (const name of gone) {
      await kube.clients.claims.delete(name);
      created.splice(created.indexOf(name), 1);
    }
    await listOnce('ipclaims', source, () => store.size === COUNT - gone.length);
    assert.equal(store.keys().sort(), names.slice(12).sort());
  } finally {
    for (const name of created) await kube.clients.claims.delete(name).catch(() => undefined);
  }
});

test.run();
