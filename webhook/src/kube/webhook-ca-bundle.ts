// Keeping clientConfig.caBundle of one webhook configuration equal to our CAs. A replace
// carries the resourceVersion read with it, so an edit made in between (Helm, kubectl, another
// replica) is never overwritten: on 409 the object is read again and the change re-applied.
// RBAC: get/update on this configuration by name.
import type { AdmissionregistrationV1Api, V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import type { CaBundleTarget } from '../server/cert-rotation.js';
import { failure, statusCode } from './cert-secret.js';

type Api = Pick<
  AdmissionregistrationV1Api,
  'readMutatingWebhookConfiguration' | 'replaceMutatingWebhookConfiguration' | 'readValidatingWebhookConfiguration' | 'replaceValidatingWebhookConfiguration'
>;
type Config = V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration;

export class KubeWebhookCaBundle implements CaBundleTarget {
  readonly describe: string;

  constructor(
    private readonly api: Api,
    private readonly kind: 'mutating' | 'validating',
    private readonly name: string,
  ) {
    this.describe = `${kind === 'mutating' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration'} ${name}`;
  }

  async ensure(caBundlePem: string): Promise<'updated' | 'unchanged' | 'missing'> {
    const want = Buffer.from(caBundlePem).toString('base64');
    for (let attempt = 0; attempt < 5; attempt++) {
      let config: Config;
      try {
        config = await this.read();
      } catch (e) {
        if (statusCode(e) === 404) return 'missing';
        throw failure(`reading ${this.describe}`, e);
      }
      const stale = (config.webhooks ?? []).filter((w) => w.clientConfig.caBundle !== want);
      if (stale.length === 0) return 'unchanged';
      for (const w of stale) w.clientConfig.caBundle = want;
      try {
        await this.replace(config);
        return 'updated';
      } catch (e) {
        if (statusCode(e) === 404) return 'missing';
        if (statusCode(e) !== 409) throw failure(`updating the caBundle of ${this.describe}`, e);
      }
    }
    throw new Error(`${this.describe} kept changing under us (5 conflicts in a row)`);
  }

  private read(): Promise<Config> {
    return this.kind === 'mutating' ? this.api.readMutatingWebhookConfiguration({ name: this.name }) : this.api.readValidatingWebhookConfiguration({ name: this.name });
  }

  private replace(body: Config): Promise<Config> {
    // The body is what was read, resourceVersion included: the API server refuses it (409) if the object moved on.
    return this.kind === 'mutating'
      ? this.api.replaceMutatingWebhookConfiguration({ name: this.name, body: body as V1MutatingWebhookConfiguration })
      : this.api.replaceValidatingWebhookConfiguration({ name: this.name, body: body as V1ValidatingWebhookConfiguration });
  }
}
