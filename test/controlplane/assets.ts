// Finds kube-apiserver, etcd and kubectl the way envtest does: TEST_ASSET_<NAME> per binary,
// else KUBEBUILDER_ASSETS, else the folder test/controlplane/build.sh builds into (running it
// when the binaries are missing; it returns at once when they are there).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ControlPlaneAssets {
  kubeApiserver: string;
  etcd: string;
  kubectl: string;
}

const buildScript = fileURLToPath(new URL('./build.sh', import.meta.url));

function fromEnv(): Partial<ControlPlaneAssets> {
  const dir = process.env.KUBEBUILDER_ASSETS;
  const pick = (envName: string, file: string): string | undefined => process.env[envName] || (dir ? join(dir, file) : undefined);
  const found: Partial<ControlPlaneAssets> = {};
  const apiserver = pick('TEST_ASSET_KUBE_APISERVER', 'kube-apiserver');
  const etcd = pick('TEST_ASSET_ETCD', 'etcd');
  const kubectl = pick('TEST_ASSET_KUBECTL', 'kubectl');
  if (apiserver) found.kubeApiserver = apiserver;
  if (etcd) found.etcd = etcd;
  if (kubectl) found.kubectl = kubectl;
  return found;
}

export function resolveAssets(): ControlPlaneAssets {
  const given = fromEnv();
  let built: string | undefined;
  const builtDir = (): string => {
    // build.sh prints the assets folder on its last line; its progress goes to stderr.
    built ??= execFileSync('bash', [buildScript], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, KUBEBUILDER_ASSETS: '' },
    })
      .trim()
      .split('\n')
      .pop();
    if (!built) throw new Error(`${buildScript} printed no assets folder`);
    return built;
  };
  const assets: ControlPlaneAssets = {
    kubeApiserver: given.kubeApiserver ?? join(builtDir(), 'kube-apiserver'),
    etcd: given.etcd ?? join(builtDir(), 'etcd'),
    kubectl: given.kubectl ?? join(builtDir(), 'kubectl'),
  };
  for (const [name, path] of Object.entries(assets)) {
    if (!existsSync(path)) throw new Error(`control plane binary ${name} not found at ${path}`);
  }
  return assets;
}
