import { pemPublicKey, spkiDer, X509Certificate } from './crypto.js';
import { TufError } from './errors.js';
import { splitPemCertificates } from './keys.js';

/** Root keys a policy pins, as DER SubjectPublicKeyInfo, and how many must sign the first root. */
export interface RootPin {
  keys: Buffer[];
  threshold: number;
}

/** Accepts PEM public keys and PEM certificates (the certificate's key is what is pinned). */
export function pinFromPem(pems: string[], threshold = 1): RootPin {
  const keys: Buffer[] = [];
  for (const pem of pems) {
    const cert = splitPemCertificates(pem)[0];
    let der: Buffer;
    try {
      der = spkiDer(cert ? new X509Certificate(cert).publicKey : pemPublicKey(pem));
    } catch (e) {
      throw new TufError('bad-key', 'root', `pinned root key cannot be parsed: ${(e as Error).message}`);
    }
    if (!keys.some((k) => k.equals(der))) keys.push(der);
  }
  if (keys.length === 0) throw new TufError('untrusted-root', 'root', 'no root keys are pinned');
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > keys.length) {
    throw new TufError('untrusted-root', 'root', `pinned threshold ${threshold} must be between 1 and ${keys.length} distinct keys`);
  }
  return { keys, threshold };
}
