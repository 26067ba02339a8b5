/**
 * The rules both dialects share, each in its one home (expiry.ts, version-floor.ts,
 * declared-file.ts), what each dialect adds on top (Notary: checkAgainstMeta; TUF 1.0:
 * checkMetaFile), and the Notary role map with top-level targets as its first role.
 */
import { expect } from 'chai';
import { sha256, sha512 } from '../../webhook/src/tuf/crypto.js';
import { checkDeclaredFile } from '../../webhook/src/tuf/declared-file.js';
import { isDelegatedPath, restrictPaths, roleMap } from '../../webhook/src/tuf/delegation.js';
import { expiryRefusal, isExpired, notExpired } from '../../webhook/src/tuf/expiry.js';
import { checkAgainstMeta, pinFromPem, TufError, type FileMeta, type TufErrorCode } from '../../webhook/src/tuf/index.js';
import { checkMetaFile } from '../../webhook/src/tuf/tuf1/trusted-set.js';
import { notRolledBack } from '../../webhook/src/tuf/version-floor.js';
import { RepoForge } from '../support/forge.js';
import { update } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const BYTES = Buffer.from('{"signed":{}}');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const WORDS = (alg: string, by: string) => `${alg} differs from the hash ${by} declares`;

function refusal(f: () => unknown): TufError {
  try {
    f();
  } catch (e) {
    if (e instanceof TufError) return e;
    throw e;
  }
  return expect.fail('expected a TufError');
}

function expectRefused(f: () => unknown, code: TufErrorCode, role: string, message: string): void {
  const e = refusal(f);
  expect([e.code, e.role], e.message).to.deep.equal([code, role]);
  expect(e.message).to.contain(message);
}

function notaryMeta(length: number, hashes: Record<string, Uint8Array>): FileMeta {
  return { length, hashes: new Map(Object.entries(hashes).map(([alg, h]) => [alg, Buffer.from(h)])) };
}

