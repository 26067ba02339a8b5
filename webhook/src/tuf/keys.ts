import { canonicalBytes } from './canonical.js';
import {
  sha256,
  spkiKey,
  spkiDer,
  X509Certificate,
  ecBits,
  rsaBits,
  verifyEcdsa,
  verifyEd25519,
  verifyRsaPkcs1,
  verifyRsaPss,
  type KeyObject,
} from './crypto.js';
import { TufError } from './errors.js';
import { Fields, isObject, type JsonValue } from './json.js';

export type KeyType = 'ecdsa' | 'ecdsa-x509' | 'rsa' | 'rsa-x509' | 'ed25519';
const KEY_TYPES: ReadonlySet<string> = new Set(['ecdsa', 'ecdsa-x509', 'rsa', 'rsa-x509', 'ed25519']);

/** A verified-to-be-well-formed public key from metadata. */
export interface PublicKey {
  /** hex sha256 of canonical {"keytype","keyval":{"private":null,"public"}}: the ID metadata uses. */
  readonly id: string;
  readonly keytype: KeyType;
  /** For x509 keys: the ID of the plain key inside the leaf certificate (what `notary key list` shows). */
  readonly canonicalId: string;
  /**
   * DER SubjectPublicKeyInfo (Ed25519: the raw 32 bytes), one encoding per key: what tells
   * keys apart when thresholds are counted and pinned keys are matched, whatever their IDs.
   */
  readonly spki: Buffer;
  /** Leaf certificate of x509 keys. */
  readonly certificate?: X509Certificate;
  /** keyval.public exactly as the metadata wrote it (base64), so the key can be rebuilt elsewhere. */
  readonly publicValue: string;
  verify(method: string, message: Uint8Array, signature: Uint8Array): boolean;
}

const HEX = (b: Uint8Array) => Buffer.from(b).toString('hex');

