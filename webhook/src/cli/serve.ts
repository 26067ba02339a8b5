// `trustgate serve`: flags in, a running webhook out. Where policies and verdicts come
// from is injected (deps.createVerifier), so this file only wires HTTP, admission and logs.
import { parseArgs } from 'node:util';
import { createAdmissionHandler } from '../admission/handler.js';
import type { Logger } from '../admission/types.js';
import { createJsonLogger, isLogLevel, LOG_LEVELS, type LogLevel } from '../server/log.js';
import { Metrics } from '../server/metrics.js';
import { startServer, type ManagedTls, type RunningServer } from '../server/start.js';
import type { ImageVerifier } from '../verify/types.js';
import { UsageError } from './usage.js';

export interface ServeOptions {
  policyDir?: string;
  kubernetes: boolean;
  port: number;
  host: string;
  tlsCert?: string;
  tlsKey?: string;
  deadlineMs: number;
  allowUnmatched: boolean;
  exempt: string[];
  stateFile?: string;
  logLevel: LogLevel;
  /**
   * After SIGTERM: how long /readyz fails while admissions are still answered, before the
   * server closes. 0 by default (nothing routes to a lone process); the chart sets it.
   */
  drainMs: number;
  /** Self-managed TLS: CA and serving certificate kept in this Secret (of POD_NAMESPACE), renewed by the server. */
  tlsSecret?: string;
  /** DNS names (and IPs) of the serving certificate in self-managed mode. */
  tlsDnsNames?: string[];
  /** Webhook configurations whose caBundle the server keeps current in self-managed mode. */
  mutatingWebhooks?: string[];
  validatingWebhooks?: string[];
}

export function parseServeArgs(argv: string[]): ServeOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'policy-dir': { type: 'string' },
      kubernetes: { type: 'boolean', default: false },
      port: { type: 'string', default: '8443' },
      host: { type: 'string', default: '0.0.0.0' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      deadline: { type: 'string', default: '8' },
      'allow-unmatched': { type: 'boolean', default: false },
      exempt: { type: 'string', multiple: true, default: [] },
      'state-file': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'drain-seconds': { type: 'string', default: '0' },
      'tls-secret': { type: 'string' },
      'tls-dns-name': { type: 'string', multiple: true, default: [] },
      'mutating-webhook': { type: 'string', multiple: true, default: [] },
      'validating-webhook': { type: 'string', multiple: true, default: [] },
    },
  });
  if (positionals.length > 0) throw new UsageError(`serve takes no positional arguments, got ${JSON.stringify(positionals[0])}`);
  const policyDir = values['policy-dir'];
  if (policyDir === '') throw new UsageError('--policy-dir must not be empty');
  if ((policyDir !== undefined) === values.kubernetes) throw new UsageError('give exactly one policy source: --policy-dir DIR or --kubernetes');
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');

  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) throw new UsageError(`--port must be an integer 0-65535, got ${JSON.stringify(values.port)}`);
  const deadline = Number(values.deadline);
  // The API server's webhook timeout is at most 30 s; a longer deadline could never apply.
  if (!/^\d+(\.\d+)?$/.test(values.deadline) || !(deadline > 0) || deadline > 30) {
    throw new UsageError(`--deadline must be seconds in (0, 30], got ${JSON.stringify(values.deadline)}`);
  }
  const logLevel = values['log-level'];
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  for (const p of values.exempt) if (p.trim() === '') throw new UsageError('--exempt needs a non-empty pattern');
  const drain = Number(values['drain-seconds']);
  if (!/^\d+(\.\d+)?$/.test(values['drain-seconds']) || drain > 300) {
    throw new UsageError(`--drain-seconds must be seconds in [0, 300], got ${JSON.stringify(values['drain-seconds'])}`);
  }
  const tlsSecret = values['tls-secret'];
  const selfManagedOnly = (['tls-dns-name', 'mutating-webhook', 'validating-webhook'] as const).filter((f) => values[f].length > 0);
  if (tlsSecret === undefined && selfManagedOnly.length > 0) throw new UsageError(`--${selfManagedOnly[0]} goes with --tls-secret`);
  if (tlsSecret !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(tlsSecret) || tlsSecret.length > 253) throw new UsageError(`--tls-secret must be a Secret name, got ${JSON.stringify(tlsSecret)}`);
    if (!values.kubernetes) throw new UsageError('--tls-secret keeps the certificate in a Kubernetes Secret: it needs --kubernetes');
    if (values['tls-cert'] !== undefined) throw new UsageError('give either --tls-secret or --tls-cert/--tls-key, not both');
    if (values['tls-dns-name'].length === 0) throw new UsageError('--tls-secret needs at least one --tls-dns-name (the Service DNS name the API server calls)');
  }

  const out: ServeOptions = {
    kubernetes: values.kubernetes,
    port,
    host: values.host,
    deadlineMs: Math.round(deadline * 1000),
    allowUnmatched: values['allow-unmatched'],
    exempt: values.exempt,
    logLevel,
    drainMs: Math.round(drain * 1000),
  };
  if (tlsSecret !== undefined) {
    out.tlsSecret = tlsSecret;
    out.tlsDnsNames = values['tls-dns-name'];
    out.mutatingWebhooks = values['mutating-webhook'];
    out.validatingWebhooks = values['validating-webhook'];
  }
  if (policyDir !== undefined) out.policyDir = policyDir;
  if (values['tls-cert'] !== undefined) out.tlsCert = values['tls-cert'];
  if (values['tls-key'] !== undefined) out.tlsKey = values['tls-key'];
  if (values['state-file'] !== undefined) out.stateFile = values['state-file'];
  return out;
}

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
}

export interface ServeHandle {
  port: number;
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
  const options = parseServeArgs(argv);
  const log = deps.log ?? createJsonLogger(options.logLevel);
  const print = deps.print ?? ((l: string) => process.stdout.write(l + '\n'));
  const metrics = new Metrics();
  log.info('starting', {
    policySource: options.kubernetes ? 'kubernetes' : options.policyDir,
    deadlineMs: options.deadlineMs,
    allowUnmatched: options.allowUnmatched,
    exempt: options.exempt,
    stateFile: options.stateFile,
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
  print(
    server.selfSigned
      ? `trustgate serving on https://${options.host}:${server.port} with a self-signed certificate ${server.certFile} (SHA-256 ${server.fingerprint()})`
      : `trustgate serving on https://${options.host}:${server.port} with ${server.certFile} (SHA-256 ${server.fingerprint()})`,
  );
  return {
    port: server.port,
    server,
    metrics,
    async close() {
      managed?.close();
      await server.close();
      await wiring.close?.();
    },
    async shutdown() {
      log.info('shutting down', { drainMs: options.drainMs });
      server.startDraining();
      await new Promise((resolve) => setTimeout(resolve, options.drainMs));
      managed?.close();
      // A request that arrived at the end of the drain still gets its whole deadline.
      await server.close(options.deadlineMs + 1000);
      await wiring.close?.();
      log.info('stopped');
    },
  };
}
