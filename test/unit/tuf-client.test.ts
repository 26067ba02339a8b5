// The client order of the TUF core, driven through the real updater (notary/updater.ts) over
// a forged source, and the single steps of TrustedMetadataSet where a test needs one alone.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import {
  TrustedMetadataSet,
  TrustedRepository,
  TufError,
  pinFromPem,
  restrictPaths,
  verifyNextRoot,
  verifyPinnedRoot,
  type SignedTarget,
} from '../../webhook/src/tuf/index.js';
import {
  certKey,
  DAY,
  flipByte,
  ForgeKey,
  GUN,
  manifest,
  RepoForge,
  sha256hex,
  type ForgedRepo,
} from '../support/forge.js';
import { update } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');

function ok<T>(v: T | TufError): T {
  if (v instanceof TufError) expect.fail(`unexpected TufError: ${v.code} ${v.message}`);
  return v as T;
}

function err(v: unknown): TufError {
  expect(v, 'expected a TufError').to.be.instanceOf(TufError);
  return v as TufError;
}

/** A TufError whether the code under test returns it, throws it or rejects with it. */
async function outcome(f: () => unknown): Promise<unknown> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof TufError) return e;
    throw e;
  }
}

describe('tuf client order: happy path (ECDSA repository with delegations)', () => {
  let forge: RepoForge;
  let r: ForgedRepo;

  before(() => {
    forge = new RepoForge({ now: NOW, sharedKeys: true });
    r = forge.build();
  });

  it('serialises like Notary: compact, signed first, canonical signed part, base64 sha256+sha512 meta', async () => {
    const ts = r.get('timestamp').toString('utf8');
    expect(ts.startsWith('{"signed":{"_type":"Timestamp","expires":"2031-06-15T12:00:00Z","meta":{"snapshot":{"hashes":{"sha256":"')).to.equal(true);
    const snap = r.get('snapshot');
    const declared = createHash('sha256').update(snap).digest('base64');
    expect(ts).to.contain(`"sha256":"${declared}"`);
    expect(ts).to.contain(`"length":${snap.length}}`);
    expect(ts).not.to.match(/\s/);
  });

  it('verifies each step in order and reports exact hashes and lengths', async () => {
    const pin = pinFromPem(r.rootPems);
    const root = verifyPinnedRoot(r.get('root'), pin, GUN);
    expect(root.meta.version).to.equal(1);
    expect(root.sha256).to.equal(sha256hex(r.get('root')));
    const set = new TrustedMetadataSet(GUN, NOW);
    set.setRoot(root);
    const ts = set.updateTimestamp(r.get('timestamp'));
    expect(ts.meta.version).to.equal(1);
    expect(ts.meta.snapshot.length).to.equal(r.get('snapshot').length);
    const snap = set.updateSnapshot(r.get('snapshot'));
    expect(snap.sha256).to.equal(sha256hex(r.get('snapshot')));
    expect([...snap.meta.meta.keys()].sort()).to.deep.equal(['root', 'targets', 'targets/qa', 'targets/releases', 'targets/releases/nightly']);
    const targets = set.updateTargets(r.get('targets'));
    expect(targets.meta.version).to.equal(2);
    expect(set.delegatedRoles('targets').map((d) => d.name)).to.deep.equal(['targets/releases', 'targets/qa']);
    const releases = ok(set.updateDelegation(set.delegatedRoles('targets')[0]!, 'targets', r.get('targets/releases')));
    expect(releases.paths).to.deep.equal(['']);
    const nightlyRole = set.delegatedRoles('targets/releases')[0]!;
    const nightly = ok(set.updateDelegation(nightlyRole, 'targets/releases', r.get('targets/releases/nightly')));
    expect(nightly.parent).to.equal('targets/releases');
    expect(nightly.paths).to.deep.equal(['nightly/']);
    const qa = ok(set.updateDelegation(set.delegatedRoles('targets')[1]!, 'targets', r.get('targets/qa')));
    expect(qa.paths).to.deep.equal(['qa/']);
    const parts = set.result();
    expect([...parts.delegations.keys()]).to.deep.equal(['targets/releases', 'targets/releases/nightly', 'targets/qa']);
    expect(parts.skipped.size).to.equal(0);
  });

  it('walks delegations in pre-order and lists the trusted roles in pre-order', async () => {
    const { visited, repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(visited.map(([n]) => n)).to.deep.equal(['targets/releases', 'targets/releases/nightly', 'targets/qa']);
    expect(visited.every(([, o]) => !(o instanceof TufError))).to.equal(true);
    expect(repo.roleNames()).to.deep.equal(['targets', 'targets/releases', 'targets/releases/nightly', 'targets/qa']);
  });

  it('finds a tag in targets with its manifest digest, length and signer IDs', async () => {
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    const t = ok(repo.findInRole('targets', 'v1.0', NOW));
    expect(t).to.deep.equal({
      name: 'v1.0',
      role: 'targets',
      digest: 'sha256:' + sha256hex(manifest('v1.0')),
      length: manifest('v1.0').length,
      signers: [forge.keys.targets.id],
      expires: forge.signed('targets').expires,
    } satisfies SignedTarget);
  });

  it('reports delegation signers by canonical key ID (the key inside the certificate)', async () => {
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    const t = ok(repo.findInRole('targets/releases', 'v2.0', NOW));
    expect(t.digest).to.equal('sha256:' + sha256hex(manifest('v2.0')));
    expect(t.signers).to.deep.equal([forge.keys.releases.canonicalId]);
    expect(t.signers[0]).not.to.equal(forge.keys.releases.id);
    expect(ok(repo.findInRole('targets/qa', 'qa/rc1', NOW)).signers).to.deep.equal([forge.keys.qa.canonicalId]);
    expect(ok(repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW)).signers).to.deep.equal([forge.keys.nightly.id]);
  });

  it('finds tags by digest and lists roles', async () => {
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    const digest = 'sha256:' + sha256hex(manifest('v1.0'));
    expect(ok(repo.findDigestInRole('targets/releases', digest, NOW)).map((t) => t.name)).to.deep.equal(['v1.0']);
    expect(ok(repo.findDigestInRole('targets', digest, NOW)).map((t) => t.name)).to.deep.equal(['v1.0']);
    expect(ok(repo.findDigestInRole('targets/qa', digest, NOW))).to.deep.equal([]);
    expect(ok(repo.listRole('targets/releases', NOW)).map((t) => t.name).sort()).to.deep.equal(['v1.0', 'v2.0']);
    expect(ok(repo.listRole('targets', NOW)).map((t) => t.name).sort()).to.deep.equal(['hello-file', 'v1.0']);
  });

  it('answers not-found for an unsigned tag and for a role the repository does not have', async () => {
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    const missing = err(repo.findInRole('targets/releases', 'v9', NOW));
    expect(missing.code).to.equal('not-found');
    expect(missing.message).to.contain('"v9"');
    const noRole = err(repo.findInRole('targets/nope', 'v1.0', NOW));
    expect(noRole.code).to.equal('not-found');
    expect(noRole.message).to.contain('no targets/nope delegation');
  });

  it('re-checks expiry at lookup time: the same trusted data is refused once the timestamp expired', async () => {
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(repo.expires.toISOString()).to.equal(new Date(NOW.getTime() + 14 * DAY).toISOString());
    const later = new Date(NOW.getTime() + 15 * DAY);
    const e = err(await outcome(() => repo.findInRole('targets', 'v1.0', later)));
    expect(e.code).to.equal('expired');
    expect(e.role).to.equal('timestamp');
  });

  it('refuses every file after one flipped bit in the signed part', async () => {
    const pin = pinFromPem(r.rootPems);
    for (const role of ['root', 'timestamp', 'snapshot', 'targets', 'targets/releases', 'targets/releases/nightly', 'targets/qa']) {
      const bytes = r.get(role);
      // Flip a bit inside "expires" (a digit), which keeps valid JSON.
      const at = bytes.indexOf('"expires":"') + '"expires":"'.length + 3;
      const bad = flipByte(bytes, at);
      const serve = new Map([[role, bad]]);
      const attempt = async () => {
        if (role === 'root') return verifyPinnedRoot(bad, pin, GUN);
        const l = await update(r, { pin, serve });
        const hit = l.visited.find(([n]) => n === role);
        if (hit && hit[1] instanceof TufError) throw hit[1];
        return l;
      };
      const e = err(await outcome(attempt));
      // Hash-declared files fail on their hash first; root and timestamp on their signature.
      const expected = role === 'root' || role === 'timestamp' ? 'signature' : 'hash-mismatch';
      expect(e.code, role).to.equal(expected);
    }
  });

  it('throws a plain Error when steps are called out of order', async () => {
    const set = new TrustedMetadataSet(GUN, NOW);
    expect(() => set.updateTimestamp(r.get('timestamp'))).to.throw(Error, /before root/);
    set.setRoot(verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN));
    expect(() => set.updateSnapshot(r.get('snapshot'))).to.throw(Error, /before timestamp/);
  });
});

