// The kubeconfig's credentials read once per refresh period, not for every request: pure
// (a stand-in kubeconfig and an injected clock; no request goes anywhere).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import { CachedCredentials, type Authenticator } from './keepalive.js';

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

test.run();