describe('tuf rules shared by both dialects', () => {
  describe('expiry (freeze attack)', () => {
    const at = (iso: string) => ({ expires: new Date(iso), expiresText: iso });

    it('counts metadata as expired from the instant it expires, not a millisecond later', () => {
      expect(isExpired(at('2031-06-01T12:00:00Z'), NOW)).to.equal(true);
      expect(isExpired(at('2031-06-01T12:00:00.001Z'), NOW)).to.equal(false);
      expectRefused(() => notExpired('timestamp', at('2031-06-01T12:00:00Z'), NOW), 'expired', 'timestamp', 'expired at 2031-06-01T12:00:00Z');
      expect(() => notExpired('timestamp', at('2031-06-01T12:00:01Z'), NOW)).not.to.throw();
    });

    it('returns the same refusal for callers that skip a role instead of throwing', () => {
      const e = expiryRefusal('targets/qa', at('2031-05-01T00:00:00Z'), NOW)!;
      expect([e.code, e.role, e.message]).to.deep.equal(['expired', 'targets/qa', 'targets/qa: expired at 2031-05-01T00:00:00Z']);
      expect(expiryRefusal('targets/qa', at('2031-07-01T00:00:00Z'), NOW)).to.equal(undefined);
    });
  });

  describe('version floor (rollback attack)', () => {
    it('refuses only a version below the floor, and words what named it', () => {
      expectRefused(() => notRolledBack('snapshot', 2, 3), 'rollback', 'snapshot', 'version 2 is older than version 3 already trusted');
      expectRefused(() => notRolledBack('timestamp', 4, 5, 'names snapshot version 4,'), 'rollback', 'timestamp', 'names snapshot version 4, older than version 5 already trusted');
      expect(() => notRolledBack('snapshot', 3, 3)).not.to.throw();
      expect(() => notRolledBack('snapshot', 1, undefined)).not.to.throw();
    });
  });

  describe('a file against its parent declaration', () => {
    it('refuses a longer file as too large and a shorter one as a mismatch, before hashing', () => {
      const declared = { length: BYTES.length, hashes: [['sha256', hex(sha256(BYTES))]] as const };
      const longer = Buffer.concat([BYTES, Buffer.from(' ')]);
      expectRefused(() => checkDeclaredFile(longer, declared, 'snapshot', 'timestamp', WORDS), 'too-large', 'snapshot', `${longer.length} bytes, more than the ${BYTES.length} that timestamp declares`);
      expectRefused(() => checkDeclaredFile(BYTES.subarray(1), declared, 'snapshot', 'timestamp', WORDS), 'hash-mismatch', 'snapshot', `but timestamp declares ${BYTES.length}`);
      expect(checkDeclaredFile(BYTES, declared, 'snapshot', 'timestamp', WORDS)).to.deep.include({ checked: 1, unchecked: [] });
    });

    it('checks every hash it can compute and names the one that differs', () => {
      const wrong = hex(sha512(Buffer.from('other')));
      const declared = { hashes: [['sha256', hex(sha256(BYTES))], ['sha512', wrong]] as const };
      expectRefused(() => checkDeclaredFile(BYTES, declared, 'targets', 'snapshot', WORDS), 'hash-mismatch', 'targets', 'sha512 differs from the hash snapshot declares');
      const fine = checkDeclaredFile(BYTES, { hashes: [['sha512', hex(sha512(BYTES))], ['sha256', hex(sha256(BYTES))]] }, 'targets', 'snapshot', WORDS);
      expect(fine.checked).to.equal(2);
      expect(hex(fine.sha256!)).to.equal(hex(sha256(BYTES)));
    });

    it('leaves algorithms it cannot compute to the dialect, whatever they are called', () => {
      // Names of Object.prototype members must not be taken for hash functions.
      const odd = { hashes: [['md5', 'ab'], ['constructor', 'ab'], ['__proto__', 'ab'], ['toString', 'ab']] as const };
      expect(checkDeclaredFile(BYTES, odd, 'snapshot', 'timestamp', WORDS)).to.deep.equal({ checked: 0, unchecked: ['md5', 'constructor', '__proto__', 'toString'] });
    });

    it('Notary: a length and a sha256/sha512 hash are required; other algorithms are ignored', () => {
      const digest = hex(sha256(BYTES));
      expect(checkAgainstMeta(BYTES, notaryMeta(BYTES.length, { sha256: sha256(BYTES), blake2b: Buffer.from('x') }), 'snapshot', 'timestamp')).to.equal(digest);
      // Declared by sha512 only: the sha256 that caches key files by is still returned.
      expect(checkAgainstMeta(BYTES, notaryMeta(BYTES.length, { sha512: sha512(BYTES) }), 'targets/qa', 'snapshot')).to.equal(digest);
      expectRefused(() => checkAgainstMeta(BYTES, notaryMeta(BYTES.length, { constructor: Buffer.from('x') }), 'snapshot', 'timestamp'), 'hash-mismatch', 'snapshot', 'timestamp declares no sha256/sha512 hash for snapshot');
      expectRefused(() => checkAgainstMeta(BYTES, undefined, 'targets/qa', 'snapshot'), 'not-found', 'targets/qa', 'snapshot does not list targets/qa');
      expectRefused(() => checkAgainstMeta(BYTES, notaryMeta(BYTES.length, { sha256: sha256(Buffer.from('x')) }), 'snapshot', 'timestamp'), 'hash-mismatch', 'snapshot', 'sha256 differs from the hash timestamp declares');
    });

    it('TUF 1.0: length and hashes are optional, and a hash this client cannot check is refused', () => {
      expect(() => checkMetaFile(BYTES, {}, 'snapshot', 'timestamp')).not.to.throw();
      expect(() => checkMetaFile(BYTES, { hashes: { sha256: hex(sha256(BYTES)) } }, 'snapshot', 'timestamp')).not.to.throw();
      expectRefused(
        () => checkMetaFile(BYTES, { hashes: { sha256: hex(sha256(BYTES)), sha3: 'ab' } }, 'snapshot', 'timestamp'),
        'hash-mismatch',
        'snapshot',
        'timestamp declares a sha3 hash, which this client cannot check',
      );
      expectRefused(() => checkMetaFile(BYTES, { length: BYTES.length + 1 }, 'targets', 'snapshot'), 'hash-mismatch', 'targets', 'but snapshot declares');
      expectRefused(() => checkMetaFile(BYTES, { hashes: { sha256: hex(sha256(Buffer.from('x'))) } }, 'targets', 'snapshot'), 'hash-mismatch', 'targets', 'sha256 of the file differs from what snapshot declares');
    });
  });
});

describe('Notary delegations: path rules and the role map', () => {
  it('one prefix rule serves both target matching and path restriction', () => {
    expect(isDelegatedPath(['rel/', 'qa/'], 'qa/rc1')).to.equal(true);
    expect(isDelegatedPath(['rel/'], 'release')).to.equal(false);
    expect(isDelegatedPath([''], 'anything')).to.equal(true);
    expect(isDelegatedPath([], 'anything')).to.equal(false);
    // A child path is kept exactly when the parent's paths delegate it as a target name.
    for (const child of ['rel/x/', 'rel', 'other/', '']) {
      expect(restrictPaths([child], ['rel/']).length === 1, child).to.equal(isDelegatedPath(['rel/'], child));
    }
  });

  it('top-level targets is the first role, delegated every path by root; delegations follow in pre-order', async () => {
    const r = new RepoForge({ now: NOW, sharedKeys: true }).build();
    const { repo } = await update(r, { pin: pinFromPem(r.rootPems) });
    const roles = roleMap(repo.parts);
    expect([...roles.keys()]).to.deep.equal(['targets', 'targets/releases', 'targets/releases/nightly', 'targets/qa']);
    const top = roles.get('targets')!;
    expect([top.parent, top.paths, top.threshold]).to.deep.equal(['root', [''], repo.parts.root.meta.roles.targets.threshold]);
    expect(top.meta).to.equal(repo.parts.targets.meta);
    // The hand-off form keeps top-level targets apart from the delegations.
    expect([...repo.parts.delegations.keys()]).to.not.include('targets');
  });
});
