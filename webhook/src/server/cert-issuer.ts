// Issuing the webhook's own CA and serving certificate (self-managed TLS). node:crypto
// makes keys and checks certificates but cannot issue them; @peculiar/x509 does that over
// WebCrypto. It is loaded on first use only: most replicas run with given files.
import { webcrypto, X509Certificate } from 'node:crypto';

export interface IssuedPem {
  cert: string;
  key: string;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Certificates start a little in the past so a node whose clock is behind accepts them at once. */
const BACKDATE_MS = 60 * 60 * 1000;

type X509Lib = typeof import('@peculiar/x509');
let lib: Promise<X509Lib> | undefined;

function x509(): Promise<X509Lib> {
  lib ??= (async () => {
    // @peculiar/x509 builds on tsyringe, which needs the Reflect metadata API present first.
    await import('reflect-metadata');
    const m = await import('@peculiar/x509');
    m.cryptoProvider.set(webcrypto as never);
    return m;
  })();
  return lib;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  // Positive (top bit clear) and unique enough that two replicas never issue the same one.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

/** A CA that can sign serving certificates only (path length 0). */
export async function issueCa(opts: { now: Date; lifetimeMs: number; commonName?: string }): Promise<IssuedPem> {
  const m = await x509();
  const keys = await newKeys();
  const cert = await m.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${opts.commonName ?? 'trustgate-webhook-ca'}`,
    notBefore: new Date(opts.now.getTime() - BACKDATE_MS),
    notAfter: new Date(opts.now.getTime() + opts.lifetimeMs),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new m.BasicConstraintsExtension(true, 0, true),
      new m.KeyUsagesExtension(m.KeyUsageFlags.keyCertSign | m.KeyUsageFlags.cRLSign, true),
      await m.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await pkcs8Pem(keys.privateKey) };
}

/** A serving certificate for dnsNames (IP addresses become IP SANs), signed by the CA, never outliving it. */
export async function issueServing(opts: { ca: IssuedPem; dnsNames: string[]; now: Date; lifetimeMs: number }): Promise<IssuedPem> {
  const m = await x509();
  const caCert = new m.X509Certificate(opts.ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(opts.ca.key), ALG, false, ['sign']);
  const keys = await newKeys();
  const caNotAfter = new X509Certificate(opts.ca.cert).validTo;
  const notAfter = Math.min(opts.now.getTime() + opts.lifetimeMs, Date.parse(caNotAfter));
  const cert = await m.X509CertificateGenerator.create({
    serialNumber: serial(),
    // The Common Name is not checked by anyone and is limited to 64 characters; the SANs count.
    subject: 'CN=trustgate-webhook',
    issuer: caCert.subject,
    notBefore: new Date(opts.now.getTime() - BACKDATE_MS),
    notAfter: new Date(notAfter),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new m.BasicConstraintsExtension(false, undefined, true),
      new m.KeyUsagesExtension(m.KeyUsageFlags.digitalSignature, true),
      new m.ExtendedKeyUsageExtension([m.ExtendedKeyUsage.serverAuth]),
      new m.SubjectAlternativeNameExtension(opts.dnsNames.map((n) => (isIp(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }))),
      await m.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await pkcs8Pem(keys.privateKey) };
}

function pemBody(pem: string): ArrayBuffer {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

function isIp(s: string): boolean {
  return /^[0-9.]+$/.test(s) || s.includes(':');
}
