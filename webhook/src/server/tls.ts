// Serving certificates: a self-signed pair when none is given, and hot reload of given
// files. Kubernetes updates a mounted Secret by swapping a `..data` symlink in the
// directory, so the directory is watched, not the file; fs.watch misses events on some
// filesystems, so a poll backs it up. A cert and key written one after the other are
// briefly a mismatched pair: that state is refused and the old pair kept until both agree.
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Server } from 'node:https';
import type { Logger } from '../admission/types.js';

/** Settings every secure context gets, initial and reloaded alike (setSecureContext replaces all of them). */
export const TLS_SETTINGS = { minVersion: 'TLSv1.2' } as const;

export interface KeyPair {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint of the leaf certificate, colon-separated hex as openssl prints it. */
  fingerprint: string;
}

export interface SelfSigned {
  dir: string;
  certFile: string;
  keyFile: string;
  fingerprint: string;
}

/** Makes a P-256 self-signed certificate with the openssl CLI (node:crypto cannot issue certificates). */
export async function generateSelfSigned(names: string[] = []): Promise<SelfSigned> {
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-tls-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const san = [...new Set(['localhost', ...names])].map((n) => (isIp(n) ? `IP:${n}` : `DNS:${n}`));
  san.push('IP:127.0.0.1', 'IP:0:0:0:0:0:0:0:1');
  const args = [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '365', '-subj', '/CN=trustgate',
    '-addext', `subjectAltName=${[...new Set(san)].join(',')}`,
  ];
  try {
    await new Promise<void>((resolve, reject) => {
      execFile('openssl', args, { timeout: 30_000 }, (err, _stdout, stderr) => {
        if (err) {
          const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
          const why = missing ? 'the openssl command is not installed here' : String(stderr).trim() || err.message;
          reject(new Error(`openssl could not make a self-signed certificate: ${why}; give --tls-cert and --tls-key instead`));
        } else {
          resolve();
        }
      });
    });
    const pair = await readPair(certFile, keyFile);
    return { dir, certFile, keyFile, fingerprint: pair.fingerprint };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Reads and checks a cert/key pair: both parse and the key belongs to the certificate. */
export async function readPair(certFile: string, keyFile: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  let fingerprint: string;
  try {
    fingerprint = new X509Certificate(cert).fingerprint256;
  } catch (e) {
    throw new Error(`${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    // Fails when the key does not match the certificate.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`${keyFile} cannot be used with ${certFile}: ${(e as Error).message}`);
  }
  return { cert, key, fingerprint };
}

export class CertificateReloader {
  private watchers: FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private digest: string;
  private lastRefused = '';
  private checking: Promise<boolean> | undefined;

  constructor(
    private readonly server: Server,
    private readonly certFile: string,
    private readonly keyFile: string,
    private current: KeyPair,
    private readonly log: Logger,
    private readonly pollMs = 10_000,
  ) {
    this.digest = pairDigest(current.cert, current.key);
  }

  get fingerprint(): string {
    return this.current.fingerprint;
  }

  start(): void {
    for (const dir of new Set([dirname(this.certFile), dirname(this.keyFile)])) {
      try {
        const w = watch(dir, { persistent: false }, () => this.soon());
        w.on('error', (e) => this.log.debug('certificate directory watch failed; polling continues', { dir, error: e.message }));
        this.watchers.push(w);
      } catch (e) {
        this.log.debug('cannot watch certificate directory; polling only', { dir, error: (e as Error).message });
      }
    }
    this.poll = setInterval(() => void this.check(), this.pollMs);
    this.poll.unref();
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    clearInterval(this.poll);
    clearTimeout(this.debounce);
  }

  /** Re-reads the files now; true when a new pair went into service. */
  check(): Promise<boolean> {
    // One check at a time: a burst of watch events must not interleave reads.
    this.checking ??= this.doCheck().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private soon(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), 50);
    this.debounce.unref();
  }

  private async doCheck(): Promise<boolean> {
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(this.certFile), readFile(this.keyFile)]);
    } catch (e) {
      this.refuse(`cannot read: ${(e as Error).message}`, 'read');
      return false;
    }
    const digest = pairDigest(cert, key);
    if (digest === this.digest) return false;
    let pair: KeyPair;
    try {
      pair = await readPair(this.certFile, this.keyFile);
      // The files may have moved on while we validated; only a pair read twice the same is used.
      if (pairDigest(pair.cert, pair.key) !== digest) return false;
      this.server.setSecureContext({ ...TLS_SETTINGS, cert: pair.cert, key: pair.key });
    } catch (e) {
      this.refuse((e as Error).message, digest);
      return false;
    }
    this.digest = digest;
    this.current = pair;
    this.log.info('serving certificate reloaded', { certFile: this.certFile, fingerprint: pair.fingerprint });
    return true;
  }

  private refuse(reason: string, key: string): void {
    if (key === this.lastRefused) return;
    this.lastRefused = key;
    this.log.warn('new certificate files refused; keeping the current pair', { certFile: this.certFile, keyFile: this.keyFile, reason });
  }
}

function pairDigest(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}

function isIp(s: string): boolean {
  return /^[0-9.]+$/.test(s) || s.includes(':');
}
