// Self-managed TLS: the webhook's CA and serving certificate live in one Secret that every
// replica shares. Each round a replica reads it; the first to find it absent creates it
// (the others get 409 and read the winner's), the first to find it due renews it with the
// resourceVersion it read (the others get 409 and read again), every replica serves what
// the Secret holds, and the webhook configurations' caBundle is set to the Secret's CAs.
//
// A renewed CA does not replace the old one in the bundle at once: replicas that have not
// yet picked up the new serving certificate still present one signed by the old CA, so the
// bundle keeps every CA that has not expired, newest first (the newest signs).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../admission/types.js';
import { issueCa, issueServing } from './cert-issuer.js';
import type { KeyPair } from './tls.js';

/** PEM text of the four Secret keys. */
export interface CertData {
  /** Every CA still trusted, newest first; the newest signs. */
  caCrt: string;
  caKey: string;
  tlsCrt: string;
  tlsKey: string;
}

export interface StoredCerts {
  data: CertData | undefined;
  resourceVersion: string;
}

/** The API server refused a write because someone else wrote first (HTTP 409). */
export class WriteConflict extends Error {}

/** Where the certificates are shared (a Secret); create and replace throw WriteConflict on 409. */
export interface CertStore {
  readonly origin: string;
  read(): Promise<StoredCerts | undefined>;
  create(data: CertData): Promise<StoredCerts>;
  replace(data: CertData, resourceVersion: string): Promise<StoredCerts>;
}

/** A webhook configuration whose clientConfig.caBundle must hold the CAs. */
export interface CaBundleTarget {
  readonly describe: string;
  /** 'updated' or 'unchanged'; 'missing' when the object does not exist (yet). */
  ensure(caBundlePem: string): Promise<'updated' | 'unchanged' | 'missing'>;
}

export interface Lifetimes {
  caMs: number;
  /** A CA with less than this left is replaced. */
  caRenewBeforeMs: number;
  servingMs: number;
  /** A serving certificate with less than this left is replaced. */
  servingRenewBeforeMs: number;
}

const DAY = 24 * 60 * 60 * 1000;
/** Renewals come with a third of the lifetime left: months of warning before anything expires. */
export const DEFAULT_LIFETIMES: Lifetimes = { caMs: 3 * 365 * DAY, caRenewBeforeMs: 365 * DAY, servingMs: 90 * DAY, servingRenewBeforeMs: 30 * DAY };

export interface CertRotationOptions {
  store: CertStore;
  targets: CaBundleTarget[];
  dnsNames: string[];
  log: Logger;
  clock?: () => Date;
  lifetimes?: Lifetimes;
  /** How often the Secret and the caBundles are checked (default 15 s: a webhook configuration that Helm re-creates gets its caBundle back within that). */
  resyncMs?: number;
  /** How soon to try again after a failed round or a webhook configuration not found (default 5 s). */
  retryMs?: number;
}

const RESYNC_MS = 15_000;

type Plan = { action: 'keep' } | { action: 'new-serving'; reason: string } | { action: 'new-ca'; reason: string };

export class CertRotation {
  private current: KeyPair | undefined;
  private readonly listeners: Array<(pair: KeyPair) => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<KeyPair> | undefined;
  private stopped = false;
  private readonly clock: () => Date;
  private readonly lifetimes: Lifetimes;
  private readonly missingLogged = new Set<string>();

  constructor(private readonly opts: CertRotationOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.lifetimes = opts.lifetimes ?? DEFAULT_LIFETIMES;
    if (opts.dnsNames.length === 0) throw new Error('self-managed TLS needs at least one DNS name for the serving certificate');
  }

  get origin(): string {
    return this.opts.store.origin;
  }

  /** The pair being served; defined after the first successful sync(). */
  get pair(): KeyPair {
    if (!this.current) throw new Error('self-managed TLS has not synced yet');
    return this.current;
  }

  onChange(listener: (pair: KeyPair) => void): void {
    this.listeners.push(listener);
  }

