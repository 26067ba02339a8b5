// A self-check before a replica reports ready: one Pod admission through the real code,
// end to end, on a throwaway HTTPS server with the serving pair: TLS handshake, body
// parsing, review checks, the verification engine fetching a built-in signed repository from a
// loopback Notary-style server through HttpSource and walking it
// (ECDSA and RSA certificate keys, Ed25519 keys, two delegations), the JSONPatch. It proves
// the build verifies signatures (a broken one refuses to start), and it is what makes the
// first real admission after a start cost what one in a running replica does: lazy module
// loads, OpenSSL and noble initialisation and the JIT are paid here, not by a Pod.
// Nothing of it is kept: its own engine, cache and metrics; the fixture is checked at the
// instant it was signed, so it never goes stale.
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, createServer as createHttpServer } from 'node:http';
import { request, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createAdmissionHandler } from '../admission/handler.js';
import { HttpSource } from '../notary/http-source.js';
import { parsePolicy } from '../policy/model.js';
import { VerificationEngine } from '../verify/engine.js';
import { FIXTURE } from '../verify/self-check-fixture.js';
import { MemoryVersionStore } from '../verify/version-store.js';
import { createApp } from './app.js';
import { TLS_SETTINGS } from './tls.js';

const WARM_VERIFICATIONS = 8;

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

/**
 * Serves the repository the way a Notary server does (`/v2/{gun}/_trust/tuf/{file}`) on
 * loopback, so the self-check fetches through the same HTTP source code as an admission.
 */
async function serveRepository(repo: SelfCheckRepository): Promise<{ url: string; close(): Promise<void> }> {
  const files = new Map<string, Buffer>();
  for (const [role, b64] of Object.entries(repo.files)) {
    const bytes = Buffer.from(b64, 'base64');
    files.set(`/v2/${repo.gun}/_trust/tuf/${role}.json`, bytes);
    files.set(`/v2/${repo.gun}/_trust/tuf/${role}.${createHash('sha256').update(bytes).digest('hex')}.json`, bytes);
  }
  const server = createHttpServer((req, res) => {
    const body = req.method === 'GET' ? files.get(req.url ?? '') : undefined;
    if (!body) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"METADATA_NOT_FOUND"}]}');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
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
  const trust = await serveRepository(repo);
  const agent = new HttpAgent({ keepAlive: true });
  const newEngine = () =>
    new VerificationEngine({
      policies: { policiesFor: (reference) => (reference.startsWith(`${repo.gun}:`) ? [policy] : []) },
      sourceFor: () => new HttpSource({ url: trust.url, gun: repo.gun, agent }),
      clock: () => at,
      versions: new MemoryVersionStore(),
    });
  const server = createServer({ ...TLS_SETTINGS, cert: pair.cert, key: pair.key });
  try {
    // A few cold verifications first, each with an empty cache, so the verification code
    // runs compiled (V8 tiers code up after a few calls) by the time a Pod needs it.
    for (let i = 0; i < WARM_VERIFICATIONS; i++) await newEngine().verifyImage(`${repo.gun}:${repo.tag}`, undefined, new AbortController().signal);
    const handler = createAdmissionHandler({ verifier: newEngine(), mutate: true });
    server.on('request', createApp({ handlers: { mutate: handler, validate: handler }, ready: () => true }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const image = `${repo.gun}:${repo.tag}`;
    const answer = await post((server.address() as AddressInfo).port, review(image));
    const pinned = `${image}@${repo.digest}`;
    const patch = typeof answer.patch === 'string' ? Buffer.from(answer.patch, 'base64').toString('utf8') : '';
    if (answer.allowed !== true || !patch.includes(pinned)) {
      throw new Error(`the self-check admission of the built-in signed image was not pinned to ${repo.digest}: ${answer.status?.message ?? JSON.stringify(answer).slice(0, 300)}`);
    }
  } finally {
    server.closeAllConnections();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    agent.destroy();
    await trust.close();
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
