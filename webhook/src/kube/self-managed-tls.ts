// Wiring self-managed TLS to the cluster: the Secret and webhook configuration adapters,
// the rotation, and the first sync (the server cannot listen before it has a pair).
import type { Logger } from '../admission/types.js';
import { CertRotation, type Lifetimes } from '../server/cert-rotation.js';
import type { ManagedTls } from '../server/start.js';
import { KubeCertSecret } from './cert-secret.js';
import { KubeWebhookCaBundle } from './webhook-ca-bundle.js';

export interface SelfManagedTlsOptions {
  secretName: string;
  namespace: string;
  dnsNames: string[];
  mutatingWebhooks: string[];
  validatingWebhooks: string[];
  log: Logger;
  /** Default: the in-cluster / KUBECONFIG configuration. */
  kubeConfig?: import('@kubernetes/client-node').KubeConfig;
  clock?: () => Date;
  lifetimes?: Lifetimes;
  resyncMs?: number;
  retryMs?: number;
}

export async function startSelfManagedTls(opts: SelfManagedTlsOptions): Promise<ManagedTls & { close(): void; rotation: CertRotation }> {
  const k8s = await import('@kubernetes/client-node');
  let kubeConfig = opts.kubeConfig;
  if (!kubeConfig) {
    kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromDefault();
  }
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const admission = kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
  const rotation = new CertRotation({
    store: new KubeCertSecret(core, opts.namespace, opts.secretName),
    targets: [
      ...opts.mutatingWebhooks.map((n) => new KubeWebhookCaBundle(admission, 'mutating', n)),
      ...opts.validatingWebhooks.map((n) => new KubeWebhookCaBundle(admission, 'validating', n)),
    ],
    dnsNames: opts.dnsNames,
    log: opts.log,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.lifetimes ? { lifetimes: opts.lifetimes } : {}),
    ...(opts.resyncMs !== undefined ? { resyncMs: opts.resyncMs } : {}),
    ...(opts.retryMs !== undefined ? { retryMs: opts.retryMs } : {}),
  });
  const pair = await rotation.sync();
  rotation.start();
  return {
    origin: rotation.origin,
    pair,
    onChange: (l) => rotation.onChange(l),
    close: () => rotation.stop(),
    rotation,
  };
}
