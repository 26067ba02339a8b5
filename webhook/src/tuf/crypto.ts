/**
 * The one place that chooses crypto implementations. SHA-2 and Ed25519 from @noble (the
 * project's chosen libraries), ECDSA and RSA-PSS from node:crypto (OpenSSL), X.509 from
 * node:crypto. Nothing else in trustgate imports a crypto library.
 */
import { createPublicKey, verify as nodeVerify, constants, X509Certificate, type KeyObject } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { sha256 as nobleSha256, sha512 as nobleSha512 } from '@noble/hashes/sha2.js';

ed.hashes.sha512 = nobleSha512;

export type { KeyObject };
export { X509Certificate };

export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}

export function sha512(data: Uint8Array): Uint8Array {
  return nobleSha512(data);
}

export function spkiKey(der: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
}

export function pemPublicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

/**
 * DER SubjectPublicKeyInfo in one form per key, so that comparing bytes compares keys:
 * OpenSSL writes an EC point back the way it was read (compressed, hybrid), so such a key
 * is rewritten with its point uncompressed. RSA is re-encoded in DER by the export itself.
 */
export function spkiDer(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ec' || endsWithUncompressedPoint(key, der)) return der;
  return createPublicKey({ key: key.export({ format: 'jwk' }), format: 'jwk' }).export({ format: 'der', type: 'spki' });
}

/** The SPKI of a named curve ends with its point; uncompressed, that is 0x04 || x || y. */
function endsWithUncompressedPoint(key: KeyObject, der: Buffer): boolean {
  const bits = ecBits(key);
  if (bits === undefined) return true; // refused as an unsupported curve by the caller
  const pointLength = 1 + 2 * Math.ceil(bits / 8);
  // The whole SPKI of a compressed point is shorter than an uncompressed point alone; a
  // hybrid point has the uncompressed length but starts with 0x06 or 0x07.
  return der.length > pointLength + 2 && der[der.length - pointLength] === 0x04 && der[der.length - pointLength - 1] === 0x00;
}

/** ECDSA over SHA-256 (whatever the curve) with a raw r||s signature, as Notary writes it. */
export function verifyEcdsa(key: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  const bits = ecBits(key);
  if (bits === undefined || sig.length !== 2 * Math.ceil(bits / 8)) return false;
  return nodeVerify('sha256', msg, { key, dsaEncoding: 'ieee-p1363' }, sig);
}

export function verifyRsaPss(key: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  return nodeVerify('sha256', msg, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
}

export function verifyRsaPkcs1(key: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  return nodeVerify('sha256', msg, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
}

/** Strict RFC 8032 verification (not ZIP-215), matching Go's crypto/ed25519. */
export function verifyEd25519(publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (publicKey.length !== 32 || sig.length !== 64) return false;
  try {
    return ed.verify(sig, msg, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function ecBits(key: KeyObject): number | undefined {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  switch (curve) {
    case 'prime256v1':
      return 256;
    case 'secp384r1':
      return 384;
    case 'secp521r1':
      return 521;
    default:
      return undefined;
  }
}

export function rsaBits(key: KeyObject): number {
  return key.asymmetricKeyDetails?.modulusLength ?? 0;
}

const SHA1_SIGNATURE_OIDS = [
  Buffer.from('06072a8648ce3d0401', 'hex'), // ecdsa-with-SHA1
  Buffer.from('06092a864886f70d010105', 'hex'), // sha1WithRSAEncryption
];

/**
 * Whether a certificate is signed with SHA-1. Node 20's X509Certificate does not expose the
 * signature algorithm, so read it from the DER: Certificate ::= SEQUENCE { tbsCertificate,
 * signatureAlgorithm, signatureValue }.
 */
export function isSha1Signed(cert: X509Certificate): boolean {
  const der = cert.raw;
  const outer = derHeader(der, 0);
  if (!outer) return false;
  const tbs = derHeader(der, outer.body);
  if (!tbs) return false;
  const alg = derHeader(der, tbs.body + tbs.length);
  if (!alg) return false;
  const algBody = der.subarray(alg.body, alg.body + alg.length);
  return SHA1_SIGNATURE_OIDS.some((oid) => algBody.subarray(0, oid.length).equals(oid));
}

function derHeader(der: Buffer, at: number): { body: number; length: number } | undefined {
  if (at + 2 > der.length) return undefined;
  const first = der[at + 1]!;
  if (first < 0x80) return { body: at + 2, length: first };
  const n = first & 0x7f;
  if (n === 0 || n > 4 || at + 2 + n > der.length) return undefined;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + der[at + 2 + i]!;
  return { body: at + 2 + n, length };
}

/**
 * ECDSA with a DER (ASN.1) signature, as TUF 1.0 implementations write it (securesystemslib,
 * go-tuf, tuf-js). The hash is fixed by the scheme, not by the curve.
 */
export function verifyEcdsaDer(key: KeyObject, hash: 'sha256' | 'sha384', msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    return nodeVerify(hash, msg, { key, dsaEncoding: 'der' }, sig);
  } catch {
    return false; // malformed DER is an invalid signature, not a crash
  }
}

/** RSASSA-PSS over SHA-256 with any salt length (the salt length is the signer's choice). */
export function verifyRsaPssAnySalt(key: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    return nodeVerify('sha256', msg, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig);
  } catch {
    return false;
  }
}
