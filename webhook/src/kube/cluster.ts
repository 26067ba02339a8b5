/** The connection to the cluster trustgate runs in: in-cluster service account, or KUBECONFIG outside one. */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

export type { KubeConfig };

export interface Cluster {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
}

/** `given`: a configuration already loaded (tests, `trustgate audit` with its own); else the default one. */
export function connectToCluster(given?: KubeConfig): Cluster {
  const kubeConfig = given ?? new KubeConfig();
  if (!given) kubeConfig.loadFromDefault();
  return { kubeConfig, core: kubeConfig.makeApiClient(CoreV1Api) };
}
