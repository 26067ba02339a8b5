// Starting the HTTPS server: certificates (given and hot-reloaded, or self-signed), the
// app, and a close() that really lets go of the port.
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AdmissionHandler } from '../admission/handler.js';
import { silentLogger, type Logger } from '../admission/types.js';
import { createApp } from './app.js';
import { Metrics } from './metrics.js';
import { CertificateReloader, generateSelfSigned, readPair, TLS_SETTINGS } from './tls.js';

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
  close(): Promise<void>;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const log = opts.log ?? silentLogger;
  const host = opts.host ?? '0.0.0.0';
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
  const app = createApp({
    handlers: opts.handlers,
    ready: opts.ready,
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

  const reloader = new CertificateReloader(server, certFile, keyFile, pair, log, opts.tlsPollMs);
  if (!selfSignedDir) reloader.start();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
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
    close() {
      closing ??= (async () => {
        reloader.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // In-flight reviews had their chance; the API server retries on another replica.
          setTimeout(() => server.closeAllConnections(), 2000).unref();
        });
        if (selfSignedDir) await rm(selfSignedDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
