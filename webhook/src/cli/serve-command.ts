/**
 * `trustgate serve` with the real parts: a policy store fed by a directory or the cluster,
 * the verification engine with its cache and high-water marks, trust-server sources that
 * share connections and tokens per server.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { httpGet } from '../notary/http-get.js';
import { HttpSource } from '../notary/http-source.js';
import { TrustServerLimits } from '../notary/server-limits.js';
import { LoadWorkers } from '../verify/load-workers.js';
import { TokenCache } from '../notary/token-auth.js';
import { PolicyDirSource } from '../policy/dir-source.js';
import { PolicyStates } from '../policy/policy-states.js';
import { compileExemptions } from '../policy/exemption.js';
import type { TrustPolicy } from '../policy/model.js';
import { PolicyStore } from '../policy/store.js';
import { VerificationEngine } from '../verify/engine.js';
import { RepositoryCache } from '../verify/repository-cache.js';
import { ConfigMapVersionStore } from '../kube/configmap-version-store.js';
import type { SecretReader } from '../kube/credential-secrets.js';
import { FileVersionStore, MemoryVersionStore, type VersionStore } from '../verify/version-store.js';
import { runServe, type ServeOptions, type VerifierWiring } from './serve.js';
import { loadLimitsOf, serveHelp, stateStoreOf, type Env } from './settings.js';
import type { Logger } from '../admission/types.js';
import type { Metrics, PolicyCount } from '../server/metrics.js';

// Sources are cheap to make (agent and tokens are shared per server); kept only so a
// repository's Bearer challenge is remembered. A few hundred cover the busy repositories.
const MAX_SOURCES = 256;
/** Longest a start waits on a trust server that does not answer before reporting ready anyway. */
const CONNECT_TIMEOUT_MS = 2000;
const PRECONNECT_SOCKETS = 4;

export async function serveCommand(argv: string[], env: Env): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(serveHelp() + '\n');
    return 0;
  }
  // Listening for the signals before starting: one that arrives right after the start line
  // must still close in order (release the Lease, flush Events), not kill outright.
  // SIGTERM is how Kubernetes stops a pod: drain first. SIGINT is a person at a terminal: stop now.
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const handle = await runServe(argv, { createVerifier, createManagedTls, env });
  if ((await signal) === 'SIGTERM') await handle.shutdown();
  else await handle.close();
  return 0;
}

async function createManagedTls(options: ServeOptions, ctx: { log: Logger }) {
  const { startSelfManagedTls } = await import('../kube/self-managed-tls.js');
  return startSelfManagedTls({
    secretName: options.tlsSecret!,
    namespace: options.podNamespace,
    dnsNames: options.tlsDnsNames ?? [],
    mutatingWebhooks: options.mutatingWebhooks ?? [],
    validatingWebhooks: options.validatingWebhooks ?? [],
    log: ctx.log,
  });
}

