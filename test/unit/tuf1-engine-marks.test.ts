// High-water marks of a TUF 1.0 repository through the real engine: a delegated role loaded
// by a lookup becomes a mark, and a warm lookup (nothing new verified) records nothing.
import { expect } from 'chai';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { MemoryVersionStore } from '../../webhook/src/verify/version-store.js';
import { TufRepo } from '../support/tuf1-repo.js';
import { MemorySpecSource } from '../support/tuf1-memory-source.js';

const REG = 'registry.example.com';

class CountingStore extends MemoryVersionStore {
  recorded = 0;
  override recordVersions(repository: string, versions: ReadonlyMap<string, number>): void {
    this.recorded++;
    super.recordVersions(repository, versions);
  }
}

describe('TUF 1.0 high-water marks through the engine', () => {
  it('records a delegated role when a lookup first verifies it, and nothing on warm lookups', async () => {
    const repo = new TufRepo();
    repo.delegate('team-a', { paths: [`${REG}/a/*`] });
    repo.delegate('team-b', { paths: [`${REG}/b/*`] });
    repo.addTarget('team-a', `${REG}/a/app:1`, 'a');
    repo.addTarget('team-b', `${REG}/b/app:1`, 'b');
    (repo.targets.get('team-b')!.signed as { version: number }).version = 4;
    const source = new MemorySpecSource(repo.publish());
    const url = 'https://tuf.example.com/metadata/';
    const policy: TrustPolicy = {
      kind: 'ClusterTrustPolicy',
      name: 'tuf',
      source: 'test',
      spec: { images: [`${REG}/**`], trustServer: { protocol: 'tuf', url }, root: { keys: [], threshold: 1, trustedRoot: repo.roots.get(1)!.toString('utf8') }, mode: 'enforce' },
    };
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

    expect(await verify(`${REG}/a/app:1`)).to.equal(true);
    expect(versions.floor(key).get('team-a')).to.equal(1);
    expect(versions.floor(key).has('team-b')).to.equal(false);
    const afterFirst = versions.recorded;

    for (let i = 0; i < 5; i++) expect(await verify(`${REG}/a/app:1`)).to.equal(true);
    expect(await verify(`${REG}/a/app:2`)).to.equal(false);
    expect(versions.recorded, 'warm lookups record no marks').to.equal(afterFirst);

    expect(await verify(`${REG}/b/app:1`)).to.equal(true);
    expect(versions.recorded).to.equal(afterFirst + 1);
    expect(versions.floor(key).get('team-b')).to.equal(4);
  });
});
