/**
 * One key counts once, whatever its key IDs (issue 9, part 4). A key ID is a hash of how a
 * key is written, not of the key: the same public key can be filed under several IDs (plain
 * and as a certificate, a certificate with other PEM whitespace, another base64 spelling,
 * a compressed EC point). An attacker holding one private key must not meet a threshold of
 * two by signing under two of them. Every case runs through the real updater against a
 * forged source, for each place a threshold is counted: root, timestamp, snapshot, targets
 * and a delegation.
 */
import { ECDH, generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { loadRepository } from '../../webhook/src/notary/updater.js';
import { pinFromPem, TufError, type RootPin, type TrustedRepository } from '../../webhook/src/tuf/index.js';
import { keyId, parseKey } from '../../webhook/src/tuf/keys.js';
import { certKey, dict, ForgeKey, GUN, RepoForge, type ForgedRepo } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');

function update(r: ForgedRepo, pin: RootPin = pinFromPem(r.rootPems)): Promise<TrustedRepository> {
  return loadRepository(new ForgedSource(r), { pin, now: NOW });
}

async function refused(p: Promise<unknown>): Promise<TufError> {
  const outcome = await p.then(
    (v) => ({ v }),
    (e: unknown) => ({ e }),
  );
  if ('v' in outcome) return expect.fail('expected a refusal, the repository was trusted');
  if (!(outcome.e instanceof TufError)) throw outcome.e;
  return outcome.e;
}

// ---- the same public key, written another way ------------------------------------------

/** The key as an x509 certificate of itself (ecdsa -> ecdsa-x509, rsa -> rsa-x509). */
function asCertificate(k: ForgeKey, cn: string): ForgeKey {
  return certKey(k, cn, NOW);
}

/** The same certificate with one more newline after it: other bytes, so another key ID. */
function withPemWhitespace(k: ForgeKey): ForgeKey {
  return k.alias(k.keytype, Buffer.from(k.certPem! + '\n', 'utf8').toString('base64'));
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** The same bytes in non-canonical base64: the spare bits of the last character set. */
function withSpareBits(k: ForgeKey): ForgeKey {
  const s = k.publicB64;
  const at = s.replace(/=+$/, '').length - 1;
  const spare = B64[B64.indexOf(s[at]!) | 1]!;
  const other = s.slice(0, at) + spare + s.slice(at + 1);
  expect(Buffer.from(other, 'base64').equals(Buffer.from(s, 'base64')), 'test setup: same bytes').to.equal(true);
  return k.alias(k.keytype, other);
}

/** A P-256 key's SubjectPublicKeyInfo with the point in compressed form. */
function compressed(k: ForgeKey): ForgeKey {
  const der = Buffer.from(k.publicB64, 'base64');
  const point = ECDH.convertKey(der.subarray(-65), 'prime256v1', undefined, undefined, 'compressed') as Buffer;
  const prefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
  return k.alias('ecdsa', Buffer.concat([prefix, point]).toString('base64'));
}

function expectTwoIdsOneKey(a: ForgeKey, b: ForgeKey): void {
  expect(a.id, 'test setup: two key IDs').not.to.equal(b.id);
  expect(a.publicPem, 'test setup: one public key').to.equal(b.publicPem);
}

describe('tuf: one key counts once, whatever its key IDs', () => {
  it('root: two certificates of one key (PEM whitespace) do not meet a root threshold of 2', async () => {
    const f = new RepoForge({ now: NOW });
    const cert = f.keys.root[0]!;
    const twin = withPemWhitespace(cert);
    expectTwoIdsOneKey(cert, twin);
    const root = f.signed('root');
    root.keys[twin.id] = twin.json();
    root.roles.root = dict({ keyids: [cert.id, twin.id], threshold: 2 });
    f.signWith('root', [cert, twin]);
    const e = await refused(update(f.build()));
    expect(e.code, e.message).to.equal('signature');
    expect(e.role).to.equal('root');
    expect(e.message).to.contain('1 valid signature(s) by root v1 keys, threshold is 2');
    expect(e.message).to.contain(`key ${twin.id.slice(0, 12)}… is the same public key as key ${cert.id.slice(0, 12)}…`);

    // Control: a second, distinct root key makes the same threshold.
    const g = new RepoForge({ now: NOW, rootKeys: 2, rootThreshold: 2 });
    expect((await update(g.build())).parts.root.meta.roles.root.threshold).to.equal(2);
  });

  it('root rotation: the new root is not signed by two of the old root\'s key IDs of one key', async () => {
    const f = new RepoForge({ now: NOW });
    const cert = f.keys.root[0]!;
    const twin = withPemWhitespace(cert);
    const other = certKey(ForgeKey.ecdsa(), GUN, NOW);
    // v1: threshold 2 over cert, twin and a second real key, met honestly by cert and other.
    const root = f.signed('root');
    for (const k of [twin, other]) root.keys[k.id] = k.json();
    root.roles.root = dict({ keyids: [cert.id, twin.id, other.id], threshold: 2 });
    f.signWith('root', [cert, other]);
    const pin = pinFromPem([cert.certPem!]);
    expect((await update(f.build(), pin)).parts.root.meta.version).to.equal(1);
    // v2 (attacker holds only `cert`'s private key): signed under both of its IDs.
    const mallory = certKey(ForgeKey.ecdsa(), GUN, NOW);
    f.rotateRoot([mallory], { signers: [mallory, cert, twin] });
    const e = await refused(update(f.build(), pin));
    expect(e.code, e.message).to.equal('signature');
    expect(e.role).to.equal('root');
    expect(e.message).to.contain('root v2 is not signed by the keys of root v1');
    expect(e.message).to.contain('threshold is 2');
  });

  it('timestamp: an ecdsa key and its own ecdsa-x509 certificate count as one key', async () => {
    const f = new RepoForge({ now: NOW });
    const k = ForgeKey.ecdsa();
    const cert = asCertificate(k, 'timestamp');
    expectTwoIdsOneKey(k, cert);
    f.setRoleKey('timestamp', [k, cert], 2);
    const e = await refused(update(f.build()));
    expect(e.code, e.message).to.equal('signature');
    expect(e.role).to.equal('timestamp');
    expect(e.message).to.contain('1 valid signature(s) by timestamp keys, threshold is 2');

    const g = new RepoForge({ now: NOW });
    g.setRoleKey('timestamp', [ForgeKey.ecdsa(), ForgeKey.ecdsa()], 2);
    expect((await update(g.build())).parts.timestamp.meta.version).to.equal(1);
  });

  it('snapshot: an rsa key and its own rsa-x509 certificate count as one key', async () => {
    const f = new RepoForge({ now: NOW });
    const k = ForgeKey.rsa();
    const cert = asCertificate(k, 'snapshot');
    expectTwoIdsOneKey(k, cert);
    f.setRoleKey('snapshot', [cert, k], 2);
    const e = await refused(update(f.build()));
    expect(e.code, e.message).to.equal('signature');
    expect(e.role).to.equal('snapshot');
    expect(e.message).to.contain('1 valid signature(s) by snapshot keys, threshold is 2');

    const g = new RepoForge({ now: NOW });
    g.setRoleKey('snapshot', [ForgeKey.rsa(), ForgeKey.ecdsa()], 2);
    expect((await update(g.build())).parts.snapshot.meta.version).to.equal(2);
  });

  it('targets: one ed25519 key under two base64 spellings counts once', async () => {
    const f = new RepoForge({ now: NOW, algorithm: 'ed25519' });
    const k = ForgeKey.ed25519();
    const twin = withSpareBits(k);
    expectTwoIdsOneKey(k, twin);
    f.setRoleKey('targets', [k, twin], 2);
    const e = await refused(update(f.build()));
    expect(e.code, e.message).to.equal('signature');
    expect(e.role).to.equal('targets');
    expect(e.message).to.contain('1 valid signature(s) by targets keys, threshold is 2');

    const g = new RepoForge({ now: NOW, algorithm: 'ed25519' });
    g.setRoleKey('targets', [ForgeKey.ed25519(), ForgeKey.ed25519()], 2);
    expect((await update(g.build())).parts.targets.meta.version).to.equal(2);
  });

  it('delegation: a P-256 key with its point compressed and uncompressed counts once; the role is skipped', async () => {
    const f = new RepoForge({ now: NOW });
    const k = ForgeKey.ecdsa();
    const twin = compressed(k);
    expectTwoIdsOneKey(k, twin);
    f.delegate('targets', 'targets/qa', [k, twin], ['qa/'], 2);
    f.signWith('targets/qa', [k, twin]);
    const repo = await update(f.build());
    const e = repo.findInRole('targets/qa', 'qa/rc1', NOW);
    expect(e).to.be.instanceOf(TufError);
    expect((e as TufError).code).to.equal('signature');
    expect((e as TufError).message).to.contain('1 valid signature(s) by targets/qa (keys delegated by targets) keys, threshold is 2');

    const second = ForgeKey.ecdsa();
    f.delegate('targets', 'targets/qa', [k, second], ['qa/'], 2);
    f.signWith('targets/qa', [k, second]);
    const fine = (await update(f.build())).findInRole('targets/qa', 'qa/rc1', NOW);
    expect(fine).not.to.be.instanceOf(TufError);
  });

  it('nested delegation: an ecdsa-x509 certificate and its PEM-whitespace twin count once', async () => {
    const f = new RepoForge({ now: NOW });
    const cert = certKey(ForgeKey.ecdsa(), 'nightly', NOW);
    const twin = withPemWhitespace(cert);
    expectTwoIdsOneKey(cert, twin);
    f.delegate('targets/releases', 'targets/releases/nightly', [cert, twin], ['nightly/'], 2);
    f.signWith('targets/releases/nightly', [twin, cert]);
    const repo = await update(f.build());
    const e = repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW);
    expect(e).to.be.instanceOf(TufError);
    expect((e as TufError).code).to.equal('signature');
    expect((e as TufError).message).to.contain('threshold is 2');
    expect(repo.findInRole('targets/releases', 'v2.0', NOW)).not.to.be.instanceOf(TufError);
  });

  it('a signature that fails under one ID of a key does not stop a valid one under its other ID from counting', async () => {
    const f = new RepoForge({ now: NOW });
    const k = ForgeKey.ecdsa();
    const cert = asCertificate(k, 'timestamp');
    f.setRoleKey('timestamp', [k, cert], 1);
    f.signWith('timestamp', [{ key: k, mangle: (s) => Buffer.alloc(s.length) }, cert]);
    expect((await update(f.build())).parts.timestamp.meta.version).to.equal(1);
  });
});

describe('tuf: a pin that does not sign the served root is reported as that', () => {
  it('root v1 not signed by the pinned key, on a server without versioned roots', async () => {
    const f = new RepoForge({ now: NOW });
    const served = f.build();
    const stranger = certKey(ForgeKey.ecdsa(), GUN, NOW);
    // notary-server may have no `<v>.root.json`; a directory bundle often has none.
    const e = await refused(update({ ...served, roots: [] }, pinFromPem([stranger.certPem!])));
    expect(e.code, e.message).to.equal('untrusted-root');
    expect(e.role).to.equal('root');
    expect(e.message).to.contain(`none of the pinned keys signs root v1; it is signed by ${f.keys.root[0]!.id.slice(0, 12)}…`);
    expect(e.message).not.to.contain('1.root.json');
  });

  it('root v1 not signed by the pinned key, on a server that has every version', async () => {
    const f = new RepoForge({ now: NOW });
    const stranger = certKey(ForgeKey.ecdsa(), GUN, NOW);
    const e = await refused(update(f.build(), pinFromPem([stranger.certPem!])));
    expect(e.code, e.message).to.equal('untrusted-root');
    expect(e.message).to.contain(`none of the pinned keys signs root v1; it is signed by ${f.keys.root[0]!.id.slice(0, 12)}…`);
  });

  it('root v3 not signed by the pinned key and no older root to walk from: says so, names the missing file', async () => {
    const f = new RepoForge({ now: NOW });
    const next = certKey(ForgeKey.ecdsa(), GUN, NOW);
    f.rotateRoot([next]).nextRoot();
    const served = f.build();
    expect(served.roots).to.have.length(3);
    const e = await refused(update({ ...served, roots: [] }, pinFromPem(served.rootPems)));
    expect(e.code, e.message).to.equal('untrusted-root');
    expect(e.message).to.contain(`none of the pinned keys signs root v3; it is signed by ${next.id.slice(0, 12)}…`);
    expect(e.message).to.contain('1.root.json');
  });

  it('a pinned threshold of 2 met by one pinned key names who signed', async () => {
    const f = new RepoForge({ now: NOW, rootKeys: 2, rootThreshold: 1 });
    const [k1, k2] = f.keys.root as [ForgeKey, ForgeKey];
    f.signWith('root', [k1]);
    const e = await refused(update(f.build(), pinFromPem([k1.certPem!, k2.certPem!], 2)));
    expect(e.code, e.message).to.equal('untrusted-root');
    expect(e.message).to.contain('too few pinned keys signed root v1 (1 of the required 2)');
    expect(e.message).to.contain(`it is signed by ${k1.id.slice(0, 12)}…`);
  });
});

describe('parsed keys are shared while in use', () => {
  it('gives the same key object for the same key ID in two files, and still checks each declared ID', () => {
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const id = keyId('ecdsa', spki, 'targets');
    const a = parseKey(id, { keytype: 'ecdsa', keyval: { public: spki } }, 'targets');
    const b = parseKey(id, { keytype: 'ecdsa', keyval: { public: spki } }, 'snapshot');
    expect(b).to.equal(a);
    // A file that lists the same key under another ID is still refused.
    expect(() => parseKey('0'.repeat(64), { keytype: 'ecdsa', keyval: { public: spki } }, 'targets')).to.throw(/actually has ID/);
  });
});