export async function createVerifier(options: ServeOptions, ctx: { log: Logger; metrics: Metrics }): Promise<VerifierWiring> {
  const store = new PolicyStore();
  let stopSource: () => void | Promise<void>;
  let readSecret: SecretReader;
  const state = stateStoreOf(options);
  let versions: VersionStore = state.kind === 'file' ? openStateFile(state.path) : new MemoryVersionStore();
  let events: import('../kube/events.js').EventRecorder | undefined;
  let kube: import('../kube/cluster.js').KubeConfig | undefined;
  ctx.metrics.countPolicies(() => policyCounts(store));
  if (options.kubernetes) {
    // Loaded here only: check, verify and policy commands never pay for the Kubernetes client.
    const { connectToCluster } = await import('../kube/cluster.js');
    const { KubernetesPolicySource } = await import('../kube/policy-source.js');
    const { KubernetesStatusWriter } = await import('../kube/policy-status-writer.js');
    const { kubernetesSecrets } = await import('../kube/credential-secrets.js');
    const { kubeConfig, core } = connectToCluster();
    kube = kubeConfig;
    const statusWriter = new KubernetesStatusWriter({ kubeConfig, log: eventLogger(ctx.log, 'policy status') });
    const states = new PolicyStates(statusWriter);
    // Before the source starts, so the first list's rejections are not missed.
    const { EventRecorder } = await import('../kube/events.js');
    const { recordPolicyTransition } = await import('../kube/policy-events.js');
    events = new EventRecorder({ kubeConfig, instance: options.podName ?? hostname(), log: ctx.log });
    const recorder = events;
    states.onTransition((t) => recordPolicyTransition(recorder, t));
    const source = new KubernetesPolicySource({ kubeConfig, store, statusWriter: states, log: eventLogger(ctx.log, 'policy source') });
    void source.start();
    stopSource = () => {
      source.stop();
      statusWriter.close();
    };
    readSecret = kubernetesSecrets(core, options.podNamespace);
    if (state.kind === 'configmap') {
      // Shared by all replicas, so a restart or a new replica cannot be rolled back.
      const shared = new ConfigMapVersionStore({
        api: core,
        namespace: state.namespace,
        name: state.name,
        log: (msg, fields) => ctx.log.warn(msg, fields),
      });
      await shared.start();
      const stopPolicies = stopSource;
      stopSource = async () => {
        await stopPolicies();
        shared.stop();
        await shared.flushed();
      };
      versions = shared;
    }
  } else {
    const source = new PolicyDirSource(options.policyDir!, store, eventLogger(ctx.log, 'policy source'));
    await source.start();
    stopSource = () => source.stop();
    readSecret = directorySecrets(options.secretsDir);
  }
  store.onChange(() => ctx.log.info('policies changed', { policies: store.all().length, invalid: store.invalid().length }));

  const sources = new SourcePool(readSecret);
  // Ready only once the trust servers the policies name have connections open: the first
  // admission after a start then costs what one in a running replica does.
  // From a directory the policies are loaded by now, so this happens before the server
  // listens; from the cluster they arrive later, and readiness waits for it.
  let connected = false;
  const connect = async () => {
    const t0 = performance.now();
    await sources.connect(store.all());
    connected = true;
    ctx.log.info('connected to the trust servers', { servers: sources.serverCount, ms: Math.round(performance.now() - t0) });
  };
  if (options.kubernetes) void store.whenReady().then(connect);
  else await connect();
  const loadLimits = loadLimitsOf(options);
  const engine = new VerificationEngine({
    policies: store,
    sourceFor: (policy, gun) => sources.get(policy, gun),
    cache: new RepositoryCache({ refreshIntervalMs: options.refreshIntervalMs }),
    versions,
    allowUnmatched: options.allowUnmatched,
    isExempt: compileExemptions(options.exempt),
    metrics: ctx.metrics,
    limits: new TrustServerLimits({ cluster: loadLimits.cluster, namespaced: loadLimits.namespaced, maxTotalBytesInFlight: loadLimits.maxTotalBytesInFlight }),
    workers: new LoadWorkers({ size: loadLimits.workers, maxOldGenerationSizeMb: loadLimits.workerMemoryMb }),
  });
  const operators = kube ? await startOperatorViews(kube, engine, events!, options, ctx) : undefined;
  return {
    verifier: operators?.verifier ?? engine,
    ready: () => store.ready && connected,
    close: async () => {
      await operators?.close();
      await stopSource();
      sources.close();
      await engine.close();
    },
  };
}

/**
 * In the cluster: Events on policies (state changes, trust server unreachable), and with
 * --audit-interval the audit of running Pods on the replica holding the Lease.
 */
async function startOperatorViews(
  kubeConfig: import('../kube/cluster.js').KubeConfig,
  engine: VerificationEngine,
  events: import('../kube/events.js').EventRecorder,
  options: ServeOptions,
  ctx: { log: Logger; metrics: Metrics },
) {
  const { withTrustServerEvents } = await import('../kube/policy-events.js');
  const identity = options.podName ?? hostname();
  const flush = setInterval(() => void events.flush(), 60_000);
  flush.unref();
  let stopAudit = async () => {};
  if (options.auditIntervalMs > 0) {
    const { LeaderElector } = await import('../kube/lease.js');
    const { AuditLoop } = await import('../kube/audit-loop.js');
    const elector = new LeaderElector({ kubeConfig, namespace: options.podNamespace, name: options.auditLease, identity, log: ctx.log });
    elector.start();
    const loop = new AuditLoop({ kubeConfig, verifier: engine, intervalMs: options.auditIntervalMs, expiryWarningMs: options.expiryWarningMs, isLeader: () => elector.isLeader(), metrics: ctx.metrics, events, log: ctx.log });
    loop.start();
    stopAudit = async () => {
      await loop.stop();
      await elector.stop();
    };
  }
  return {
    verifier: withTrustServerEvents(engine, events),
    close: async () => {
      clearInterval(flush);
      await stopAudit();
      await events.flush();
    },
  };
}

function policyCounts(store: PolicyStore): PolicyCount[] {
  const valid = store.all();
  const invalid = store.invalid();
  return (['ClusterTrustPolicy', 'TrustPolicy'] as const).flatMap((kind) => [
    { kind, state: 'valid' as const, count: valid.filter((p) => p.kind === kind).length },
    { kind, state: 'invalid' as const, count: invalid.filter((p) => p.kind === kind).length },
  ]);
}

