/**
 * Talking to a running webhook the way the API server does: AdmissionReviews for Pods built
 * from the faithful fixture, POSTed over HTTPS on keep-alive connections, with the answer,
 * its HTTP status and how long it took.
 */
import { Agent, request } from 'node:https';
import { fixture } from '../fixtures/admission/support.js';

export interface ReviewAnswer {
  status: number;
  /** Parsed body (an AdmissionReview when status is 200). */
  body: any;
  ms: number;
}

const POD = fixture('pod-create.json');

/** A Pod CREATE review whose containers run `images` (one container each), in `namespace`. */
export function podReview(uid: string, namespace: string, images: string[]): any {
  const review = structuredClone(POD);
  const req = review.request;
  req.uid = uid;
  req.namespace = namespace;
  req.object.metadata.namespace = namespace;
  const template = req.object.spec.containers[0];
  req.object.spec.containers = images.map((image, i) => ({ ...structuredClone(template), name: `c${i}`, image }));
  delete req.object.spec.initContainers;
  return review;
}

export class WebhookClient {
  readonly agent: Agent;

  constructor(
    readonly port: number,
    readonly ca: string,
    maxSockets = 64,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets, ca });
  }

  post(path: '/mutate' | '/validate', review: unknown, query = ''): Promise<ReviewAnswer> {
    const payload = Buffer.from(JSON.stringify(review));
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          path: path + query,
          method: 'POST',
          agent: this.agent,
          servername: 'localhost',
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
            resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0 });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: this.port, path, agent: this.agent, servername: 'localhost' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface PolicyFile {
  name: string;
  /** Namespaced TrustPolicy when set, ClusterTrustPolicy otherwise. */
  namespace?: string;
  images: string[];
  url: string;
  caBundle?: string;
  rootPems: string[];
  mode?: 'enforce' | 'warn' | 'audit';
}

/** The policy as a manifest (JSON is YAML), for a --policy-dir. */
export function policyManifest(p: PolicyFile): object {
  return {
    apiVersion: 'trustgate.dev/v1alpha1',
    kind: p.namespace ? 'TrustPolicy' : 'ClusterTrustPolicy',
    metadata: p.namespace ? { name: p.name, namespace: p.namespace } : { name: p.name },
    spec: {
      images: p.images,
      trustServer: { url: p.url, ...(p.caBundle ? { caBundle: p.caBundle } : {}) },
      root: { keys: p.rootPems, threshold: 1 },
      mode: p.mode ?? 'enforce',
    },
  };
}
