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
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
      throw new TufError('bad-key', 'root', 'pinned root key cannot be parsed: it is a private key; pin its public key or certificate (and treat the private key as leaked)');
    }
    try {
      der = spkiDer(cert ? new X509Certificate(cert).publicKey : pemPublicKey(pem));
    } catch (e) {
      throw new TufError('bad-key', 'root', `pinned root key cannot be parsed: ${pemProblem(pem, cert !== undefined, e)}`);
    }
    if (!keys.some((k) => k.equals(der))) keys.push(der);
  }
  if (keys.length === 0) throw new TufError('untrusted-root', 'root', 'no root keys are pinned');
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > keys.length) {
    throw new TufError('untrusted-root', 'root', `pinned threshold ${threshold} must be between 1 and ${keys.length} distinct keys`);
  }
  return { keys, threshold };
}

/** What is wrong with a PEM text, in words (OpenSSL's codes say little to a person). */
function pemProblem(pem: string, isCertificate: boolean, e: unknown): string {
  const block = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!/-----BEGIN /.test(pem)) return 'no PEM block: expected -----BEGIN PUBLIC KEY----- or -----BEGIN CERTIFICATE----- ... -----END ...-----';
  if (!block) return 'the PEM block is not closed by a matching -----END ...----- line (truncated, or the lines lost their order)';
  const label = block[1]!;
  if (label !== 'PUBLIC KEY' && label !== 'CERTIFICATE' && label !== 'RSA PUBLIC KEY' && label !== 'EC PUBLIC KEY') return `a ${label} block, not a PUBLIC KEY or CERTIFICATE`;
  const body = block[2]!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) return `the ${label} block is not valid base64 (a character was changed, or the text was cut)`;
  const code = (e as { code?: string }).code ?? '';
  return `the ${label} block's contents are not a valid ${isCertificate ? 'X.509 certificate' : 'public key'}${code.includes('UNSUPPORTED') ? ' of a supported type' : ''} (damaged, truncated or the wrong kind of data)`;
}
