// A TUF 1.0 repository through the real engine: a delegated role loaded by a lookup becomes a
// high-water mark, a warm lookup records nothing, and warm images are answered synchronously
// (verifyCached, the admission handler's fast path) with the answer verifyImage gives.
import { expect } from 'chai';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { SpecTrustedSet, targetsMarkKey } from '../../webhook/src/tuf/tuf1/trusted-set.js';
import { MemoryVersionStore } from '../../webhook/src/verify/version-store.js';
import { DAY, TufRepo } from '../support/tuf1-repo.js';
import { MemorySpecSource } from '../support/tuf1-memory-source.js';

const REG = 'registry.example.com';

class CountingStore extends MemoryVersionStore {
  recorded = 0;
  override recordVersions(repository: string, versions: ReadonlyMap<string, number>): void {
    this.recorded++;
    super.recordVersions(repository, versions);
  }
}

function setup() {
  const repo = new TufRepo();
  repo.delegate('team-a', { paths: [`${REG}/a/*`] });
  repo.delegate('team-b', { paths: [`${REG}/b/*`] });
  repo.addTarget('team-a', `${REG}/a/app:1`, 'a');
  repo.addTarget('team-b', `${REG}/b/app:1`, 'b');
  (repo.targets.get('team-b')!.signed as { version: number }).version = 4;
  const source = new MemorySpecSource(repo.publish());
  const url = 'https://tuf.example.com/metadata/';
  const policy = (delegations?: { roles: string[]; threshold: number }): TrustPolicy => ({
    kind: 'ClusterTrustPolicy',
    name: 'tuf',
    source: 'test',
    spec: {
      images: [`${REG}/**`],
      trustServer: { protocol: 'tuf', url },
      root: { keys: [], threshold: 1, trustedRoot: repo.roots.get(1)!.toString('utf8') },
      ...(delegations ? { delegations } : {}),
      mode: 'enforce',
    },
  });
  return { repo, source, url, policy };
}

describe('TUF 1.0 through the engine', () => {
  it('answers warm images synchronously, as verifyImage does, and leaves images needing a role not yet loaded to verifyImage', async () => {
    const { repo, source, policy } = setup();
    let now = repo.now;
    for (const required of [undefined, { roles: ['team-a'], threshold: 1 }]) {
      const p = policy(required);
      const engine = new VerificationEngine({
        policies: { policiesFor: () => [p] },
        sourceFor: () => {
          throw new Error('no Notary policy here');
        },
        tufSourceFor: () => source,
        clock: () => now,
      });
      const signal = AbortSignal.timeout(5000);
      const signed = `${REG}/a/app:1`;
      expect(engine.verifyCached(signed, 'default'), 'nothing loaded yet').to.equal(undefined);
      const loaded = await engine.verifyImage(signed, 'default', signal);
      expect(loaded.allowed).to.equal(true);
      expect(engine.verifyCached(signed, 'default')).to.deep.equal(loaded);
      // Unsigned in a loaded role: denied synchronously, with the same words.
      const unsigned = `${REG}/a/app:2`;
      const cachedDenial = engine.verifyCached(unsigned, 'default');
      expect(cachedDenial?.allowed).to.equal(false);
      expect(cachedDenial).to.deep.equal(await engine.verifyImage(unsigned, 'default', signal));
      // By digest: found through the loaded role's targets.
      const byDigest = `${REG}/a/app@${loaded.digest}`;
      expect(engine.verifyCached(byDigest, 'default')?.allowed).to.equal(true);
      // team-b is not loaded: only verifyImage can answer.
      expect(engine.verifyCached(`${REG}/b/app:1`, 'default')).to.equal(undefined);
      expect((await engine.verifyImage(`${REG}/b/app:1`, 'default', signal)).allowed).to.equal(required === undefined);
      // Past the delegation's expiry, the cached answer is a denial, never the old allow.
      now = new Date(repo.now.getTime() + 31 * DAY);
      const late = engine.verifyCached(signed, 'default');
      expect(late === undefined || late.allowed === false, JSON.stringify(late)).to.equal(true);
      now = repo.now;
    }
  });

  it('records marks when a lookup first verifies a role, and nothing on warm lookups', async () => {
    const { repo, source, url, policy: make } = setup();
    const policy = make();
    const versions = new CountingStore();
    const engine = new VerificationEngine({
      policies: { policiesFor: () => [policy] },
      sourceFor: () => {
        throw new Error('no Notary policy here');
      },
      tufSourceFor: () => source,
      versions,
      clock: () => repo.now,
    });
    const verify = async (image: string) => (await engine.verifyImage(image, 'default', AbortSignal.timeout(5000))).allowed;
    const key = `tuf|${url}`;

    // Targets roles' marks are keyed with the timestamp/snapshot keys of the root they were trusted under.
    const mark = (role: string) => targetsMarkKey(role, new SpecTrustedSet(repo.roots.get(1)!, repo.now).root);
    expect(await verify(`${REG}/a/app:1`)).to.equal(true);
    expect(versions.floor(key).get(mark('team-a'))).to.equal(1);
    expect(versions.floor(key).has(mark('team-b'))).to.equal(false);
    const afterFirst = versions.recorded;

    for (let i = 0; i < 5; i++) expect(await verify(`${REG}/a/app:1`)).to.equal(true);
    expect(await verify(`${REG}/a/app:2`)).to.equal(false);
    expect(versions.recorded, 'warm lookups record no marks').to.equal(afterFirst);

    // A lookup that verifies a new role records once.
    expect(await verify(`${REG}/b/app:1`)).to.equal(true);
    expect(versions.recorded).to.equal(afterFirst + 1);
    expect(versions.floor(key).get(mark('team-b'))).to.equal(4);
  });

  it('exports the expiry of every role verified, delegated roles as lookups load them', async () => {
    const { repo, policy: make } = setup();
    (repo.targets.get('team-a')!.signed as { expires: string }).expires = repo.expiresIn(2);
    const fresh = new MemorySpecSource(repo.publish());
    const policy = make();
    const seen = new Map<string, { server: string; repository: string; expiries: Array<{ role: string; expires: Date }> }>();
    const forgotten: string[] = [];
    const engine = new VerificationEngine({
      policies: { policiesFor: () => [policy] },
      sourceFor: () => {
        throw new Error('no Notary policy here');
      },
      tufSourceFor: () => fresh,
      clock: () => repo.now,
      metrics: { trustDataVerified: (key, data) => seen.set(key, data), trustDataForgotten: (key) => forgotten.push(key) },
    });
    expect(await engine.verifyImage(`${REG}/a/app:1`, 'default', AbortSignal.timeout(5000))).to.deep.include({ allowed: true });
    expect(seen.size).to.equal(1);
    const [series] = [...seen.values()];
    expect(series!.server).to.equal(policy.spec.trustServer.url);
    const byRole = new Map(series!.expiries.map((e) => [e.role, e.expires.getTime()]));
    expect([...byRole.keys()].sort()).to.deep.equal(['root', 'snapshot', 'targets', 'team-a', 'timestamp']);
    expect(byRole.get('team-a')).to.equal(new Date(repo.expiresIn(2)).getTime());
    expect(byRole.get('timestamp')).to.equal(new Date(repo.expiresIn(1)).getTime());
    expect(forgotten).to.deep.equal([]);
  });
});