describe('tuf client order: variants', () => {
  it('verifies an Ed25519 repository (eddsa signatures on targets, snapshot, timestamp, nightly)', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true, algorithm: 'ed25519' });
    const r = forge.build();
    expect(r.get('timestamp').toString()).to.contain('"method":"eddsa"');
    expect(r.get('root').toString()).to.contain('"keytype":"ed25519"');
    const { repo, visited } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(visited.map(([n, o]) => [n, o instanceof TufError])).to.deep.equal([
      ['targets/releases', false],
      ['targets/releases/nightly', false],
      ['targets/qa', false],
    ]);
    expect(ok(repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW)).signers).to.deep.equal([forge.keys.nightly.id]);
  });

  it('verifies a repository without delegations', async () => {
    const r = new RepoForge({ now: NOW, sharedKeys: true, noDelegations: true }).build();
    const { repo, visited } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(visited).to.deep.equal([]);
    expect(repo.roleNames()).to.deep.equal(['targets']);
    expect(err(repo.findInRole('targets/releases', 'v1.0', NOW)).code).to.equal('not-found');
  });

  it('accepts the files indented with keys in another order: signatures cover the canonical form', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    for (const role of ['root', 'timestamp', 'snapshot', 'targets', 'targets/releases']) forge.layout(role, 'pretty');
    const r = forge.build();
    expect(r.get('targets').toString()).to.match(/\n {2}"signed": \{\n {4}"_type"/);
    expect(r.get('root').toString()).to.contain('"consistent_snapshot": false');
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(ok(repo.findInRole('targets/releases', 'v2.0', NOW)).digest).to.equal('sha256:' + sha256hex(manifest('v2.0')));
  });

  it('accepts Go time stamps with nanoseconds and numbers written as 2.0 (Notary re-canonicalises)', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    forge.signed('targets').expires = '2033-01-02T03:04:05.123456789Z';
    const r = forge.build();
    const set = new TrustedMetadataSet(GUN, NOW);
    set.setRoot(verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN));
    set.updateTimestamp(r.get('timestamp'));
    set.updateSnapshot(r.get('snapshot'));
    const t = set.updateTargets(r.get('targets'));
    expect(t.meta.expires.toISOString()).to.equal('2033-01-02T03:04:05.123Z');
    expect(t.meta.expiresText).to.equal('2033-01-02T03:04:05.123456789Z');
    // Same number, other spelling: the canonical form (and so the signature) is unchanged.
    const rewritten = Buffer.from(r.get('timestamp').toString().replace('"version":1}', '"version":1.0}'));
    expect(rewritten.equals(r.get('timestamp'))).to.equal(false);
    const set2 = new TrustedMetadataSet(GUN, NOW);
    set2.setRoot(verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN));
    expect(set2.updateTimestamp(rewritten).meta.version).to.equal(1);
  });

  it('verifies targets whose names need UTF-8 key order and escaping (astral, U+E000, quotes, backslashes)', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const names = ['\u{1F600}-tag', '\uE000-tag', '\uFFFD', 'é', 'a"b\\c', 'line\u2028sep', 'z'];
    for (const n of names) forge.addTarget('targets', n, manifest(n));
    const r = forge.build();
    const wire = r.get('targets').toString('utf8');
    // Byte order: U+E000 (EE..) < U+FFFD (EF..) < U+1F600 (F0..), whatever UTF-16 says.
    expect(wire.indexOf('"\uE000-tag"')).to.be.lessThan(wire.indexOf('"\uFFFD"'));
    expect(wire.indexOf('"\uFFFD"')).to.be.lessThan(wire.indexOf('"\u{1F600}-tag"'));
    expect(wire).to.contain('"a\\"b\\\\c"');
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    for (const n of names) expect(ok(repo.findInRole('targets', n, NOW)).digest, n).to.equal('sha256:' + sha256hex(manifest(n)));
  });

  it('walks a root rotation: v1 pinned, v2 signed by old and new root keys, v3 by the new key only', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const newRoot = certKey(ForgeKey.ecdsa(), GUN, NOW);
    forge.rotateRoot([newRoot]);
    forge.nextRoot();
    const r = forge.build();
    expect(r.roots.length).to.equal(3);
    const v2 = JSON.parse(r.roots[1]!.toString()) as { signatures: unknown[] };
    expect(v2.signatures.length).to.equal(2);
    const v3 = JSON.parse(r.roots[2]!.toString()) as { signatures: { keyid: string }[] };
    expect(v3.signatures.map((s) => s.keyid)).to.deep.equal([newRoot.id]);
    // The pinned (old) key does not sign the newest root: it must be reached through the chain.
    expect(err(await outcome(() => verifyPinnedRoot(r.roots[2]!, pinFromPem(r.rootPems), GUN))).code).to.equal('untrusted-root');
    const { root, repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(root.meta.version).to.equal(3);
    expect(root.meta.roles.root.keyids).to.deep.equal([newRoot.id]);
    expect(ok(repo.findInRole('targets', 'v1.0', NOW)).name).to.equal('v1.0');
  });

  it('walks a targets key rotation published as a new root version', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const v1 = forge.build();
    const v1Keys = forge.keys.targets;
    forge.nextRoot();
    const newTargets = ForgeKey.ecdsa();
    forge.setRoleKey('targets', [newTargets]);
    forge.bump('targets');
    const r = forge.build();
    const { repo } = await update(r, { pin: pinFromPem(v1.rootPems) });
    expect(ok(repo.findInRole('targets', 'v1.0', NOW)).signers).to.deep.equal([newTargets.id]);
    // Under root v2 a targets file signed by the old key is refused, even when the snapshot declares it.
    const oldKey = v1Keys;
    forge.signWith('targets', [oldKey]);
    const r2 = forge.build();
    const e = err(await outcome(() => update(r2, { pin: pinFromPem(v1.rootPems) })));
    expect(e.code).to.equal('signature');
    expect(e.role).to.equal('targets');
    expect(e.message).to.contain('not a targets key');
  });

  it('accepts a root pinned by its public key PEM instead of its certificate', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const r = forge.build();
    const { repo } = await update(r, { pin: pinFromPem([forge.keys.root[0]!.publicPem]) });
    expect(repo.roleNames()).to.include('targets/qa');
  });
});