/**
 * One HttpSource per (server, CA, credentials, repository), kept so tokens and the last
 * challenge carry over between refreshes; one connection pool and token cache per server.
 */
export class SourcePool {
  private readonly sources = new Map<string, HttpSource>();
  private readonly servers = new Map<string, { agent: https.Agent; tokens: TokenCache }>();

  constructor(private readonly readSecret: SecretReader) {}

  async get(policy: TrustPolicy, gun: string): Promise<HttpSource> {
    const { url, caBundle, credentials } = policy.spec.trustServer;
    const creds = credentials ? await this.readSecret(policy, credentials.secretName) : undefined;
    const serverKey = `${url}|${hash(caBundle ?? '')}`;
    const key = `${serverKey}|${creds ? hash(`${creds.username}:${creds.password}`) : ''}|${gun}`;
    const existing = this.sources.get(key);
    if (existing) return existing;
    const server = this.server(serverKey);
    const source = new HttpSource({
      url,
      gun,
      ...(caBundle ? { caBundle } : {}),
      ...(creds ? { credentials: creds } : {}),
      ...(url.startsWith('https:') ? { agent: server.agent } : {}),
      tokenCache: server.tokens,
    });
    this.sources.set(key, source);
    if (this.sources.size > MAX_SOURCES) this.sources.delete(this.sources.keys().next().value as string);
    return source;
  }

  close(): void {
    for (const s of this.servers.values()) s.agent.destroy();
  }

  get serverCount(): number {
    return this.servers.size;
  }

  /**
   * Opens a few pooled connections to each HTTPS trust server (TLS handshake done, CA bundle
   * parsed); best effort, bounded in time: a server that is down is reported by the
   * admissions that need it, not here.
   */
  async connect(policies: TrustPolicy[]): Promise<void> {
    const seen = new Set<string>();
    await Promise.all(
      policies.map(async (policy) => {
        const { url, caBundle } = policy.spec.trustServer;
        const key = `${url}|${hash(caBundle ?? '')}`;
        if (!url.startsWith('https:') || seen.has(key)) return;
        seen.add(key);
        const server = this.server(key);
        // Several at once: a cold repository's delegations are fetched in parallel.
        await Promise.all(
          Array.from({ length: PRECONNECT_SOCKETS }, () =>
            httpGet({
              url: new URL('/v2/', url),
              agent: server.agent,
              ...(caBundle ? { ca: caBundle } : {}),
              signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
              maxBytes: 64 * 1024,
            }).catch(() => undefined),
          ),
        );
      }),
    );
  }

  private server(serverKey: string): { agent: https.Agent; tokens: TokenCache } {
    let server = this.servers.get(serverKey);
    if (!server) {
      server = { agent: new https.Agent({ keepAlive: true, maxSockets: 32, scheduling: 'lifo', timeout: 30_000 }), tokens: new TokenCache() };
      this.servers.set(serverKey, server);
    }
    return server;
  }
}

/** Marks from an earlier run; a file that cannot be read or parsed refuses the start, naming it. */
function openStateFile(path: string): FileVersionStore {
  try {
    return new FileVersionStore(path);
  } catch (e) {
    throw new Error(`--state-file ${path} cannot be used: ${(e as Error).message}`);
  }
}

function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/** Standalone mode: `<dir>/<secretName>/{username,password}`, the layout of a mounted Secret. */
function directorySecrets(dir: string | undefined): SecretReader {
  return async (policy, name) => {
    if (!dir) throw new Error(`policy ${policy.name} names credentials secret "${name}", but TRUSTGATE_SECRETS_DIR is not set`);
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new Error(`credentials secret name "${name}" is not a valid name`);
    const read = (f: string) => readFile(join(dir, name, f), 'utf8').then((s) => s.trim());
    return { username: await read('username'), password: await read('password') };
  };
}

/**
 * Policy sources report events with their own severity; a rejected policy must still show
 * under --log-level warn, so the level travels with the event instead of being fixed here.
 */
function eventLogger(log: Logger, msg: string): (event: object) => void {
  return (event) => {
    const { level, ...fields } = event as { level?: unknown } & Record<string, unknown>;
    if (level === 'error') log.error(msg, fields);
    else if (level === 'warn') log.warn(msg, fields);
    else if (level === 'debug') log.debug(msg, fields);
    else log.info(msg, fields);
  };
}
