// The local trust stack itself: every scenario stage is published with the real notary
// CLI, then checked three ways: a fresh `notary lookup` (independent full verification),
// the raw metadata the server serves, and the manifest the registry serves.
import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createScenario, expectedTargets, STAGES, FILE_TARGET, type ScenarioState, type Stage } from '../support/scenario.js';
import {
  fetchToken,
  fetchTuf,
  fetchTufJson,
  getManifest,
  notaryAuthEnv,
  notaryCli,
  notaryLookup,
  notaryOk,
  pidAlive,
  pushImage,
  rootPublicKeyPem,
  stackPids,
  startStack,
  type Stack,
} from '../support/stack.js';

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function decodeJwtClaims(token: string): any {
  const part = token.split('.')[1];
  if (part === undefined) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function delegation(targetsJson: any, role: string): any {
  const found = (targetsJson.signed.delegations?.roles ?? []).find((r: any) => r.name === role);
  expect(found, `delegation ${role}`).to.not.equal(undefined);
  return found;
}

function delegationKeyTypes(targetsJson: any, role: string): string[] {
  const d = delegation(targetsJson, role);
  return d.keyids.map((id: string) => targetsJson.signed.delegations.keys[id].keytype);
}

describe('local notary stack (real notary-server, notary-signer, docker-registry)', function () {
  this.timeout(120_000);
  let stack: Stack | undefined;
  const s = (): Stack => {
    if (!stack) throw new Error('stack did not start');
    return stack;
  };

  before(async function () {
    this.timeout(600_000); // first run may have to apt-get install the packages
    stack = await startStack({ ed25519: true, tokenAuth: true });
    // signer, server, registry, ed25519 server, token server, token-auth server
    expect(stackPids(stack.runDir)).to.have.length(6);
  });

  after(async function () {
    if (!stack) return;
    const pids = stackPids(stack.runDir);
    expect(pids).to.have.length(6);
    await stack.stop();
    await stack.stop(); // idempotent
    expect(pids.filter(pidAlive), 'stack processes still running after stop()').to.deep.equal([]);
    expect(existsSync(stack.dir)).to.equal(false);
  });

  describe('publishing scenario', () => {
    let state: ScenarioState;
    let prevRoot: any;
    let broken: string | undefined;

    before(() => {
      state = createScenario(s());
    });

    async function commonChecks(stage: Stage): Promise<void> {
      for (const t of expectedTargets(state, stage)) {
        expect(await notaryLookup(s(), state.gun, t.name), `lookup ${t.name}`).to.deep.equal({ digest: t.digest, size: t.size });
        if (t.image) {
          const m = await getManifest(s(), t.image.repo, t.image.reference);
          expect(m.status, `manifest ${t.image.reference}`).to.equal(200);
          expect(m.headers['docker-content-digest']).to.equal(t.digest);
          expect(sha256(m.body)).to.equal(t.digest);
          expect(m.body.length).to.equal(t.size);
        }
      }
      for (const name of stage.absent) {
        expect(await notaryLookup(s(), state.gun, name), `lookup ${name} after ${stage.name}`).to.equal(null);
      }
      const root = await fetchTufJson(s(), state.gun, 'root.json');
      expect(root.signed._type).to.equal('Root');
      const ts = await fetchTufJson(s(), state.gun, 'timestamp.json');
      expect(ts.signed._type).to.equal('Timestamp');
      expect(root.signed.roles.timestamp.keyids).to.include(ts.signatures[0].keyid);
    }

    const specific: Record<Stage['name'], (root: any) => Promise<void>> = {
      init: async (root) => {
        expect(root.signed.version).to.equal(1);
        const cert = new X509Certificate(state.originalRootPem ?? '');
        expect(cert.subject).to.equal(`CN=${state.gun}`);
        expect(await rootPublicKeyPem(s(), state.gun)).to.equal(state.originalRootPem);
      },
      targets: async () => {
        const t = await fetchTufJson(s(), state.gun, 'targets.json');
        expect(Object.keys(t.signed.targets).sort()).to.deep.equal([FILE_TARGET, 'v1.0']);
      },
      'delegation-releases': async () => {
        const t = await fetchTufJson(s(), state.gun, 'targets.json');
        expect(delegation(t, 'targets/releases').paths).to.deep.equal(['']);
        expect(delegationKeyTypes(t, 'targets/releases')).to.deep.equal(['ecdsa-x509']);
        const rel = await fetchTufJson(s(), state.gun, 'targets/releases.json');
        expect(Object.keys(rel.signed.targets)).to.deep.equal(['v2.0']);
      },
      'delegation-qa': async () => {
        const t = await fetchTufJson(s(), state.gun, 'targets.json');
        expect(delegation(t, 'targets/qa').paths).to.deep.equal(['qa/']);
        expect(delegationKeyTypes(t, 'targets/qa')).to.deep.equal(['rsa-x509']);
        const qa = await fetchTufJson(s(), state.gun, 'targets/qa.json');
        expect(Object.keys(qa.signed.targets)).to.deep.equal(['qa/rc1']);
      },
      'delegation-nightly': async () => {
        const rel = await fetchTufJson(s(), state.gun, 'targets/releases.json');
        expect(delegation(rel, 'targets/releases/nightly').paths).to.deep.equal(['nightly/']);
        expect(delegationKeyTypes(rel, 'targets/releases/nightly')).to.deep.equal(['ecdsa']);
        const n = await fetchTufJson(s(), state.gun, 'targets/releases/nightly.json');
        expect(Object.keys(n.signed.targets)).to.deep.equal(['nightly/build-1']);
      },
      'snapshot-to-server': async (root) => {
        expect(root.signed.roles.snapshot.keyids).to.not.deep.equal(prevRoot.signed.roles.snapshot.keyids);
        const served = await fetchTufJson(s(), state.gun, 'snapshot.key');
        const [id] = root.signed.roles.snapshot.keyids;
        expect(root.signed.keys[id].keyval.public).to.equal(served.keyval.public);
        const snap = await fetchTufJson(s(), state.gun, 'snapshot.json');
        expect(snap.signatures.map((x: any) => x.keyid)).to.deep.equal([id]);
      },
      'rotate-targets': async (root) => {
        expect(root.signed.roles.targets.keyids).to.not.deep.equal(prevRoot.signed.roles.targets.keyids);
        const t = await fetchTufJson(s(), state.gun, 'targets.json');
        expect(t.signatures.map((x: any) => x.keyid)).to.deep.equal(root.signed.roles.targets.keyids);
      },
      'rotate-timestamp': async (root) => {
        expect(root.signed.roles.timestamp.keyids).to.not.deep.equal(prevRoot.signed.roles.timestamp.keyids);
      },
      'rotate-root': async (root) => {
        expect(root.signed.version).to.be.greaterThan(prevRoot.signed.version);
        const newPem = await rootPublicKeyPem(s(), state.gun);
        expect(newPem).to.not.equal(state.originalRootPem);
        // A client holding the previous root can only follow if the old key signed too.
        const sigIds = root.signatures.map((x: any) => x.keyid);
        expect(sigIds).to.include.members([...prevRoot.signed.roles.root.keyids, ...root.signed.roles.root.keyids]);
        const old = await fetchTufJson(s(), state.gun, `${prevRoot.signed.version}.root.json`);
        expect(old.signed.roles.root.keyids).to.deep.equal(prevRoot.signed.roles.root.keyids);
      },
      'remove-target': async () => {
        const t = await fetchTufJson(s(), state.gun, 'targets.json');
        expect(Object.keys(t.signed.targets)).to.deep.equal(['v1.0']);
      },
    };

    for (const stage of STAGES) {
      it(`${stage.name}: ${stage.description}`, async () => {
        if (broken) throw new Error(`not run: earlier stage ${broken} failed`);
        broken = stage.name;
        await stage.run(state);
        await commonChecks(stage);
        const root = await fetchTufJson(s(), state.gun, 'root.json');
        await specific[stage.name](root);
        prevRoot = root;
        broken = undefined;
      });
    }

    it('different image content gives different digests; same content the same digest', async () => {
      const a = await pushImage(s(), 'demo/determinism', 'a', 'content A');
      const a2 = await pushImage(s(), 'demo/determinism', 'a2', 'content A');
      const b = await pushImage(s(), 'demo/determinism', 'b', 'content B');
      expect(a2).to.deep.equal(a);
      expect(b.digest).to.not.equal(a.digest);
    });
  });

  describe('token-auth notary-server', () => {
    let gun: string;
    let trustDir: string;

    before(async () => {
      gun = `${s().registryHost}/token/app`;
      trustDir = mkdtempSync(join(s().dir, 'token-trust-'));
    });

    it('refuses anonymous requests with a Bearer challenge naming the realm', async () => {
      const r = await fetchTuf(s(), gun, 'root.json', { server: s().tokenNotaryUrl });
      expect(r.status).to.equal(401);
      expect(r.headers['www-authenticate']).to.equal(
        `Bearer realm="${s().tokenRealm}",service="notary-server",scope="repository:${gun}:pull"`,
      );
    });

    it('lets only the credentialed user publish', async () => {
      const anon = await notaryCli(s(), ['init', '-p', gun], { server: s().tokenNotaryUrl, trustDir: mkdtempSync(join(s().dir, 'anon-')) });
      expect(anon.code).to.not.equal(0);
      const bad = await fetchToken(s(), `repository:${gun}:push,pull`, { username: 'user', password: 'wrong' });
      expect(bad.status).to.equal(401);
      await notaryOk(s(), ['init', '-p', gun], { server: s().tokenNotaryUrl, trustDir, env: notaryAuthEnv(s()) });
      await notaryOk(s(), ['addhash', gun, 'v1', '3', '--sha256', 'ab'.repeat(32), '-p'], {
        server: s().tokenNotaryUrl,
        trustDir,
        env: notaryAuthEnv(s()),
      });
    });

    it('serves trust data with an anonymous pull token', async () => {
      const t = await fetchToken(s(), `repository:${gun}:push,pull`);
      expect(t.status).to.equal(200);
      expect(decodeJwtClaims(t.token ?? '').access).to.deep.equal([{ type: 'repository', name: gun, actions: ['pull'] }]);
      const r = await fetchTuf(s(), gun, 'root.json', { server: s().tokenNotaryUrl, token: t.token ?? '' });
      expect(r.status).to.equal(200);
      expect(JSON.parse(r.body.toString('utf8')).signed._type).to.equal('Root');
      // The token is scoped: it opens nothing for another repository.
      const other = await fetchTuf(s(), `${s().registryHost}/token/other`, 'root.json', {
        server: s().tokenNotaryUrl,
        token: t.token ?? '',
      });
      expect(other.status).to.equal(401);
      expect(await notaryLookup(s(), gun, 'v1', { server: s().tokenNotaryUrl })).to.deep.equal({
        digest: `sha256:${'ab'.repeat(32)}`,
        size: 3,
      });
    });
  });

  describe('ed25519 notary-server (local signing)', () => {
    it('signs timestamps with an ed25519 key', async () => {
      const gun = `${s().registryHost}/ed/app`;
      const server = s().ed25519Url;
      if (server === undefined) throw new Error('stack has no ed25519 server');
      const trustDir = mkdtempSync(join(s().dir, 'ed-trust-'));
      await notaryOk(s(), ['init', '-p', gun], { server, trustDir });
      await notaryOk(s(), ['addhash', gun, 'v1', '7', '--sha256', 'cd'.repeat(32), '-p'], { server, trustDir });
      const opts = { server };
      const root = await fetchTufJson(s(), gun, 'root.json', opts);
      const ts = await fetchTufJson(s(), gun, 'timestamp.json', opts);
      const [id] = root.signed.roles.timestamp.keyids;
      expect(root.signed.keys[id].keytype).to.equal('ed25519');
      expect(ts.signatures).to.deep.include({ keyid: id, method: 'eddsa', sig: ts.signatures[0].sig });
      expect(await notaryLookup(s(), gun, 'v1', opts)).to.deep.equal({ digest: `sha256:${'cd'.repeat(32)}`, size: 7 });
    });
  });
});