export function keyId(keytype: string, publicB64: string, role: string): string {
  const obj = Object.assign(Object.create(null), {
    keytype,
    keyval: Object.assign(Object.create(null), { private: null, public: publicB64 }),
  });
  return HEX(sha256(canonicalBytes(obj, role)));
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Buffers this small are carved out of Node's shared pool. */
const POOL_LIMIT = Buffer.poolSize >>> 1;
export function checkBase64(s: string, role: string, what: string | (() => string)): void {
  if (s.length % 4 !== 0 || !BASE64.test(s)) throw new TufError('malformed', role, `${typeof what === 'string' ? what : what()} is not standard base64`);
}

export function decodeBase64(s: string, role: string, what: string | (() => string)): Buffer {
  checkBase64(s, role, what);
  const pooled = Buffer.from(s, 'base64');
  // A small decoded Buffer is a view into a shared 8 KiB slab; a cached hash would keep the
  // whole slab alive after everything else in it is gone. A copy owns just its bytes.
  if (pooled.byteLength >= POOL_LIMIT) return pooled;
  const own = Buffer.alloc(pooled.byteLength);
  pooled.copy(own);
  return own;
}

/**
 * Parse a key object. `declaredId` is the ID the metadata files it under: it must be the
 * ID the key actually hashes to, or an attacker could make one key count as another.
 */
export function parseKey(declaredId: string, value: JsonValue | undefined, role: string): PublicKey {
  if (!isObject(value)) throw new TufError('malformed', role, `key ${declaredId} is not an object`);
  const f = new Fields(value, role, `key ${declaredId}`);
  const keytype = f.string('keytype');
  const publicB64 = f.fields('keyval').string('public');
  if (!KEY_TYPES.has(keytype)) throw new TufError('bad-key', role, `key ${declaredId} has unsupported type "${keytype}"`);
  const id = keyId(keytype, publicB64, role);
  if (id !== declaredId) {
    throw new TufError('bad-key', role, `key listed as ${declaredId} actually has ID ${id}`);
  }
  const known = parsedKeys.get(id)?.deref();
  if (known) return known;
  const raw = decodeBase64(publicB64, role, `key ${id} public value`);
  let key: PublicKey;
  try {
    key = { ...buildKey(id, keytype as KeyType, raw, role), publicValue: publicB64 };
  } catch (e) {
    if (e instanceof TufError) throw e;
    throw new TufError('bad-key', role, `key ${id} (${keytype}) cannot be parsed: ${(e as Error).message}`);
  }
  parsedKeys.set(id, new WeakRef(key));
  forgetKey.register(key, id);
  return key;
}

/**
 * Parsed keys by ID while any verified metadata still holds them. The ID is the SHA-256 of
 * the key type and public value, so one ID is one parse result; repositories signed by the
 * same keys (an organisation's release key, a wildcard root certificate, every refresh of
 * one repository) then share one native key and certificate instead of holding one each,
 * tens of kilobytes outside the JS heap. Weak: an entry lives as long as its users.
 */
const parsedKeys = new Map<string, WeakRef<PublicKey>>();
const forgetKey = new FinalizationRegistry<string>((id) => {
  if (parsedKeys.get(id)?.deref() === undefined) parsedKeys.delete(id);
});

function buildKey(id: string, keytype: KeyType, raw: Buffer, role: string): Omit<PublicKey, 'publicValue'> {
  switch (keytype) {
    case 'ed25519': {
      if (raw.length !== 32) throw new TufError('bad-key', role, `ed25519 key ${id} is ${raw.length} bytes, not 32`);
      return { id, keytype, canonicalId: id, spki: raw, verify: (m, msg, sig) => m === 'eddsa' && verifyEd25519(raw, msg, sig) };
    }
    case 'ecdsa':
    case 'rsa':
      return nodeKey(id, keytype, spkiKey(raw), role);
    case 'ecdsa-x509':
    case 'rsa-x509': {
      const certs = splitPemCertificates(raw.toString('utf8'));
      if (certs.length === 0) throw new TufError('bad-key', role, `${keytype} key ${id} holds no PEM certificate`);
      let leaf = new X509Certificate(certs[0]!);
      if (certs.length > 1) {
        // A bundle (leaf plus intermediates) must say unambiguously which key signs, as
        // Notary requires: exactly one certificate that is not a CA.
        const leaves = certs.map((c) => new X509Certificate(c)).filter((c) => !c.ca);
        if (leaves.length !== 1) {
          throw new TufError('bad-key', role, `${keytype} key ${id} bundles ${certs.length} certificates with ${leaves.length} leaf certificates; exactly one is required`);
        }
        leaf = leaves[0]!;
      }
      return nodeKey(id, keytype, leaf.publicKey, role, leaf);
    }
  }
}

function nodeKey(id: string, keytype: KeyType, key: KeyObject, role: string, certificate?: X509Certificate): Omit<PublicKey, 'publicValue'> {
  const family = keytype.startsWith('ecdsa') ? 'ec' : 'rsa';
  if (key.asymmetricKeyType !== family) {
    throw new TufError('bad-key', role, `key ${id} is declared ${keytype} but holds a ${key.asymmetricKeyType} key`);
  }
  if (family === 'ec' && ecBits(key) === undefined) {
    throw new TufError('bad-key', role, `key ${id} uses unsupported curve ${key.asymmetricKeyDetails?.namedCurve}`);
  }
  if (family === 'rsa' && rsaBits(key) < 2048) {
    throw new TufError('bad-key', role, `RSA key ${id} has ${rsaBits(key)} bits, fewer than 2048`);
  }
  const spki = spkiDer(key);
  const plainType = family === 'ec' ? 'ecdsa' : 'rsa';
  const canonicalId = certificate ? keyId(plainType, spki.toString('base64'), role) : id;
  const verify =
    family === 'ec'
      ? (m: string, msg: Uint8Array, sig: Uint8Array) => m === 'ecdsa' && verifyEcdsa(key, msg, sig)
      : (m: string, msg: Uint8Array, sig: Uint8Array) =>
          (m === 'rsapss' && verifyRsaPss(key, msg, sig)) ||
          (m === 'rsapkcs1v15' && verifyRsaPkcs1(key, msg, sig));
  return certificate ? { id, keytype, canonicalId, spki, certificate, verify } : { id, keytype, canonicalId, spki, verify };
}

/** PEM blocks of type CERTIFICATE, in order; anything else in the text is ignored. */
export function splitPemCertificates(text: string): string[] {
  const out: string[] = [];
  const re = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
  for (const m of text.matchAll(re)) out.push(m[0] + '\n');
  return out;
}

/** Which signature methods a key type can make; used to explain a refused signature. */
export function methodsFor(keytype: KeyType): string[] {
  if (keytype === 'ed25519') return ['eddsa'];
  return keytype.startsWith('ecdsa') ? ['ecdsa'] : ['rsapss', 'rsapkcs1v15'];
}
