// The control plane an integration test talks to: the one test/run.ts started (its
// kubeconfig is in IPC_TEST_KUBECONFIG), or one started for this file alone when the file
// is run by itself (`node --import tsx test/uvu-child.ts test/integration/x.test.ts`).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane, type KubectlResult } from '../controlplane/harness.js';

const execFileAsync = promisify(execFile);

export interface TestCluster {
  kubeconfigPath: string;
  kubeConfig(): KubeConfig;
  kubectl(args: string[]): Promise<KubectlResult>;
  /** Stops the control plane only if this file started it. */
  release(): Promise<void>;
}

export async function testCluster(): Promise<TestCluster> {
  const path = process.env.IPC_TEST_KUBECONFIG;
  const kubectlBinary = process.env.IPC_TEST_KUBECTL;
  if (path && kubectlBinary) {
    return {
      kubeconfigPath: path,
      kubeConfig() {
        const kc = new KubeConfig();
        kc.loadFromFile(path);
        return kc;
      },
      async kubectl(args) {
        try {
          const { stdout, stderr } = await execFileAsync(kubectlBinary, [`--kubeconfig=${path}`, ...args]);
          return { stdout, stderr, code: 0 };
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string; code?: number };
          return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
        }
      },
      async release() {},
    };
  }
  const own: ControlPlane = await startControlPlane();
  return {
    kubeconfigPath: own.kubeconfigPath,
    kubeConfig: () => own.kubeConfig(),
    kubectl: (args) => own.kubectl(args),
    release: () => own.stop(),
  };
}

/** A name unique to this test run, so files sharing one apiserver do not collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}
