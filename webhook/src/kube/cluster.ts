/** The connection to the cluster trustgate runs in: in-cluster service account, or KUBECONFIG outside one. */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

export interface Cluster {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
}

export function connectToCluster(): Cluster {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  return { kubeConfig, core: kubeConfig.makeApiClient(CoreV1Api) };
}
