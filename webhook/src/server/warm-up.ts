// A self-check before a replica reports ready: one Pod admission through the real code,
// end to end, on a throwaway HTTPS server with the serving pair: TLS handshake, body
// parsing, review checks, the verification engine walking a built-in signed repository
// (ECDSA and RSA certificate keys, Ed25519 keys, two delegations), the JSONPatch. It proves
// the build verifies signatures (a broken one refuses to start), and it is what makes the
// first real admission after a start cost what one in a running replica does: lazy module
// loads, OpenSSL and noble initialisation and the JIT are paid here, not by a Pod.
// Nothing of it is kept: its own engine, cache and metrics; the fixture is checked at the
// instant it was signed, so it never goes stale.
import { request, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createAdmissionHandler } from '../admission/handler.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../notary/source.js';
import { parsePolicy } from '../policy/model.js';
import { VerificationEngine } from '../verify/engine.js';
import { FIXTURE } from '../verify/self-check-fixture.js';
import { MemoryVersionStore } from '../verify/version-store.js';
import { createApp } from './app.js';
import { TLS_SETTINGS } from './tls.js';

const SERVER = 'built-in self-check repository';
const WARM_VERIFICATIONS = 4;

/** A signed repository, its pinned root and the tag it signs (the built-in one is FIXTURE). */
export interface SelfCheckRepository {
  at: string;
  gun: string;
  tag: string;
  digest: string;
  rootPems: readonly string[];
  /** role file name -> base64 bytes */
  files: Readonly<Record<string, string>>;
}

class FixtureSource implements MetadataSource {
  readonly server = SERVER;
  readonly gun: string;
  private readonly files: Map<string, Buffer>;

  constructor(repo: SelfCheckRepository) {
    this.gun = repo.gun;
    this.files = new Map(Object.entries(repo.files).map(([role, b64]) => [role, Buffer.from(b64, 'base64')]));
  }

  async fetch(req: MetadataRequest): Promise<Uint8Array> {
    const name = req.version !== undefined ? `${req.version}.${req.role}` : req.role;
    const bytes = this.files.get(name);
    if (!bytes) throw new FetchError('not-found', this.server, req.role, 'not in the built-in repository');
    if (bytes.length > req.maxBytes) throw new FetchError('too-large', this.server, req.role, `more than ${req.maxBytes} bytes`);
    return new Uint8Array(bytes);
  }
}

export async function selfCheck(pair: { cert: Buffer; key: Buffer }, repo: SelfCheckRepository = FIXTURE): Promise<void> {
  const policy = parsePolicy(
    {
      apiVersion: 'trustgate.dev/v1alpha1',
      kind: 'ClusterTrustPolicy',
      metadata: { name: 'trustgate-self-check' },
      spec: {
        images: [`${repo.gun}:*`],
        trustServer: { url: 'https://self-check.trustgate.invalid' },
        root: { keys: [...repo.rootPems] },
        delegations: { roles: ['targets/releases', 'targets/qa'] },
        mode: 'enforce',
      },
    },
    'built-in self-check policy',
  );
  const at = new Date(repo.at);
  const source = new FixtureSource(repo);
  const newEngine = () =>
    new VerificationEngine({
      policies: { policiesFor: (reference) => (reference.startsWith(`${repo.gun}:`) ? [policy] : []) },
      sourceFor: () => source,
      clock: () => at,
      versions: new MemoryVersionStore(),
    });
  // A few cold verifications first, each with an empty cache, so the verification code
  // runs compiled (V8 tiers code up after a few calls) by the time a Pod needs it.
  for (let i = 0; i < WARM_VERIFICATIONS; i++) await newEngine().verifyImage(`${repo.gun}:${repo.tag}`, undefined, new AbortController().signal);
  const handler = createAdmissionHandler({ verifier: newEngine(), mutate: true });
  const app = createApp({ handlers: { mutate: handler, validate: handler }, ready: () => true });
  const server = createServer({ ...TLS_SETTINGS, cert: pair.cert, key: pair.key }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  try {
    const image = `${repo.gun}:${repo.tag}`;
    const answer = await post((server.address() as AddressInfo).port, review(image));
    const pinned = `${image}@${repo.digest}`;
    const patch = typeof answer.patch === 'string' ? Buffer.from(answer.patch, 'base64').toString('utf8') : '';
    if (answer.allowed !== true || !patch.includes(pinned)) {
      throw new Error(`the self-check admission of the built-in signed image was not pinned to ${repo.digest}: ${answer.status?.message ?? JSON.stringify(answer).slice(0, 300)}`);
    }
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface Answer {
  allowed?: boolean;
  patch?: string;
  status?: { message?: string };
}

function review(image: string): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '00000000-0000-4000-8000-5e1fc4ec0000',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: 'self-check',
      namespace: 'trustgate-self-check',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'self-check', namespace: 'trustgate-self-check' },
        spec: { containers: [{ name: 'app', image }] },
      },
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  });
}

function post(port: number, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate?timeout=10s',
        method: 'POST',
        // Our own certificate on loopback: what is checked is the answer, not the peer.
        rejectUnauthorized: false,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`the self-check admission answered HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
          try {
            resolve((JSON.parse(text) as { response: Answer }).response);
          } catch (e) {
            reject(new Error(`the self-check admission answered something that is not JSON: ${(e as Error).message}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the self-check admission took longer than 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}