describe('tuf delegation paths', () => {
  it('restricts a child to the prefixes its parent may delegate', async () => {
    expect(restrictPaths(['nightly/'], [''])).to.deep.equal(['nightly/']);
    expect(restrictPaths(['', 'rel/x/', 'other/'], ['rel/'])).to.deep.equal(['rel/x/']);
    expect(restrictPaths(['rel/'], ['rel/x/'])).to.deep.equal([]);
    expect(restrictPaths([], [''])).to.deep.equal([]);
  });

  it('ignores targets a nested role signs outside its paths', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    forge.addTarget('targets/releases/nightly', 'v3.0', manifest('v3.0'));
    forge.addTarget('targets/releases/nightly', 'nightly/ok', manifest('ok'));
    const { repo } = await update(forge.build(), { pin: pinFromPem(forge.build().rootPems) });
    const e = err(repo.findInRole('targets/releases/nightly', 'v3.0', NOW));
    expect(e.code).to.equal('delegation');
    expect(e.message).to.contain('outside its delegated paths ["nightly/"]');
    expect(ok(repo.findInRole('targets/releases/nightly', 'nightly/ok', NOW)).role).to.equal('targets/releases/nightly');
    expect(ok(repo.listRole('targets/releases/nightly', NOW)).map((t) => t.name).sort()).to.deep.equal(['nightly/20310601', 'nightly/ok']);
    expect(ok(repo.findDigestInRole('targets/releases/nightly', 'sha256:' + sha256hex(manifest('v3.0')), NOW))).to.deep.equal([]);
  });

  it('gives a delegation without paths nothing to sign', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    delete forge.delegationEntry('targets', 'targets/releases').paths;
    const r = forge.build();
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    expect(err(repo.findInRole('targets/releases', 'v2.0', NOW)).code).to.equal('delegation');
    expect(ok(repo.listRole('targets/releases', NOW))).to.deep.equal([]);
  });
});

