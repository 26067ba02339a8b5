// `trustgate serve`: flags in, a running webhook out. Where policies and verdicts come
// from is injected (deps.createVerifier), so this file only wires HTTP, admission and logs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAdmissionHandler } from '../admission/handler.js';
import { packageRoot } from '../policy/crds.js';
import { startMetricsServer, type MetricsServer } from '../server/metrics-server.js';
import type { Logger } from '../admission/types.js';
import { createJsonLogger } from '../server/log.js';
import { Metrics } from '../server/metrics.js';
import { startServer, type ManagedTls, type RunningServer } from '../server/start.js';
import type { ImageVerifier } from '../verify/types.js';
import { parseServeArgs, stateStoreOf, type Env, type ServeOptions } from './settings.js';

export { parseServeArgs, type ServeOptions } from './settings.js';

export interface VerifierWiring {
  verifier: ImageVerifier;
  /** True once policies are loaded. */
  ready: () => boolean;
  close?: () => void | Promise<void>;
}

export interface ServeDeps {
  /** Builds the engine and its policy store from the options; receives the metrics for the engine to report into. */
  createVerifier(options: ServeOptions, ctx: { log: Logger; metrics: Metrics }): VerifierWiring | Promise<VerifierWiring>;
  /** Self-managed TLS (--tls-secret): the pair from the Secret, kept current; called before the server listens. */
  createManagedTls?(options: ServeOptions, ctx: { log: Logger }): Promise<ManagedTls & { close(): void }>;
  log?: Logger;
  /** Where the human-readable start line goes (default stdout). */
  print?: (line: string) => void;
  /** The environment settings are read from (cli/settings.ts); default none, so in-process callers are hermetic. */
  env?: Env;
}

export interface ServeHandle {
  port: number;
  /** The plain-HTTP metrics port, when --metrics-port is given. */
  metricsPort?: number;
  server: RunningServer;
  metrics: Metrics;
  /** Closes now; requests in flight get up to 2 s. */
  close(): Promise<void>;
  /**
   * What SIGTERM does: /readyz fails at once while admissions are still answered for the
   * drain period (endpoints and the API server's connections move to other replicas), then
   * the server closes, letting requests in flight finish within their deadline.
   */
  shutdown(): Promise<void>;
}

export async function runServe(argv: string[], deps: ServeDeps): Promise<ServeHandle> {
  const options = parseServeArgs(argv, deps.env ?? {});
  const log = deps.log ?? createJsonLogger(options.logLevel);
  const print = deps.print ?? ((l: string) => process.stdout.write(l + '\n'));
  const metrics = new Metrics({ version: trustgateVersion() });
  log.info('starting', {
    policySource: options.kubernetes ? 'kubernetes' : options.policyDir,
    deadlineMs: options.deadlineMs,
    allowUnmatched: options.allowUnmatched,
    exempt: options.exempt,
    state: stateStoreOf(options),
    refreshSeconds: options.refreshIntervalMs / 1000,
  });
  if (options.exempt.length > 0) log.warn('images matching these patterns are admitted without verification', { exempt: options.exempt });
  if (options.allowUnmatched) log.warn('images no policy matches are admitted (--allow-unmatched)');

  const wiring = await deps.createVerifier(options, { log, metrics });
  const common = { verifier: wiring.verifier, deadlineMs: options.deadlineMs, log, metrics };
  let server: RunningServer;
  let managed: (ManagedTls & { close(): void }) | undefined;
  try {
    if (options.tlsSecret !== undefined) {
      if (!deps.createManagedTls) throw new Error('--tls-secret is not available in this build of serve');
      managed = await deps.createManagedTls(options, { log });
    }
    server = await startServer({
      ...(managed ? { managedTls: managed } : {}),
      port: options.port,
      host: options.host,
      ...(options.tlsCert !== undefined ? { tlsCertFile: options.tlsCert } : {}),
      ...(options.tlsKey !== undefined ? { tlsKeyFile: options.tlsKey } : {}),
      handlers: { mutate: createAdmissionHandler({ ...common, mutate: true }), validate: createAdmissionHandler({ ...common, mutate: false }) },
      ready: wiring.ready,
      log,
      metrics,
      selfCheck: true,
    });
  } catch (e) {
    managed?.close();
    await wiring.close?.();
    throw e;
  }
  let metricsServer: MetricsServer | undefined;
  if (options.metricsPort !== undefined) {
    try {
      metricsServer = await startMetricsServer({ port: options.metricsPort, host: options.host, metrics, log });
    } catch (e) {
      managed?.close();
      await server.close();
      await wiring.close?.();
      throw new Error(`--metrics-port ${options.metricsPort} cannot be used: ${(e as Error).message}`);
    }
  }
  print(
    server.selfSigned
      ? `trustgate serving on https://${options.host}:${server.port} with a self-signed certificate ${server.certFile} (SHA-256 ${server.fingerprint()})`
      : `trustgate serving on https://${options.host}:${server.port} with ${server.certFile} (SHA-256 ${server.fingerprint()})`,
  );
  return {
    port: server.port,
    ...(metricsServer ? { metricsPort: metricsServer.port } : {}),
    server,
    metrics,
    async close() {
      await metricsServer?.close();
      managed?.close();
      await server.close();
      await wiring.close?.();
    },
    async shutdown() {
      log.info('shutting down', { drainMs: options.drainMs });
      server.startDraining();
      await new Promise((resolve) => setTimeout(resolve, options.drainMs));
      managed?.close();
      // Scrapes keep working through the drain; the metrics port goes with the rest.
      await metricsServer?.close();
      // A request that arrived at the end of the drain still gets its whole deadline.
      await server.close(options.deadlineMs + 1000);
      await wiring.close?.();
      log.info('stopped');
    },
  };
}

/** The version in trustgate's package.json, for trustgate_build_info; 'unknown' if it cannot be read. */
export function trustgateVersion(): string {
  try {
    const v: unknown = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}
