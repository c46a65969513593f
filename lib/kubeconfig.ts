// Where a process finds its cluster: --kubeconfig if given, in-cluster service account when
// running in a pod, else the usual KUBECONFIG / ~/.kube/config.
import { KubeConfig } from '@kubernetes/client-node';

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}
