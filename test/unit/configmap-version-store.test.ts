// High-water marks shared through a ConfigMap, exercised with @kubernetes/client-node's real
// requests against a small server that answers like kube-apiserver (resourceVersion, 409).
import { expect } from 'chai';
import http from 'node:http';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ConfigMapVersionStore } from '../../webhook/src/verify/configmap-version-store.js';
import { RepoForge } from '../support/forge.js';
import { update } from '../support/forged-source.js';
import { pinFromPem } from '../../webhook/src/tuf/index.js';

interface Stored {
  metadata: { name: string; namespace: string; resourceVersion: string };
  data: Record<string, string>;
}

class FakeConfigMaps {
  server = http.createServer((req, res) => void this.handle(req, res));
  stored: Stored | undefined;
  rv = 1;
  writes = 0;
  conflicts = 0;
  /** Simulate another replica writing between our read and our write, once. */
  interleave: (() => void) | undefined;

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/([^/?]+))?/.exec(req.url ?? '');
    if (!m) return send(404, { kind: 'Status', code: 404 });
    if (req.method === 'GET') {
      if (!this.stored) return send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
      return send(200, { apiVersion: 'v1', kind: 'ConfigMap', ...this.stored });
    }
    const body = JSON.parse(Buffer.concat(chunks).toString()) as Stored;
    if (this.interleave) {
      const f = this.interleave;
      this.interleave = undefined;
      f();
    }
    if (req.method === 'POST') {
      if (this.stored) return send(409, { kind: 'Status', reason: 'AlreadyExists', code: 409 });
    } else if (req.method === 'PUT') {
      if (!this.stored) return send(404, { kind: 'Status', code: 404 });
      if (body.metadata.resourceVersion !== this.stored.metadata.resourceVersion) {
        this.conflicts++;
        return send(409, { kind: 'Status', reason: 'Conflict', code: 409 });
      }
    }
    this.writes++;
    this.stored = { metadata: { ...body.metadata, resourceVersion: String(++this.rv) }, data: body.data };
    return send(req.method === 'POST' ? 201 : 200, { apiVersion: 'v1', kind: 'ConfigMap', ...this.stored });
  }
}

function api(url: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc.makeApiClient(CoreV1Api);
}

describe('ConfigMap high-water marks shared by replicas', () => {
  const now = new Date('2031-01-01T00:00:00Z');
  let fake: FakeConfigMaps;
  let url: string;
  const forge = new RepoForge({ now });
  const pin = pinFromPem(forge.build().rootPems);
  const load = async () => (await update(forge.build(), { pin })).repo;

  beforeEach(async () => {
    fake = new FakeConfigMaps();
    url = await fake.listen();
  });
  afterEach(() => fake.server.close());

  const store = () => new ConfigMapVersionStore({ api: api(url), namespace: 'trustgate', name: 'trustgate-state', syncMs: 0 });

  it('creates the ConfigMap on the first mark and lets another replica (or a restart) start from it', async () => {
    const a = store();
    await a.start();
    forge.bump('timestamp').bump('snapshot');
    const repo = await load();
    a.record('srv|gun', repo);
    await a.flushed();
    expect(fake.writes).to.equal(1);
    const b = store();
    await b.start();
    expect(b.floor('srv|gun').get('timestamp')).to.equal(repo.parts.timestamp.meta.version);
    expect(b.floor('srv|gun').get('snapshot')).to.equal(repo.parts.snapshot.meta.version);
  });

  it('writes only when a version moves', async () => {
    const a = store();
    await a.start();
    const repo = await load();
    a.record('srv|gun', repo);
    await a.flushed();
    a.record('srv|gun', repo);
    a.record('srv|gun', repo);
    await a.flushed();
    expect(fake.writes).to.equal(1);
  });

  it('on a conflict merges the other replica\'s marks instead of overwriting them', async () => {
    const a = store();
    await a.start();
    a.record('repo-a', await load());
    await a.flushed();
    // Replica B writes repo-b between A's read and A's write.
    fake.interleave = () => {
      fake.stored = {
        metadata: { ...fake.stored!.metadata, resourceVersion: String(++fake.rv) },
        data: { 'marks.json': JSON.stringify({ ...JSON.parse(fake.stored!.data['marks.json']!), 'repo-b': { timestamp: 99 } }) },
      };
    };
    forge.bump('timestamp');
    a.record('repo-a', await load());
    await a.flushed();
    expect(fake.conflicts).to.equal(1);
    const marks = JSON.parse(fake.stored!.data['marks.json']!) as Record<string, Record<string, number>>;
    expect(marks['repo-b']).to.deep.equal({ timestamp: 99 });
    expect(marks['repo-a']!['timestamp']).to.be.greaterThan(1);
    expect(a.floor('repo-b').get('timestamp')).to.equal(99);
  });

  it('never lowers a mark from what the ConfigMap says, and ignores garbage in it', async () => {
    fake.stored = { metadata: { name: 'trustgate-state', namespace: 'trustgate', resourceVersion: '5' }, data: { 'marks.json': JSON.stringify({ r: { timestamp: 7, targets: 'x', snapshot: -1 } }) } };
    const a = store();
    await a.start();
    expect([...a.floor('r')]).to.deep.equal([['timestamp', 7]]);
    fake.stored.data['marks.json'] = '{not json';
    const b = store();
    await b.start();
    expect(b.floor('r').size).to.equal(0);
  });
});
