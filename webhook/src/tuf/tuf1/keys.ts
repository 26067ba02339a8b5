/**
 * Keys of the TUF 1.0 specification (§4.2 "File formats: general principles", KEYTYPE and
 * SCHEME; the key types python-tuf, go-tuf and tuf-js write). A key ID is taken as the
 * metadata gives it (the specification does not require recomputing it), so the identity
 * that thresholds count is the public key itself, never the ID.
 */
import { pemPublicKey, spkiDer, ecBits, rsaBits, verifyEcdsaDer, verifyEd25519, verifyRsaPssAnySalt, verifyRsaPkcs1, type KeyObject } from '../crypto.js';
import { TufError } from '../errors.js';
import { Fields, isObject, type JsonValue } from '../json.js';

export interface SpecKey {
  readonly id: string;
  readonly keytype: string;
  readonly scheme: string;
  /** DER SubjectPublicKeyInfo (Ed25519: the raw 32 bytes), hex: what "the same key" means. */
  readonly identity: string;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

const ECDSA_SCHEMES: Record<string, { bits: number; hash: 'sha256' | 'sha384' }> = {
  'ecdsa-sha2-nistp256': { bits: 256, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { bits: 384, hash: 'sha384' },
};

// The specification's RSA scheme, and securesystemslib's PKCS#1 v1.5 one that python-tuf, go-tuf
// and tuf-js also verify (and the TUF conformance suite signs with by default).
const RSA_SCHEMES: Record<string, (key: KeyObject, m: Uint8Array, s: Uint8Array) => boolean> = {
  'rsassa-pss-sha256': verifyRsaPssAnySalt,
  'rsa-pkcs1v15-sha256': (key, m, s) => {
    try {
      return verifyRsaPkcs1(key, m, s);
    } catch {
      return false; // a signature of the wrong size is invalid, not a crash
    }
  },
};

export function parseSpecKey(id: string, value: JsonValue | undefined, role: string): SpecKey {
  if (!isObject(value)) throw new TufError('malformed', role, `key ${id} is not an object`);
  const f = new Fields(value, role, `key ${id}`);
  const keytype = f.string('keytype');
  const scheme = f.string('scheme');
  const pub = f.fields('keyval').string('public');
  try {
    return buildKey(id, keytype, scheme, pub, role);
  } catch (e) {
    if (e instanceof TufError) throw e;
    throw new TufError('bad-key', role, `key ${id} (${keytype}/${scheme}) cannot be parsed: ${(e as Error).message}`);
  }
}

function buildKey(id: string, keytype: string, scheme: string, pub: string, role: string): SpecKey {
  if (keytype === 'ed25519') {
    if (scheme !== 'ed25519') throw mismatch(id, keytype, scheme, role);
    if (!/^[0-9a-f]{64}$/.test(pub)) throw new TufError('bad-key', role, `ed25519 key ${id} is not 32 bytes of lowercase hex`);
    const raw = Buffer.from(pub, 'hex');
    return { id, keytype, scheme, identity: ED25519_SPKI_PREFIX + pub, verify: (m, s) => verifyEd25519(raw, m, s) };
  }
  const ecdsa = ECDSA_SCHEMES[scheme];
  if (ecdsa && (keytype === 'ecdsa' || keytype === scheme)) {
    const key = pem(pub, id, role);
    if (key.asymmetricKeyType !== 'ec' || ecBits(key) !== ecdsa.bits) {
      throw new TufError('bad-key', role, `key ${id} is declared ${scheme} but holds a ${describe(key)} key`);
    }
    return { id, keytype, scheme, identity: identity(key), verify: (m, s) => verifyEcdsaDer(key, ecdsa.hash, m, s) };
  }
  const rsa = RSA_SCHEMES[scheme];
  if (keytype === 'rsa' && rsa) {
    const key = pem(pub, id, role);
    if (key.asymmetricKeyType !== 'rsa') throw new TufError('bad-key', role, `key ${id} is declared rsa but holds a ${describe(key)} key`);
    if (rsaBits(key) < 2048) throw new TufError('bad-key', role, `RSA key ${id} has ${rsaBits(key)} bits, fewer than 2048`);
    return { id, keytype, scheme, identity: identity(key), verify: (m, s) => rsa(key, m, s) };
  }
  if (ecdsa || keytype.startsWith('ecdsa') || keytype === 'rsa') throw mismatch(id, keytype, scheme, role);
  throw new TufError('bad-key', role, `key ${id} has unsupported type "${keytype}" (scheme "${scheme}")`);
}

function mismatch(id: string, keytype: string, scheme: string, role: string): TufError {
  return new TufError('bad-key', role, `key ${id}: keytype "${keytype}" does not go with scheme "${scheme}"`);
}

function pem(text: string, id: string, role: string): KeyObject {
  if (!text.includes('-----BEGIN PUBLIC KEY-----')) throw new TufError('bad-key', role, `key ${id} is not a PEM public key`);
  try {
    return pemPublicKey(text);
  } catch {
    throw new TufError('bad-key', role, `key ${id} is not a readable PEM public key`);
  }
}

function describe(key: KeyObject): string {
  return key.asymmetricKeyType === 'ec' ? `${key.asymmetricKeyDetails?.namedCurve ?? 'unknown curve'} EC` : String(key.asymmetricKeyType);
}

function identity(key: KeyObject): string {
  return 'spki:' + spkiDer(key).toString('hex');
}

/** DER SubjectPublicKeyInfo header of an Ed25519 key: with it, every identity is an SPKI. */
const ED25519_SPKI_PREFIX = 'spki:302a300506032b6570032100';

/** The identity a pinned key (DER SubjectPublicKeyInfo) has among metadata keys. */
export function identityOfSpki(der: Uint8Array): string {
  return 'spki:' + Buffer.from(der).toString('hex');
}
