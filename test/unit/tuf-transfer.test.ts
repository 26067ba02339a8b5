// Verified trust data carried from a verification worker to the main thread (tuf/transfer):
// after a structured clone, the repository must answer every lookup exactly as the one that
// was verified, including refusals and their reasons.
import { expect } from 'chai';
import { loadRepository } from '../../webhook/src/notary/updater.js';
import { pinFromPem, repositoryFromWire, repositoryToWire, TufError, type TrustedRepository } from '../../webhook/src/tuf/index.js';
import { DAY, manifest, RepoForge, sha256hex } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');

function describeLookup(r: TrustedRepository, role: string, name: string, at: Date): unknown {
  let found;
  try {
    found = r.findInRole(role, name, at);
  } catch (e) {
    found = e;
  }
  return found instanceof TufError ? { code: found.code, role: found.role, message: found.message } : found;
}

describe('tuf transfer between threads', () => {
  let original: TrustedRepository;
  let carried: TrustedRepository;

  before(async () => {
    const forge = new RepoForge({ now: NOW });
    forge.addTarget('targets/releases', 'v3.0', manifest('v3.0'), true);
    // An expired delegation is skipped with its reason; the reason must survive the trip.
    forge.expire('targets/qa', -DAY);
    const repo = forge.build();
    original = await loadRepository(new ForgedSource(repo), { pin: pinFromPem(repo.rootPems), now: NOW });
    carried = repositoryFromWire(structuredClone(repositoryToWire(original)));
  });

  it('keeps every role, target, digest, signer and expiry', () => {
    expect(carried.gun).to.equal(original.gun);
    expect(carried.roleNames()).to.deep.equal(original.roleNames());
    expect(carried.expires.getTime()).to.equal(original.expires.getTime());
    for (const role of original.roleNames()) {
      expect(carried.listRole(role, NOW), role).to.deep.equal(original.listRole(role, NOW));
    }
    const v3 = carried.findInRole('targets/releases', 'v3.0', NOW);
    expect(v3).to.not.be.instanceOf(TufError);
    expect((v3 as { digest: string }).digest).to.equal('sha256:' + sha256hex(manifest('v3.0')));
  });

  it('refuses exactly what the original refuses, with the same reasons', () => {
    const later = new Date(NOW.getTime() + 30 * DAY);
    for (const [role, name, at] of [
      ['targets/qa', 'qa/rc1', NOW],
      ['targets/releases', 'v9', NOW],
      ['targets/nope', 'v1.0', NOW],
      ['targets/releases/nightly', 'v2.0', NOW],
      ['targets/releases', 'v2.0', later],
    ] as const) {
      expect(describeLookup(carried, role, name, at), `${role} ${name}`).to.deep.equal(describeLookup(original, role, name, at));
    }
  });

  it('keeps the snapshot and timestamp file metas with their hashes as Buffers', () => {
    const a = original.parts;
    const b = carried.parts;
    expect([...b.snapshot.meta.meta.keys()]).to.deep.equal([...a.snapshot.meta.meta.keys()]);
    for (const [name, m] of a.snapshot.meta.meta) {
      const n = b.snapshot.meta.meta.get(name)!;
      expect(n.length).to.equal(m.length);
      for (const [alg, h] of m.hashes) expect(Buffer.isBuffer(n.hashes.get(alg)) && n.hashes.get(alg)!.equals(h), `${name} ${alg}`).to.equal(true);
    }
    expect(b.timestamp.meta.snapshot.hashes.get('sha256')!.equals(a.timestamp.meta.snapshot.hashes.get('sha256')!)).to.equal(true);
    expect(b.root.sha256).to.equal(a.root.sha256);
    expect([...b.root.meta.keys.keys()]).to.deep.equal([...a.root.meta.keys.keys()]);
  });
});