  /** One round: the Secret exists and is current, this replica serves it, the caBundles match. */
  sync(): Promise<KeyPair> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Syncs periodically from now on (after a first sync() the caller awaited). */
  start(): void {
    this.schedule(this.opts.resyncMs ?? RESYNC_MS);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.sync().then(
        () => this.schedule(this.missingLogged.size > 0 ? (this.opts.retryMs ?? 5000) : (this.opts.resyncMs ?? RESYNC_MS)),
        (e: unknown) => {
          this.opts.log.warn('self-managed TLS: checking the certificate Secret failed; serving the current certificate and retrying', {
            secret: this.origin,
            error: (e as Error).message,
          });
          this.schedule(this.opts.retryMs ?? 5000);
        },
      );
    }, ms);
    this.timer.unref();
  }

  private async round(): Promise<KeyPair> {
    const data = await this.settle();
    this.serve(data);
    await this.updateBundles(data.caCrt);
    return this.current!;
  }

  /** Reads, and creates or renews, until the Secret holds a pair this replica would keep. */
  private async settle(): Promise<CertData> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.opts.store.read();
      const now = this.clock();
      const plan = stored?.data ? this.plan(stored.data, now) : ({ action: 'new-ca', reason: 'no certificate yet' } as const);
      if (plan.action === 'keep') return stored!.data!;
      const next = await this.issue(plan, stored?.data, now);
      try {
        const written = stored ? await this.opts.store.replace(next, stored.resourceVersion) : await this.opts.store.create(next);
        this.opts.log.info(plan.action === 'new-ca' ? 'self-managed TLS: issued a new CA and serving certificate' : 'self-managed TLS: renewed the serving certificate', {
          secret: this.origin,
          reason: plan.reason,
          resourceVersion: written.resourceVersion,
        });
        return next;
      } catch (e) {
        // Another replica wrote first: what it wrote is read and, if good, used.
        if (!(e instanceof WriteConflict)) throw e;
        this.opts.log.debug('self-managed TLS: another replica wrote the Secret first; reading it again', { secret: this.origin });
      }
    }
    throw new Error(`the certificate Secret ${this.origin} kept changing under us (5 conflicts in a row)`);
  }

  private plan(data: CertData, now: Date): Plan {
    const t = now.getTime();
    let cas: X509Certificate[];
    try {
      cas = splitPem(data.caCrt).map((p) => new X509Certificate(p));
      if (cas.length === 0) return { action: 'new-ca', reason: 'the Secret has no CA certificate' };
      if (!cas[0]!.checkPrivateKey(createPrivateKey(data.caKey))) return { action: 'new-ca', reason: 'the CA key does not match the CA certificate' };
    } catch (e) {
      return { action: 'new-ca', reason: `the CA in the Secret cannot be read: ${(e as Error).message}` };
    }
    const ca = cas[0]!;
    if (Date.parse(ca.validTo) - t < this.lifetimes.caRenewBeforeMs) return { action: 'new-ca', reason: `the CA expires ${new Date(ca.validTo).toISOString()}` };
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(data.tlsCrt);
      createSecureContext({ cert: data.tlsCrt, key: data.tlsKey });
    } catch (e) {
      return { action: 'new-serving', reason: `the serving pair in the Secret cannot be used: ${(e as Error).message}` };
    }
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return { action: 'new-serving', reason: 'the serving certificate is not signed by the current CA' };
    if (Date.parse(leaf.validTo) - t < this.lifetimes.servingRenewBeforeMs) {
      return { action: 'new-serving', reason: `the serving certificate expires ${new Date(leaf.validTo).toISOString()}` };
    }
    const missing = this.opts.dnsNames.filter((n) => !coversName(leaf, n));
    if (missing.length > 0) return { action: 'new-serving', reason: `the serving certificate does not name ${missing.join(', ')}` };
    return { action: 'keep' };
  }

  private async issue(plan: Plan, old: CertData | undefined, now: Date): Promise<CertData> {
    let ca = old && plan.action === 'new-serving' ? { cert: splitPem(old.caCrt)[0]!, key: old.caKey } : undefined;
    let bundle: string[];
    if (ca) {
      const [current, ...previous] = splitPem(old!.caCrt);
      bundle = [current!, ...previous.filter((p) => stillValid(p, now))];
    } else {
      ca = await issueCa({ now, lifetimeMs: this.lifetimes.caMs });
      // Older CAs stay trusted until they expire: replicas may still serve certificates they signed.
      const previous = old ? safeSplit(old.caCrt).filter((p) => stillValid(p, now)) : [];
      bundle = [ca.cert, ...previous.slice(0, 2)];
    }
    const serving = await issueServing({ ca, dnsNames: this.opts.dnsNames, now, lifetimeMs: this.lifetimes.servingMs });
    return { caCrt: bundle.map((p) => p.trim() + '\n').join(''), caKey: ca.key, tlsCrt: serving.cert, tlsKey: serving.key };
  }

  private serve(data: CertData): void {
    const cert = Buffer.from(data.tlsCrt);
    const fingerprint = new X509Certificate(cert).fingerprint256;
    if (this.current?.fingerprint === fingerprint) return;
    this.current = { cert, key: Buffer.from(data.tlsKey), fingerprint };
    for (const l of this.listeners) l(this.current);
  }

  private async updateBundles(caBundlePem: string): Promise<void> {
    for (const target of this.opts.targets) {
      const outcome = await target.ensure(caBundlePem);
      if (outcome === 'missing') {
        if (!this.missingLogged.has(target.describe)) {
          this.opts.log.warn('self-managed TLS: webhook configuration not found; its caBundle will be set when it appears', { webhook: target.describe });
        }
        this.missingLogged.add(target.describe);
        continue;
      }
      this.missingLogged.delete(target.describe);
      if (outcome === 'updated') this.opts.log.info('self-managed TLS: caBundle updated', { webhook: target.describe });
    }
  }
}

export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => p + '\n') ?? [];
}

function safeSplit(bundle: string): string[] {
  return splitPem(bundle).filter((p) => {
    try {
      new X509Certificate(p);
      return true;
    } catch {
      return false;
    }
  });
}

function stillValid(pem: string, now: Date): boolean {
  return Date.parse(new X509Certificate(pem).validTo) > now.getTime();
}

function coversName(cert: X509Certificate, name: string): boolean {
  return /^[0-9.]+$/.test(name) || name.includes(':') ? cert.checkIP(name) !== undefined : cert.checkHost(name, { wildcards: false }) !== undefined;
}
