// What a TUF 1.0 repository signs for an image under a policy's requirements, through the
// real updater: tags as target paths, digests found through any tag of the repository,
// required roles that must be reached by the specification's search.
import { expect } from 'chai';
import { refreshSpecRepository } from '../../webhook/src/tufrepo/updater.js';
import { tufSignedDigest } from '../../webhook/src/verify/tuf-digest.js';
import { DAY, TufRepo, sha256hex } from '../support/tuf1-repo.js';
import { MemorySpecSource } from '../support/tuf1-memory-source.js';
import { Metadata, Targets } from '@tufjs/models';

const REPO = 'registry.example.com/payments/app';
const M1 = '{"schemaVersion":2,"n":1}';
const M2 = '{"schemaVersion":2,"n":2}';
const D1 = `sha256:${sha256hex(Buffer.from(M1))}`;
const D2 = `sha256:${sha256hex(Buffer.from(M2))}`;

async function load(repo: TufRepo, clock?: () => Date) {
  return refreshSpecRepository(new MemorySpecSource(repo.publish()), { bootstrap: { trustedRoot: repo.roots.get(1)! }, now: repo.now, ...(clock ? { clock } : {}) });
}

describe('TUF 1.0 signed digests for images', function () {
  this.timeout(30_000);

  it('signs a tag as the target <registry>/<repository>:<tag>, and a tag@digest only with that digest', async () => {
    const repo = new TufRepo();
    repo.delegate('payments', { paths: ['registry.example.com/payments/*'] });
    repo.addTarget('payments', `${REPO}:1.0`, M1);
    const r = await load(repo, () => repo.now);
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, undefined)).to.deep.include({ ok: true, digest: D1, roles: ['payments'] });
    expect(await tufSignedDigest(r, REPO, { tag: '1.0', digest: D2 }, undefined)).to.deep.include({ ok: false, code: 'digest-mismatch' });
    const unsigned = await tufSignedDigest(r, REPO, { tag: '2.0' }, undefined);
    expect(unsigned).to.deep.include({ ok: false, code: 'unsigned' });
  });

  it('accepts a bare digest that some tag of the repository carries, and no other', async () => {
    const repo = new TufRepo();
    repo.delegate('payments', { paths: ['registry.example.com/payments/*'] });
    repo.delegate('other', { paths: ['registry.example.com/other/*'] });
    repo.addTarget('payments', `${REPO}:1.0`, M1);
    repo.addTarget('other', 'registry.example.com/other/app:1.0', M2);
    const r = await load(repo, () => repo.now);
    expect(await tufSignedDigest(r, REPO, { digest: D1 }, undefined)).to.deep.include({ ok: true, digest: D1 });
    // D2 is signed, but for another repository: not for this one.
    expect(await tufSignedDigest(r, REPO, { digest: D2 }, undefined)).to.deep.include({ ok: false, code: 'unsigned' });
  });

  it('does not accept a digest listed by a role the delegations do not trust for that path', async () => {
    const repo = new TufRepo();
    // "rogue" may only sign another team's images, yet lists a payments tag.
    repo.delegate('rogue', { paths: ['registry.example.com/other/*', 'registry.example.com/payments/app:evil*'] });
    repo.delegate('x', { parent: 'rogue', paths: ['registry.example.com/payments/*'] });
    repo.addTarget('x', `${REPO}:1.0`, M2);
    const r = await load(repo, () => repo.now);
    const verdict = await tufSignedDigest(r, REPO, { digest: D2 }, undefined);
    expect(verdict).to.deep.include({ ok: false, code: 'unsigned' });
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, undefined)).to.deep.include({ ok: false, code: 'unsigned' });
  });

  it('finds a bare digest through succinct hash bins', async () => {
    const repo = new TufRepo();
    const key = repo.delegate('tmp', { paths: ['none/*'] });
    const targets = repo.targets.get('targets')!;
    const json = targets.signed.toJSON() as Record<string, unknown>;
    json['delegations'] = { keys: { [key[0]!.id]: key[0]!.key.toJSON() }, succinct_roles: { keyids: [key[0]!.id], threshold: 1, bit_length: 2, name_prefix: 'bin' } };
    targets.signed = Targets.fromJSON(json as never);
    repo.targets.delete('tmp');
    for (const bin of ['bin-0', 'bin-1', 'bin-2', 'bin-3']) {
      repo.targets.set(bin, new Metadata(new Targets({ version: 1, specVersion: '1.0.31', expires: repo.expiresIn(30) })));
      repo.signers.set(bin, key);
    }
    const path = `${REPO}:1.0`;
    repo.addTarget(targets.signed.delegations!.succinctRoles!.getRoleForTarget(path), path, M1);
    const r = await load(repo, () => repo.now);
    expect(await tufSignedDigest(r, REPO, { digest: D1 }, undefined)).to.deep.include({ ok: true, digest: D1 });
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, undefined)).to.deep.include({ ok: true, digest: D1 });
  });

  it('requires each counted role to sign the path and be reached for it; a terminating role shadows later ones', async () => {
    const repo = new TufRepo();
    repo.delegate('qa', { paths: ['registry.example.com/payments/*'] });
    repo.delegate('release', { paths: ['registry.example.com/payments/*'] });
    repo.addTarget('qa', `${REPO}:1.0`, M1);
    repo.addTarget('release', `${REPO}:1.0`, M1);
    repo.addTarget('qa', `${REPO}:1.1`, M1);
    const r = await load(repo, () => repo.now);
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, { roles: ['qa', 'release'], threshold: 2 })).to.deep.include({ ok: true, digest: D1 });
    const one = await tufSignedDigest(r, REPO, { tag: '1.1' }, { roles: ['qa', 'release'], threshold: 2 });
    expect(one).to.deep.include({ ok: false, code: 'unsigned', role: 'release' });
    expect((one as { reason: string }).reason).to.equal('tag "1.1" is not signed by release (required)');

    const shadowed = new TufRepo();
    shadowed.delegate('ci', { paths: ['registry.example.com/payments/*'], terminating: true });
    shadowed.delegate('release', { paths: ['registry.example.com/payments/*'] });
    shadowed.addTarget('release', `${REPO}:1.0`, M1);
    const s = await load(shadowed, () => shadowed.now);
    const v = await tufSignedDigest(s, REPO, { tag: '1.0' }, { roles: ['release'], threshold: 1 });
    expect(v).to.deep.include({ ok: false, code: 'unsigned', role: 'release' });
    expect((v as { reason: string }).reason).to.contain('cannot be signed by release: no delegation trusts it for registry.example.com/payments/app:1.0');
  });

  it('refuses required roles that sign different digests for one tag', async () => {
    const repo = new TufRepo();
    repo.delegate('a', { paths: ['registry.example.com/payments/*'] });
    repo.delegate('b', { paths: ['registry.example.com/payments/*'] });
    repo.addTarget('a', `${REPO}:1.0`, M1);
    repo.addTarget('b', `${REPO}:1.0`, M2);
    const r = await load(repo, () => repo.now);
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, { roles: ['a', 'b'], threshold: 1 })).to.deep.include({ ok: false, code: 'digest-mismatch' });
  });

  it('judges cached trust data by the clock at the time of use', async () => {
    const repo = new TufRepo();
    repo.delegate('payments', { paths: ['registry.example.com/payments/*'] });
    repo.addTarget('payments', `${REPO}:1.0`, M1);
    (repo.targets.get('payments')!.signed as { expires: string }).expires = repo.expiresIn(0.5);
    let now = repo.now;
    const r = await load(repo, () => now);
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, undefined)).to.deep.include({ ok: true });
    now = new Date(repo.now.getTime() + 0.75 * DAY);
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, undefined)).to.deep.include({ ok: false, code: 'expired', role: 'payments' });
    now = new Date(repo.now.getTime() + 2 * DAY);
    expect(await tufSignedDigest(r, REPO, { tag: '1.0' }, undefined)).to.deep.include({ ok: false, code: 'expired', role: 'timestamp' });
  });
});
