// The webhook with a TUF 1.0 trust source, as an admin runs it: a repository built by
// @tufjs/models, published as static files behind a real nginx over TLS, a ClusterTrustPolicy
// with protocol tuf in a policy directory, `trustgate serve` (the real runServe, engine and
// handler) answering AdmissionReviews over HTTPS.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createVerifier } from '../../webhook/src/cli/serve-command.js';
import { runServe, type ServeHandle } from '../../webhook/src/cli/serve.js';
import { postJson } from '../fixtures/admission/https-client.js';
import { captureLogger } from '../fixtures/admission/support.js';
import { reviewFrom } from '../support/e2e-webhook.js';
import { TufRepo, sha256hex } from '../support/tuf1-repo.js';
import { startStaticServer, type StaticServer } from '../support/static-server.js';

const REG = 'registry.example.com';
const SIGNED = '{"schemaVersion":2,"signed":true}';
const DIGEST = `sha256:${sha256hex(Buffer.from(SIGNED))}`;

describe('webhook with a TUF 1.0 repository (nginx, protocol tuf)', function () {
  this.timeout(60_000);
  let work: string;
  let server: StaticServer;
  let handle: ServeHandle;
  let repo: TufRepo;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'tg-tuf1-webhook-'));
    const metadata = join(work, 'metadata');
    mkdirSync(metadata);
    repo = new TufRepo({ kinds: { root: 'ecdsa-p256', targets: 'ed25519' } });
    repo.delegate('payments-release', { paths: [`${REG}/payments/*`], kind: 'ecdsa-p384' });
    repo.delegate('payments-ci', { paths: [`${REG}/payments/*`] });
    repo.addTarget('payments-release', `${REG}/payments/app:1.0`, SIGNED);
    repo.addTarget('payments-ci', `${REG}/payments/app:ci`, '{"ci":true}');
    repo.delegate('stale', { paths: [`${REG}/stale/*`] });
    repo.addTarget('stale', `${REG}/stale/app:1.0`, SIGNED);
    (repo.targets.get('stale')!.signed as { expires: string }).expires = repo.expiresIn(-1);
    for (const [name, bytes] of repo.publish({ hashes: true })) writeFileSync(join(metadata, name), bytes);
    server = await startStaticServer(metadata);

    const policies = join(work, 'policies');
    mkdirSync(policies);
    const policy = (name: string, images: string[], extra: Record<string, unknown> = {}) =>
      stringify({
        apiVersion: 'trustgate.dev/v1alpha1',
        kind: 'ClusterTrustPolicy',
        metadata: { name },
        spec: {
          images,
          trustServer: { protocol: 'tuf', url: server.url, caBundle: server.ca.certPem },
          root: { trustedRoot: repo.roots.get(1)!.toString('utf8') },
          ...extra,
        },
      });
    writeFileSync(join(policies, 'payments.yaml'), policy('payments', [`${REG}/payments/**`], { delegations: { roles: ['payments-release'] } }));
    writeFileSync(join(policies, 'stale.yaml'), policy('stale', [`${REG}/stale/**`]));
    handle = await runServe(['--policy-dir', policies, '--port', '0', '--host', '127.0.0.1', '--deadline', '10'], { createVerifier, log: captureLogger(), print: () => undefined });
  });

  after(async () => {
    await handle?.close();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  async function admit(path: string, image: string): Promise<{ allowed: boolean; message: string; patch?: unknown[] }> {
    const review = reviewFrom('pod-create.json', { images: Object.fromEntries(['/spec/initContainers/0/image', '/spec/containers/0/image', '/spec/containers/1/image'].map((p) => [p, image])) });
    const r = await postJson(handle.port, path, review);
    expect(r.status).to.equal(200);
    const res = JSON.parse(r.body).response;
    return {
      allowed: res.allowed as boolean,
      message: String(res.status?.message ?? ''),
      ...(res.patch ? { patch: JSON.parse(Buffer.from(res.patch as string, 'base64').toString('utf8')) as unknown[] } : {}),
    };
  }

  it('pins a tag signed by the required role to the digest of its target', async () => {
    const a = await admit('/mutate', `${REG}/payments/app:1.0`);
    expect(a.allowed, a.message).to.equal(true);
    expect(JSON.stringify(a.patch)).to.contain(`${REG}/payments/app:1.0@${DIGEST}`);
  });

  it('admits the signed digest by itself, and a tag@digest that matches', async () => {
    expect((await admit('/validate', `${REG}/payments/app@${DIGEST}`)).allowed).to.equal(true);
    expect((await admit('/validate', `${REG}/payments/app:1.0@${DIGEST}`)).allowed).to.equal(true);
  });

  it('denies a tag signed only by a role the policy does not require, naming image, policy, role and server', async () => {
    const a = await admit('/mutate', `${REG}/payments/app:ci`);
    expect(a.allowed).to.equal(false);
    expect(a.message).to.contain(`${REG}/payments/app:ci`).and.contain('payments').and.contain('payments-release').and.contain(server.url.replace(/\/$/, ''));
    expect(a.message).to.contain('tag "ci" is not signed by payments-release (required)');
  });

  it('denies an unsigned tag and a digest no tag carries', async () => {
    expect((await admit('/mutate', `${REG}/payments/app:2.0`)).allowed).to.equal(false);
    const other = `sha256:${'ab'.repeat(32)}`;
    const a = await admit('/validate', `${REG}/payments/app@${other}`);
    expect(a.allowed).to.equal(false);
    expect(a.message).to.contain(other);
  });

  it('denies an image whose delegation has expired, saying so', async () => {
    const a = await admit('/mutate', `${REG}/stale/app:1.0`);
    expect(a.allowed).to.equal(false);
    expect(a.message).to.contain('stale').and.contain('expired');
  });
});
