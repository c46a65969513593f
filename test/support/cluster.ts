// The control plane an integration test talks to: the one test/run.ts started (its
// kubeconfig is in IPC_TEST_KUBECONFIG), or one started for this file alone when the file
// is run by itself (`node --import tsx test/uvu-child.ts test/integration/x.test.ts`).
import { KubeConfig } from '@kubernetes/client-node';
import { runKubectl, serviceAccountKeyPath, startControlPlane, type ControlPlane, type KubectlResult } from '../controlplane/harness.js';

export interface TestCluster {
  kubeconfigPath: string;
  kubeConfig(): KubeConfig;
  /** kubectl against this cluster; input, when given, is its stdin. */
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /** The apiserver's ServiceAccount signing key (PEM file), to make tokens no API hands out. */
  serviceAccountKeyPath(): string;
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
      kubectl: (args, input) => runKubectl(kubectlBinary, path, args, input),
      serviceAccountKeyPath() {
        const dir = process.env.IPC_TEST_CONTROL_PLANE_DIR;
        if (!dir) throw new Error('IPC_TEST_CONTROL_PLANE_DIR is not set: the ServiceAccount signing key is unknown');
        return serviceAccountKeyPath(dir);
      },
      async release() {},
    };
  }
  let own: ControlPlane;
  try {
    own = await startControlPlane();
  } catch (err) {
    // uvu counts a failed before-hook against every test of the file but does not print it.
    console.error('control plane did not start:', err);
    throw err;
  }
  return {
    kubeconfigPath: own.kubeconfigPath,
    kubeConfig: () => own.kubeConfig(),
    kubectl: (args, input) => own.kubectl(args, input),
    serviceAccountKeyPath: () => own.serviceAccountKeyPath,
    release: () => own.stop(),
  };
}

/** A name unique to this test run, so files sharing one apiserver do not collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}
