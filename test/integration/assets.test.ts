// The harness finds its binaries the way envtest does: KUBEBUILDER_ASSETS names one folder,
// TEST_ASSET_<NAME> overrides one binary, and with either set nothing is built.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveAssets } from '../controlplane/assets.js';

const saved = { ...process.env };
const ENV = ['KUBEBUILDER_ASSETS', 'TEST_ASSET_KUBE_APISERVER', 'TEST_ASSET_ETCD', 'TEST_ASSET_KUBECTL'];
const made: string[] = [];
test.after.each(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  for (const name of ENV) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

/** A folder like envtest's, linking to the binaries this machine has. */
function assetsFolder(names: string[]): string {
  const real = resolveAssets();
  const dir = mkdtempSync(join(tmpdir(), 'ipc-assets-'));
  made.push(dir);
  const source: Record<string, string> = { 'kube-apiserver': real.kubeApiserver, etcd: real.etcd, kubectl: real.kubectl };
  for (const name of names) symlinkSync(source[name] ?? '', join(dir, name));
  return dir;
}

test('KUBEBUILDER_ASSETS: all three binaries come from that folder', () => {
  const dir = assetsFolder(['kube-apiserver', 'etcd', 'kubectl']);
  process.env.KUBEBUILDER_ASSETS = dir;
  assert.equal(resolveAssets(), { kubeApiserver: join(dir, 'kube-apiserver'), etcd: join(dir, 'etcd'), kubectl: join(dir, 'kubectl') });
});

test('TEST_ASSET_ETCD overrides one binary of KUBEBUILDER_ASSETS', () => {
  const dir = assetsFolder(['kube-apiserver', 'kubectl']);
  const other = assetsFolder(['etcd']);
  process.env.KUBEBUILDER_ASSETS = dir;
  process.env.TEST_ASSET_ETCD = join(other, 'etcd');
  assert.is(resolveAssets().etcd, join(other, 'etcd'));
  assert.is(resolveAssets().kubectl, join(dir, 'kubectl'));
});

test('a folder missing a binary is refused with the path it looked at', () => {
  const dir = assetsFolder(['kube-apiserver']);
  process.env.KUBEBUILDER_ASSETS = dir;
  assert.throws(
    () => resolveAssets(),
    (err: Error) => err.message === `control plane binary etcd not found at ${join(dir, 'etcd')}`,
  );
});

test.run();
