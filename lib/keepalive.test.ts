// The kubeconfig's credentials read once per refresh period, not for every request: pure
// (a stand-in kubeconfig and an injected clock; no request goes anywhere).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import { CachedCredentials, KeyedHttpsAgent, type Authenticator } from './keepalive.js';
import { Agent as HttpsAgent } from 'node:https';

const SERVER = 'https://192.0.2.1:6443';

/** A kubeconfig whose token changes every time its files are read. */
function rotating(): Authenticator & { reads: number } {
  const kc = {
    reads: 0,
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      kc.reads += 1;
      context.setHeaderParam('Authorization', `Bearer token-${kc.reads}`);
    },
  };
  return kc;
}

const request = (): RequestContext => new RequestContext(`${SERVER}/api/v1/namespaces`, HttpMethod.GET);

test('one reading of the credentials serves every request within the refresh period', async () => {
  let now = 0;
  const kc = rotating();
  const cached = new CachedCredentials(kc, SERVER, 10_000, () => now);
  const a = request();
  const b = request();
  await cached.apply(a);
  now = 9_999;
  await cached.apply(b);
  assert.is(kc.reads, 1);
  assert.is(a.getHeaders()['Authorization'], 'Bearer token-1');
  assert.is(b.getHeaders()['Authorization'], 'Bearer token-1');
});

test('after the refresh period the files are read again: a rotated token is picked up', async () => {
  let now = 0;
  const kc = rotating();
  const cached = new CachedCredentials(kc, SERVER, 10_000, () => now);
  await cached.apply(request());
  now = 10_000;
  const later = request();
  await cached.apply(later);
  assert.is(kc.reads, 2);
  assert.is(later.getHeaders()['Authorization'], 'Bearer token-2');
});

test('requests that ask at the same time share one reading', async () => {
  const kc = rotating();
  const cached = new CachedCredentials(kc, SERVER, 10_000, () => 0);
  const many = Array.from({ length: 20 }, request);
  await Promise.all(many.map((r) => cached.apply(r)));
  assert.is(kc.reads, 1);
  assert.ok(many.every((r) => r.getHeaders()['Authorization'] === 'Bearer token-1'));
});

test('the pool key of a target is the one Node gives, with the TLS options stringified once, not on every request', () => {
  let caReads = 0;
  // A CA whose string form counts how often it is taken (Node's getName appends it to the key).
  const ca = { toString: () => (caReads++, '-----BEGIN CERTIFICATE-----') } as unknown as string;
  const options = { ca, rejectUnauthorized: true };
  const keyed = new KeyedHttpsAgent(options);
  const plain = new HttpsAgent(options);
  const a = { host: 'apiserver.example', port: 6443, ...options };
  const b = { host: '192.0.2.10', port: 6443, ...options };
  const expected = [plain.getName(a), plain.getName(b)];
  caReads = 0;
  const names = Array.from({ length: 50 }, (_, i) => keyed.getName(i % 2 ? b : a));
  assert.equal([names[0], names[1]], expected);
  assert.is(new Set(names).size, 2, 'one key per target');
  assert.is(caReads, 2, 'the CA was stringified once per target');
  keyed.destroy();
  plain.destroy();
});

test.run();
