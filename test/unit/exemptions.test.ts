// `--exempt` from the attacker's side, through the real serve path (runServe with the real
// engine and policy directory, AdmissionReviews over HTTPS to /mutate and /validate): an
// exemption admits exactly what it names, never a digest it does not name, never another
// registry that happens to share a prefix.
import { expect } from 'chai';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVerifier } from '../../webhook/src/cli/serve-command.js';
import { runServe, type ServeHandle } from '../../webhook/src/cli/serve.js';
import { SettingsError } from '../../webhook/src/cli/settings.js';
import { postJson } from '../fixtures/admission/https-client.js';
import { captureLogger } from '../fixtures/admission/support.js';
import { reviewFrom } from '../support/e2e-webhook.js';
import { policyYaml } from '../support/e2e-policies.js';

const IMAGE_FIELDS = ['/spec/initContainers/0/image', '/spec/containers/0/image', '/spec/containers/1/image'];
const digest = () => `sha256:${randomBytes(32).toString('hex')}`;

describe('exemptions: exempt exactly what they name (attacker side, real handler)', () => {
  let work: string;
  let policyDir: string;
  const vouched = digest();

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'tg-exempt-'));
    policyDir = join(work, 'policies');
    // Everything on registry.test must be verified; its trust server refuses connections, so
    // anything not exempt is denied under this policy.
    const rootPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    mkdirSync(policyDir);
    writeFileSync(
      join(policyDir, 'registry-test.yaml'),
      policyYaml({ kind: 'ClusterTrustPolicy', name: 'registry-test', images: ['registry.test/**'], server: 'http://127.0.0.1:1', rootPems: [rootPem] }),
    );
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  async function serve(exempt: string[]): Promise<ServeHandle> {
    return runServe(['--policy-dir', policyDir, '--port', '0', '--host', '127.0.0.1', '--deadline', '5', ...exempt.flatMap((e) => ['--exempt', e])], {
      createVerifier,
      log: captureLogger(),
      print: () => undefined,
    });
  }

  /** The answers of /mutate and /validate for a Pod whose every container runs `image`. */
  async function answers(handle: ServeHandle, image: string): Promise<Array<{ allowed: boolean; message: string; patch?: string }>> {
    const out = [];
    for (const path of ['/mutate', '/validate']) {
      const review = reviewFrom('pod-create.json', { images: Object.fromEntries(IMAGE_FIELDS.map((p) => [p, image])) });
      const r = await postJson(handle.port, path, review);
      expect(r.status).to.equal(200);
      const res = JSON.parse(r.body).response;
      out.push({ allowed: res.allowed as boolean, message: String(res.status?.message ?? ''), ...(res.patch ? { patch: res.patch as string } : {}) });
    }
    return out;
  }

  async function expectDenied(handle: ServeHandle, image: string): Promise<void> {
    for (const a of await answers(handle, image)) {
      expect(a.allowed, `${image} was admitted`).to.equal(false);
      expect(a.message).to.contain(image).and.contain('registry-test');
    }
  }

  async function expectExempt(handle: ServeHandle, image: string): Promise<void> {
    for (const a of await answers(handle, image)) {
      expect(a.allowed, a.message).to.equal(true);
      // Exempt means unverified: nothing to pin it to.
      expect(a.patch).to.equal(undefined);
    }
  }

  describe('--exempt registry.test/tools/helper:1.0 (a tag)', () => {
    let handle: ServeHandle;
    before(async () => (handle = await serve(['registry.test/tools/helper:1.0'])));
    after(async () => handle?.close());

    it('exempts the tag it names', async () => {
      await expectExempt(handle, 'registry.test/tools/helper:1.0');
    });

    it('does not exempt that tag with any digest appended: the runtime pulls the digest, not the tag', async () => {
      await expectDenied(handle, `registry.test/tools/helper:1.0@${digest()}`);
    });

    it('does not exempt a bare digest of the repository', async () => {
      await expectDenied(handle, `registry.test/tools/helper@${digest()}`);
    });
  });

  describe('--exempt registry.test/tools/helper:1.0@sha256:<digest> (a vouched-for digest)', () => {
    let handle: ServeHandle;
    before(async () => (handle = await serve([`registry.test/tools/helper:1.0@${vouched}`])));
    after(async () => handle?.close());

    it('exempts the reference naming that digest', async () => {
      await expectExempt(handle, `registry.test/tools/helper:1.0@${vouched}`);
    });

    it('does not exempt another digest under the same tag', async () => {
      await expectDenied(handle, `registry.test/tools/helper:1.0@${digest()}`);
    });

    it('does not exempt the tag alone: a tag can be moved to other content', async () => {
      await expectDenied(handle, 'registry.test/tools/helper:1.0');
    });
  });

  describe('--exempt registry.test/infra/** (a whole subtree)', () => {
    let handle: ServeHandle;
    before(async () => (handle = await serve(['registry.test/infra/**'])));
    after(async () => handle?.close());

    it('exempts tagged references below it', async () => {
      await expectExempt(handle, 'registry.test/infra/agent:2.1');
    });

    it('does not exempt a digest it does not name', async () => {
      await expectDenied(handle, `registry.test/infra/agent:2.1@${digest()}`);
    });

    it('does not exempt a sibling path sharing the prefix', async () => {
      await expectDenied(handle, 'registry.test/infra-evil/agent:2.1');
    });
  });

  describe('patterns that would reach other registries refuse the start', () => {
    for (const [pattern, reason] of [
      ['registry.test*/infra/**', /registry "registry.test\*" must be literal/],
      ['*.test/infra/**', /must be literal/],
      ['registry.tes?/infra/**', /must be literal/],
      ['infra/**', /must start with a registry domain/],
      ['nginx:1.25', /docker\.io\/library\/nginx:1\.25/],
      [`registry.test/infra/**@sha256:${'A'.repeat(64)}`, /64 lowercase hex/],
    ] as const) {
      it(`--exempt ${pattern}`, async () => {
        let started: ServeHandle | undefined;
        let error: unknown;
        try {
          started = await serve([pattern]);
        } catch (e) {
          error = e;
        }
        // Before this was checked, registry.test.evil.io/infra/... was admitted unverified.
        if (started) {
          const evil = await answers(started, 'registry.test.evil.io/infra/agent:1');
          await started.close();
          expect.fail(`started with --exempt ${pattern}; registry.test.evil.io/infra/agent:1 admitted: ${evil.map((a) => a.allowed).join(', ')}`);
        }
        expect(error).to.be.instanceOf(SettingsError);
        expect((error as Error).message).to.contain('--exempt').and.contain(JSON.stringify(pattern)).and.match(reason);
      });
    }
  });
});