describe('tuf TrustedRepository as a long-lived cache', () => {
  it('keeps answering from trusted parts until they expire', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const r = forge.build();
    const { repo: loaded } = await update(r, { pin: pinFromPem(r.rootPems) });
    const repo = new TrustedRepository(GUN, loaded.parts);
    expect(ok(repo.findInRole('targets/qa', 'qa/rc1', new Date(NOW.getTime() + 13 * DAY))).name).to.equal('qa/rc1');
    expect(err(await outcome(() => repo.findInRole('targets/qa', 'qa/rc1', new Date(NOW.getTime() + 14 * DAY)))).code).to.equal('expired');
  });

  it('reuses unchanged snapshot and targets from a previous set, re-checking expiry', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const r1 = forge.build();
    const pin = pinFromPem(r1.rootPems);
    const first = await update(r1, { pin });
    forge.bump('timestamp');
    const r2 = forge.build();
    expect(r2.get('snapshot').equals(r1.get('snapshot'))).to.equal(true);
    const set = new TrustedMetadataSet(GUN, NOW, new Map(), first.repo.parts);
    set.setRoot(first.root);
    set.updateTimestamp(r2.get('timestamp'));
    expect(set.tryReuseSnapshot()).to.equal(true);
    expect(set.tryReuseTargets()).to.equal(true);
    const role = set.delegatedRoles('targets')[0]!;
    expect(set.tryReuseDelegation(role, 'targets')).to.have.property('name', 'targets/releases');
    // A snapshot that changed is not reused.
    forge.bump('snapshot');
    const r3 = forge.build();
    const set3 = new TrustedMetadataSet(GUN, NOW, new Map(), first.repo.parts);
    set3.setRoot(first.root);
    set3.updateTimestamp(r3.get('timestamp'));
    expect(set3.tryReuseSnapshot()).to.equal(false);
  });
});
