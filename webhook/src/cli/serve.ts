// `trustgate serve`: flags in, a running webhook out. Where policies and verdicts come
// from is injected (deps.createVerifier), so this file only wires HTTP, admission and logs.
import { parseArgs } from 'node:util';
import { createAdmissionHandler } from '../admission/handler.js';
import type { Logger } from '../admission/types.js';
import { createJsonLogger, isLogLevel, LOG_LEVELS, type LogLevel } from '../server/log.js';
import { Metrics } from '../server/metrics.js';
import { startServer, type RunningServer } from '../server/start.js';
import type { ImageVerifier } from '../verify/types.js';
import { DEFAULT_WORKER_MEMORY_MB } from '../verify/load-workers.js';
import { DEFAULT_SERVER_LIMITS, DEFAULT_TOTAL_BYTES_IN_FLIGHT, type ServerLimits } from '../notary/server-limits.js';
import { MAX_TARGETS_BYTES } from '../tuf/index.js';
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
  loadLimits: LoadLimitOptions;
}

/** What loading trust data may take (flags --verify-workers ... --namespaced-server-max-metadata-mib). */
export interface LoadLimitOptions {
  workers: number;
  workerMemoryMb: number;
  maxTotalBytesInFlight: number;
  cluster: ServerLimits;
  namespaced: ServerLimits;
}

const MiB = 1024 * 1024;
/** Flag -> [default, minimum, maximum]; the defaults keep peak memory inside the chart's 256Mi. */
const LOAD_LIMIT_FLAGS = {
  'verify-workers': [1, 1, 16],
  'worker-memory-mb': [DEFAULT_WORKER_MEMORY_MB, 16, 4096],
  'max-total-mib-in-flight': [DEFAULT_TOTAL_BYTES_IN_FLIGHT / MiB, 1, 4096],
  'cluster-server-max-loads': [DEFAULT_SERVER_LIMITS.cluster.maxConcurrentLoads, 1, 1024],
  'cluster-server-max-mib-in-flight': [DEFAULT_SERVER_LIMITS.cluster.maxBytesInFlight / MiB, 1, 4096],
  'cluster-server-max-metadata-mib': [DEFAULT_SERVER_LIMITS.cluster.maxMetadataBytes / MiB, 1, MAX_TARGETS_BYTES / MiB],
  'namespaced-server-max-loads': [DEFAULT_SERVER_LIMITS.namespaced.maxConcurrentLoads, 1, 1024],
  'namespaced-server-max-mib-in-flight': [DEFAULT_SERVER_LIMITS.namespaced.maxBytesInFlight / MiB, 1, 4096],
  'namespaced-server-max-metadata-mib': [DEFAULT_SERVER_LIMITS.namespaced.maxMetadataBytes / MiB, 1, MAX_TARGETS_BYTES / MiB],
} as const satisfies Record<string, readonly [number, number, number]>;
type LoadLimitFlag = keyof typeof LOAD_LIMIT_FLAGS;

function parseLoadLimits(values: Record<string, unknown>): LoadLimitOptions {
  const n = (flag: LoadLimitFlag): number => {
    const [def, min, max] = LOAD_LIMIT_FLAGS[flag];
    const raw = values[flag];
    if (raw === undefined) return def;
    const v = Number(raw);
    if (typeof raw !== 'string' || !/^\d+$/.test(raw) || v < min || v > max) {
      throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return v;
  };
  return {
    workers: n('verify-workers'),
    workerMemoryMb: n('worker-memory-mb'),
    maxTotalBytesInFlight: n('max-total-mib-in-flight') * MiB,
    cluster: {
      maxConcurrentLoads: n('cluster-server-max-loads'),
      maxBytesInFlight: n('cluster-server-max-mib-in-flight') * MiB,
      maxMetadataBytes: n('cluster-server-max-metadata-mib') * MiB,
    },
    namespaced: {
      maxConcurrentLoads: n('namespaced-server-max-loads'),
      maxBytesInFlight: n('namespaced-server-max-mib-in-flight') * MiB,
      maxMetadataBytes: n('namespaced-server-max-metadata-mib') * MiB,
    },
  };
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
      ...(Object.fromEntries(Object.keys(LOAD_LIMIT_FLAGS).map((f) => [f, { type: 'string' }])) as Record<LoadLimitFlag, { type: 'string' }>),
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

  const out: ServeOptions = {
    kubernetes: values.kubernetes,
    port,
    host: values.host,
    deadlineMs: Math.round(deadline * 1000),
    allowUnmatched: values['allow-unmatched'],
    exempt: values.exempt,
    logLevel,
    loadLimits: parseLoadLimits(values),
  };
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
  log?: Logger;
  /** Where the human-readable start line goes (default stdout). */
  print?: (line: string) => void;
}

export interface ServeHandle {
  port: number;
  server: RunningServer;
  metrics: Metrics;
  close(): Promise<void>;
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
  try {
    server = await startServer({
      port: options.port,
      host: options.host,
      ...(options.tlsCert !== undefined ? { tlsCertFile: options.tlsCert } : {}),
      ...(options.tlsKey !== undefined ? { tlsKeyFile: options.tlsKey } : {}),
      handlers: { mutate: createAdmissionHandler({ ...common, mutate: true }), validate: createAdmissionHandler({ ...common, mutate: false }) },
      ready: wiring.ready,
      log,
      metrics,
    });
  } catch (e) {
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
      await server.close();
      await wiring.close?.();
    },
  };
}
