// The Pods that run now, from the API server: one paged list over all namespaces (list
// permission is all the audit needs; it re-lists each round rather than keeping a watch).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { AuditPod } from '../audit/audit.js';

const PAGE = 500;

export async function listRunningPods(kubeConfig: KubeConfig): Promise<AuditPod[]> {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const out: AuditPod[] = [];
  let cont: string | undefined;
  do {
    const page = await api.listPodForAllNamespaces({ limit: PAGE, ...(cont ? { _continue: cont } : {}) });
    for (const p of page.items) {
      // Finished Pods run nothing; their images are not re-admitted.
      if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
      out.push(p as AuditPod);
    }
    cont = page.metadata?._continue || undefined;
  } while (cont);
  return out;
}
