import { expect } from 'chai';
import { ECDH, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { TufError } from '../../webhook/src/tuf/errors.js';
import { keyId, parseKey, methodsFor, type PublicKey } from '../../webhook/src/tuf/keys.js';
import type { JsonValue } from '../../webhook/src/tuf/json.js';
import { certKey, dict, ForgeKey, GUN, notaryKeyId } from '../support/forge.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const MESSAGE = Buffer.from('{"_type":"Targets","version":1}');
const METHODS = ['ecdsa', 'rsapss', 'rsapkcs1v15', 'eddsa'] as const;

function refused(f: () => unknown): TufError {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(TufError);
    return e as TufError;
  }
  expect.fail('expected a TufError');
}

function parsed(k: ForgeKey): PublicKey {
  return parseKey(k.id, k.json() as JsonValue, 'root');
}

/** DER length octets. */
function derLength(n: number): number[] {
  return n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
}

/** The SubjectPublicKeyInfo `der` with its EC point replaced by `point` (same AlgorithmIdentifier). */
function withPoint(der: Buffer, point: Buffer): Buffer {
  const at = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f);
  const algorithm = der.subarray(at, at + 2 + der[at + 1]!);
  const bitString = Buffer.from([0x03, ...derLength(point.length + 1), 0x00, ...point]);
  return Buffer.from([0x30, ...derLength(algorithm.length + bitString.length), ...algorithm, ...bitString]);
}

function keyObject(keytype: string, publicB64: string) {
  return dict({ keytype, keyval: dict({ private: null, public: publicB64 }) }) as JsonValue;
}

