/** Registry credentials a policy names (`credentialsSecret`), read from Kubernetes Secrets. */
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Credentials } from '../notary/token-auth.js';
import type { TrustPolicy } from '../policy/model.js';

/** How long a Secret read is reused before it is read again. */
const CACHE_MS = 60_000;

export type SecretReader = (policy: TrustPolicy, secretName: string) => Promise<Credentials>;

/** Cluster mode: the Secret in the policy's namespace (ClusterTrustPolicy: trustgate's own namespace). */
export function kubernetesSecrets(api: Pick<CoreV1Api, 'readNamespacedSecret'>, own: string): SecretReader {
  const cache = new Map<string, { at: number; creds: Credentials }>();
  return async (policy, name) => {
    const namespace = policy.namespace ?? own;
    const key = `${namespace}/${name}`;
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.creds;
    const secret = await api.readNamespacedSecret({ name, namespace });
    const field = (f: string) => {
      const v = secret.data?.[f];
      if (v === undefined) throw new Error(`secret ${key} has no "${f}" key`);
      return Buffer.from(v, 'base64').toString('utf8');
    };
    const creds = { username: field('username'), password: field('password') };
    cache.set(key, { at: Date.now(), creds });
    return creds;
  };
}
