// Starting the HTTPS server: certificates (given and hot-reloaded, or self-signed), the
// app, and a close() that really lets go of the port.
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AdmissionHandler } from '../admission/handler.js';
import { silentLogger, type Logger } from '../admission/types.js';
import { createApp } from './app.js';
import { Metrics } from './metrics.js';
import { selfCheck } from './warm-up.js';
import { CertificateReloader, generateSelfSigned, readPair, TLS_SETTINGS, type KeyPair } from './tls.js';

export interface StartServerOptions {
  port: number;
  host?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  handlers: { mutate: AdmissionHandler; validate: AdmissionHandler };
  ready: () => boolean;
  log?: Logger;
  metrics?: Metrics;
  bodyLimitBytes?: number;
  /** How often certificate files are re-read even without a watch event. */
  tlsPollMs?: number;
  /** Extra DNS names / IPs for a self-signed certificate (e.g. the Service's DNS name). */
  selfSignedNames?: string[];
  /** A pair kept current elsewhere (the self-managed Secret): served, and swapped in when it changes. */
  managedTls?: ManagedTls;
  /** Before listening, admit a built-in signed image end to end (server/warm-up.ts); a failure refuses to start. */
  selfCheck?: boolean;
}

export interface ManagedTls {
  /** Where the pair comes from, for logs (e.g. "secret trustgate/trustgate-tls"). */
  origin: string;
  pair: KeyPair;
  onChange(listener: (pair: KeyPair) => void): void;
}

export interface RunningServer {
  port: number;
  host: string;
  certFile: string;
  keyFile: string;
  /** SHA-256 fingerprint of the certificate being served now. */
  fingerprint(): string;
  selfSigned: boolean;
  /** Re-reads the certificate files now; true when a new pair went into service. */
  reloadTls(): Promise<boolean>;
  /** From now on /readyz fails and admission answers close their connection; admissions are still answered. */
  startDraining(): void;
  readonly draining: boolean;
  /**
   * Stops accepting connections and waits for the requests in flight; connections still busy
   * after graceMs (default 2 s) are cut, and the API server retries on another replica.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const log = opts.log ?? silentLogger;
  const host = opts.host ?? '0.0.0.0';
  if (opts.managedTls) return startWithPair(opts, log, opts.managedTls);
  if ((opts.tlsCertFile === undefined) !== (opts.tlsKeyFile === undefined)) {
    throw new Error('--tls-cert and --tls-key go together: give both or neither');
  }
  let certFile: string;
  let keyFile: string;
  let selfSignedDir: string | undefined;
  if (opts.tlsCertFile !== undefined && opts.tlsKeyFile !== undefined) {
    certFile = opts.tlsCertFile;
    keyFile = opts.tlsKeyFile;
  } else {
    const made = await generateSelfSigned(opts.selfSignedNames);
    ({ certFile, keyFile } = made);
    selfSignedDir = made.dir;
    log.info('generated a self-signed serving certificate', { certFile, keyFile, fingerprint: made.fingerprint });
  }

  const pair = await readPair(certFile, keyFile);
  if (opts.selfCheck) {
    try {
      await runSelfCheck(pair, log);
    } catch (e) {
      if (selfSignedDir) await rm(selfSignedDir, { recursive: true, force: true });
      throw e;
    }
  }
  const { server, drain } = createHttpsServer(opts, log, pair);
  const reloader = new CertificateReloader(server, certFile, keyFile, pair, log, opts.tlsPollMs);
  if (!selfSignedDir) reloader.start();

  try {
    await listen(server, opts.port, host);
  } catch (e) {
    reloader.stop();
    if (selfSignedDir) await rm(selfSignedDir, { recursive: true, force: true });
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  log.info('serving', { host, port, certFile, fingerprint: pair.fingerprint });

  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    certFile,
    keyFile,
    selfSigned: selfSignedDir !== undefined,
    fingerprint: () => reloader.fingerprint,
    reloadTls: () => reloader.check(),
    startDraining: () => drain.start(),
    get draining() {
      return drain.on;
    },
    close(graceMs = 2000) {
      closing ??= (async () => {
        reloader.stop();
        await closeGracefully(server, graceMs);
        if (selfSignedDir) await rm(selfSignedDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

async function startWithPair(opts: StartServerOptions, log: Logger, managed: ManagedTls): Promise<RunningServer> {
  let current = managed.pair;
  if (opts.selfCheck) await runSelfCheck(current, log);
  const { server, drain } = createHttpsServer(opts, log, current);
  let stopped = false;
  managed.onChange((pair) => {
    if (stopped || pair.fingerprint === current.fingerprint) return;
    try {
      server.setSecureContext({ ...TLS_SETTINGS, cert: pair.cert, key: pair.key });
    } catch (e) {
      log.warn('new serving certificate refused; keeping the current one', { origin: managed.origin, reason: (e as Error).message });
      return;
    }
    current = pair;
    log.info('serving certificate reloaded', { origin: managed.origin, fingerprint: pair.fingerprint });
  });
  await listen(server, opts.port, opts.host ?? '0.0.0.0');
  const port = (server.address() as AddressInfo).port;
  log.info('serving', { host: opts.host ?? '0.0.0.0', port, tls: managed.origin, fingerprint: current.fingerprint });
  let closing: Promise<void> | undefined;
  return {
    port,
    host: opts.host ?? '0.0.0.0',
    certFile: managed.origin,
    keyFile: managed.origin,
    selfSigned: false,
    fingerprint: () => current.fingerprint,
    reloadTls: async () => false,
    startDraining: () => drain.start(),
    get draining() {
      return drain.on;
    },
    close(graceMs = 2000) {
      stopped = true;
      closing ??= closeGracefully(server, graceMs);
      return closing;
    },
  };
}

async function runSelfCheck(pair: KeyPair, log: Logger): Promise<void> {
  const t0 = performance.now();
  await selfCheck(pair);
  log.info('self-check passed: a built-in signed image was admitted and pinned', { ms: Math.round(performance.now() - t0) });
}

function createHttpsServer(opts: StartServerOptions, log: Logger, pair: KeyPair): { server: Server; drain: { on: boolean; start(): void } } {
  const drain = {
    on: false,
    start() {
      if (!this.on) log.info('draining: /readyz fails from now on; admissions are still answered');
      this.on = true;
    },
  };
  const app = createApp({
    handlers: opts.handlers,
    ready: opts.ready,
    draining: () => drain.on,
    log,
    metrics: opts.metrics ?? new Metrics(),
    ...(opts.bodyLimitBytes !== undefined ? { bodyLimitBytes: opts.bodyLimitBytes } : {}),
  });
  const server: Server = createServer({ ...TLS_SETTINGS, cert: pair.cert, key: pair.key }, app);
  // Longer than the API server's idle connection reuse, so it is the client that closes.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 60_000;
  server.on('tlsClientError', (e) => log.debug('TLS handshake failed', { error: e.message }));
  return { server, drain };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Idle connections go at once; busy ones finish their request (the server answers it with Connection: close). */
function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), graceMs).unref();
  });
}