describe('tuf keys and key IDs', () => {
  let keys: Record<'ecdsa' | 'ecdsa-x509' | 'rsa' | 'rsa-x509' | 'ed25519', ForgeKey>;

  before(() => {
    const ec = ForgeKey.ecdsa();
    const rsa = ForgeKey.rsa();
    keys = {
      ecdsa: ec,
      'ecdsa-x509': certKey(ec, GUN, NOW),
      rsa,
      'rsa-x509': certKey(rsa, 'qa', NOW),
      ed25519: ForgeKey.ed25519(),
    };
  });

  it('computes the ID of the captured Notary timestamp key (FORMAT.md §3.2)', () => {
    const pub =
      'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYbSrWH+T3ZpqMVSFZDczKMAFda/OmcDW5NxAKvjs5s+2LaPPzbjkLvqOt2hJTRw1+V/Wcd38cVI0pZuhr721aA==';
    expect(keyId('ecdsa', pub, 'root')).to.equal('05d4d7389ce4a41d462150aaa71fb4c2fd44ba6fb32c27ca593c0c95ebb31684');
  });

  it('recomputes the ID of every key type as sha256 of the canonical key object', () => {
    for (const [type, k] of Object.entries(keys)) {
      const expected = notaryKeyId(type, k.publicB64);
      expect(keyId(type, k.publicB64, 'root'), type).to.equal(expected);
      expect(parsed(k).id, type).to.equal(expected);
      expect(parsed(k).keytype).to.equal(type);
    }
  });

  it('gives x509 keys a canonical ID: the ID of the plain key inside the certificate', () => {
    for (const type of ['ecdsa-x509', 'rsa-x509'] as const) {
      const k = parsed(keys[type]);
      const plainType = type === 'ecdsa-x509' ? 'ecdsa' : 'rsa';
      expect(k.canonicalId).to.equal(notaryKeyId(plainType, keys[plainType].publicB64));
      expect(k.canonicalId).not.to.equal(k.id);
      expect(k.certificate?.subject).to.match(/CN=/);
    }
    for (const type of ['ecdsa', 'rsa', 'ed25519'] as const) expect(parsed(keys[type]).canonicalId).to.equal(keys[type].id);
  });

  it('gives a certificate and its bare key the same SPKI (what pinning compares)', () => {
    expect(parsed(keys['ecdsa-x509']).spki.equals(parsed(keys.ecdsa).spki)).to.equal(true);
    expect(parsed(keys['rsa-x509']).spki.equals(parsed(keys.rsa).spki)).to.equal(true);
  });

  it('gives one P-384 and one P-521 key the same SPKI whether its point is written compressed, hybrid or uncompressed', () => {
    for (const curve of ['secp384r1', 'secp521r1'] as const) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const der = publicKey.export({ format: 'der', type: 'spki' });
      const bytes = Math.ceil((curve === 'secp384r1' ? 384 : 521) / 8);
      const point = der.subarray(-(1 + 2 * bytes));
      const plain = parseKey(notaryKeyId('ecdsa', der.toString('base64')), keyObject('ecdsa', der.toString('base64')), 'targets');
      for (const form of ['compressed', 'hybrid'] as const) {
        const other = ECDH.convertKey(point, curve, undefined, undefined, form) as Buffer;
        const b64 = withPoint(der, other).toString('base64');
        const k = parseKey(notaryKeyId('ecdsa', b64), keyObject('ecdsa', b64), 'targets');
        expect(k.id, `${curve} ${form}`).not.to.equal(plain.id);
        expect(k.spki.equals(plain.spki), `${curve} ${form}`).to.equal(true);
      }
    }
  });

  it('refuses a key filed under an ID that is not its own', () => {
    const e = refused(() => parseKey(keys.rsa.id, keys.ecdsa.json() as JsonValue, 'targets'));
    expect(e.code).to.equal('bad-key');
    expect(e.message).to.contain(`actually has ID ${keys.ecdsa.id}`);
  });

  it('refuses an ID that differs only in case', () => {
    expect(refused(() => parseKey(keys.ecdsa.id.toUpperCase(), keys.ecdsa.json() as JsonValue, 'root')).code).to.equal('bad-key');
  });

  const bad: [string, () => [string, string], RegExp][] = [
    ['an unsupported key type', () => ['dsa', keys.ecdsa.publicB64], /unsupported type/],
    ['an ecdsa key that holds an Ed25519 SPKI', () => {
      const { publicKey } = generateKeyPairSync('ed25519');
      return ['ecdsa', publicKey.export({ format: 'der', type: 'spki' }).toString('base64')];
    }, /declared ecdsa but holds a ed25519 key/],
    ['an ecdsa-x509 key holding an RSA certificate', () => ['ecdsa-x509', keys['rsa-x509'].publicB64], /declared ecdsa-x509 but holds a rsa key/],
    ['an rsa key holding an EC key', () => ['rsa', keys.ecdsa.publicB64], /declared rsa/],
    ['an Ed25519 key of 33 bytes', () => ['ed25519', Buffer.alloc(33, 7).toString('base64')], /33 bytes, not 32/],
    ['an ecdsa key on secp256k1', () => {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      return ['ecdsa', publicKey.export({ format: 'der', type: 'spki' }).toString('base64')];
    }, /unsupported curve/],
    ['an RSA key of 1024 bits', () => {
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
      return ['rsa', publicKey.export({ format: 'der', type: 'spki' }).toString('base64')];
    }, /1024 bits, fewer than 2048/],
    ['an x509 key without any certificate', () => ['ecdsa-x509', Buffer.from('not a certificate').toString('base64')], /no PEM certificate/],
    ['an x509 key with a corrupt certificate', () => ['ecdsa-x509', Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString('base64')], /cannot be parsed/],
    ['an ecdsa key whose SPKI is garbage', () => ['ecdsa', Buffer.from('garbage').toString('base64')], /cannot be parsed/],
  ];
  for (const [label, make, why] of bad) {
    it(`refuses ${label} with bad-key`, () => {
      const [type, pub] = make();
      const e = refused(() => parseKey(notaryKeyId(type, pub), keyObject(type, pub), 'targets'));
      expect(e.code).to.equal('bad-key');
      expect(e.message).to.match(why);
    });
  }

  it('takes the one leaf of a certificate bundle, and refuses a bundle with two leaves (which key would sign?)', () => {
    const leaf = keys['ecdsa-x509'].certPem!;
    const ca = certKey(ForgeKey.ecdsa(), 'intermediate', NOW, { extensions: ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign'] }).certPem!;
    // Intermediate first: the leaf is found by what it is, not by where it sits.
    const bundle = Buffer.from(ca + leaf).toString('base64');
    const k = parseKey(notaryKeyId('ecdsa-x509', bundle), keyObject('ecdsa-x509', bundle), 'targets');
    expect(k.spki.equals(parsed(keys.ecdsa).spki)).to.equal(true);

    const other = certKey(ForgeKey.ecdsa(), 'other', NOW).certPem!;
    const twoLeaves = Buffer.from(leaf + other).toString('base64');
    const e = refused(() => parseKey(notaryKeyId('ecdsa-x509', twoLeaves), keyObject('ecdsa-x509', twoLeaves), 'root'));
    expect(e.code).to.equal('bad-key');
    expect(e.message).to.match(/bundles 2 certificates with 2 leaf certificates; exactly one is required/);
  });

  it('refuses a public value that is not standard base64', () => {
    for (const pub of ['MFkw-_', 'MFk', 'MF=w']) {
      const e = refused(() => parseKey(notaryKeyId('ecdsa', pub), keyObject('ecdsa', pub), 'targets'));
      expect(e.code).to.equal('malformed');
      expect(e.message).to.match(/base64/);
    }
  });

  it('refuses a key object without keyval.public', () => {
    const e = refused(() => parseKey('ab', dict({ keytype: 'ecdsa', keyval: dict({ private: null }) }) as JsonValue, 'root'));
    expect(e.code).to.equal('malformed');
    expect(e.message).to.match(/keyval\.public must be a string/);
  });
});

describe('tuf signature methods per key type', () => {
  const NATIVE: Record<string, string[]> = {
    ecdsa: ['ecdsa'],
    'ecdsa-x509': ['ecdsa'],
    rsa: ['rsapss', 'rsapkcs1v15'],
    'rsa-x509': ['rsapss', 'rsapkcs1v15'],
    ed25519: ['eddsa'],
  };
  let keys: ForgeKey[];
  let others: Record<string, ForgeKey>;

  before(() => {
    const ec = ForgeKey.ecdsa();
    const rsa = ForgeKey.rsa();
    keys = [ec, certKey(ec, GUN, NOW), rsa, certKey(rsa, 'qa', NOW), ForgeKey.ed25519()];
    const ec2 = ForgeKey.ecdsa();
    const rsa2 = ForgeKey.rsa();
    others = { ecdsa: ec2, 'ecdsa-x509': certKey(ec2, GUN, NOW), rsa: rsa2, 'rsa-x509': certKey(rsa2, 'qa', NOW), ed25519: ForgeKey.ed25519() };
  });

  it('lists the methods each key type can make', () => {
    for (const k of keys) expect(methodsFor(k.keytype)).to.deep.equal(NATIVE[k.keytype]);
  });

  it('verifies each native method with each key type, and nothing after one flipped bit', () => {
    for (const k of keys) {
      const pk = parsed(k);
      for (const method of NATIVE[k.keytype]!) {
        const sig = k.sign(MESSAGE, method);
        expect(pk.verify(method, MESSAGE, sig), `${k.keytype}/${method}`).to.equal(true);
        const flipped = Buffer.from(MESSAGE);
        flipped[5]! ^= 1;
        expect(pk.verify(method, flipped, sig), `${k.keytype}/${method} message`).to.equal(false);
        const badSig = Buffer.from(sig);
        badSig[badSig.length - 1]! ^= 1;
        expect(pk.verify(method, MESSAGE, badSig), `${k.keytype}/${method} signature`).to.equal(false);
        // Another key of the same family must not verify it.
        expect(parsed(others[k.keytype]!).verify(method, MESSAGE, sig), `${k.keytype}/${method} other key`).to.equal(false);
      }
    }
  });

  it('refuses a valid signature labelled with a method the key type cannot make', () => {
    for (const k of keys) {
      const pk = parsed(k);
      const real = k.sign(MESSAGE);
      for (const method of METHODS) {
        if (NATIVE[k.keytype]!.includes(method)) continue;
        expect(pk.verify(method, MESSAGE, real), `${k.keytype} labelled ${method}`).to.equal(false);
      }
    }
  });

  it('refuses an RSA-PSS signature labelled PKCS#1 v1.5 and the other way round', () => {
    const rsa = keys[2]!;
    const pk = parsed(rsa);
    expect(pk.verify('rsapkcs1v15', MESSAGE, rsa.sign(MESSAGE, 'rsapss'))).to.equal(false);
    expect(pk.verify('rsapss', MESSAGE, rsa.sign(MESSAGE, 'rsapkcs1v15'))).to.equal(false);
  });

  it('refuses an ECDSA signature in ASN.1 DER instead of raw r||s', () => {
    const ec = keys[0]!;
    const der = ec.sign(MESSAGE, 'ecdsa-der');
    expect(der[0]).to.equal(0x30);
    expect(parsed(ec).verify('ecdsa', MESSAGE, der)).to.equal(false);
    expect(parsed(ec).verify('ecdsa', MESSAGE, ec.sign(MESSAGE, 'ecdsa'))).to.equal(true);
  });

  it('refuses a raw ECDSA signature of the wrong length (padded or truncated)', () => {
    const ec = keys[0]!;
    const sig = ec.sign(MESSAGE);
    expect(sig.length).to.equal(64);
    expect(parsed(ec).verify('ecdsa', MESSAGE, Buffer.concat([Buffer.alloc(1), sig]))).to.equal(false);
    expect(parsed(ec).verify('ecdsa', MESSAGE, sig.subarray(0, 63))).to.equal(false);
  });

  it('verifies P-384 raw signatures (96 bytes), always over SHA-256', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pub = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const pk = parseKey(notaryKeyId('ecdsa', pub), keyObject('ecdsa', pub), 'targets');
    const sign = (m: Buffer, alg: string) => nodeSign(alg, m, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const sig = sign(MESSAGE, 'sha256');
    expect(sig.length).to.equal(96);
    expect(pk.verify('ecdsa', MESSAGE, sig)).to.equal(true);
    expect(pk.verify('ecdsa', MESSAGE, sign(MESSAGE, 'sha384'))).to.equal(false);
  });

  it('refuses an Ed25519 signature with a non-canonical S (strict RFC 8032, like Go)', () => {
    const ed = keys[4]!;
    const sig = ed.sign(MESSAGE);
    // S + L, where L is the group order: same point equation, but S >= L must be refused.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const s = BigInt('0x' + Buffer.from(sig.subarray(32)).reverse().toString('hex'));
    const big = s + L;
    expect(big < 1n << 256n).to.equal(true);
    const sBytes = Buffer.from(big.toString(16).padStart(64, '0'), 'hex').reverse();
    const malleated = Buffer.concat([sig.subarray(0, 32), sBytes]);
    expect(parsed(ed).verify('eddsa', MESSAGE, sig)).to.equal(true);
    expect(parsed(ed).verify('eddsa', MESSAGE, malleated)).to.equal(false);
  });
});
