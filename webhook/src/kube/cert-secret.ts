// The self-managed TLS Secret through the API server. Create is create-if-absent (409
// AlreadyExists means another replica won); replace carries the resourceVersion that was
// read (409 Conflict means someone wrote since). RBAC: create on secrets in the namespace
// (create cannot be limited by name), get/update on this one Secret by name.
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { WriteConflict, type CertData, type CertStore, type StoredCerts } from '../server/cert-rotation.js';

const KEYS = { caCrt: 'ca.crt', caKey: 'ca.key', tlsCrt: 'tls.crt', tlsKey: 'tls.key' } as const;

export class KubeCertSecret implements CertStore {
  readonly origin: string;

  constructor(
    private readonly api: Pick<CoreV1Api, 'readNamespacedSecret' | 'createNamespacedSecret' | 'replaceNamespacedSecret'>,
    private readonly namespace: string,
    private readonly name: string,
  ) {
    this.origin = `secret ${namespace}/${name}`;
  }

  async read(): Promise<StoredCerts | undefined> {
    let secret: V1Secret;
    try {
      secret = await this.api.readNamespacedSecret({ name: this.name, namespace: this.namespace });
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw failure(`reading ${this.origin}`, e);
    }
    return { data: decode(secret), resourceVersion: secret.metadata?.resourceVersion ?? '' };
  }

  async create(data: CertData): Promise<StoredCerts> {
    try {
      const made = await this.api.createNamespacedSecret({ namespace: this.namespace, body: this.body(data) });
      return { data, resourceVersion: made.metadata?.resourceVersion ?? '' };
    } catch (e) {
      if (statusCode(e) === 409) throw new WriteConflict(`${this.origin} already exists`);
      throw failure(`creating ${this.origin}`, e);
    }
  }

  async replace(data: CertData, resourceVersion: string): Promise<StoredCerts> {
    try {
      const body = this.body(data);
      body.metadata!.resourceVersion = resourceVersion;
      const put = await this.api.replaceNamespacedSecret({ name: this.name, namespace: this.namespace, body });
      return { data, resourceVersion: put.metadata?.resourceVersion ?? '' };
    } catch (e) {
      if (statusCode(e) === 409) throw new WriteConflict(`${this.origin} changed since it was read`);
      throw failure(`updating ${this.origin}`, e);
    }
  }

  private body(data: CertData): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name: this.name, namespace: this.namespace, labels: { 'app.kubernetes.io/managed-by': 'trustgate' } },
      data: Object.fromEntries(Object.entries(KEYS).map(([field, key]) => [key, Buffer.from(data[field as keyof CertData]).toString('base64')])),
    };
  }
}

function decode(secret: V1Secret): CertData | undefined {
  const d = secret.data ?? {};
  const get = (k: string) => (d[k] === undefined ? undefined : Buffer.from(d[k]!, 'base64').toString('utf8'));
  const [caCrt, caKey, tlsCrt, tlsKey] = [get(KEYS.caCrt), get(KEYS.caKey), get(KEYS.tlsCrt), get(KEYS.tlsKey)];
  if (caCrt === undefined || caKey === undefined || tlsCrt === undefined || tlsKey === undefined) return undefined;
  return { caCrt, caKey, tlsCrt, tlsKey };
}

/** client-node's ApiException carries the HTTP status as `code`. */
export function statusCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** One line a person can act on: the API server's own message, not the client's dump of headers. */
export function failure(what: string, e: unknown): Error {
  const code = statusCode(e);
  if (code === undefined) return new Error(`${what} failed: ${(e as Error)?.message ?? String(e)}`);
  let message = '';
  try {
    const body = (e as { body?: unknown }).body;
    message = (typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string }))?.message ?? '';
  } catch {
    // not a Status body
  }
  const hint = code === 403 ? ' (check the chart RBAC for the service account)' : '';
  return new Error(`${what} failed: HTTP ${code}${message ? `: ${message}` : ''}${hint}`);
}
