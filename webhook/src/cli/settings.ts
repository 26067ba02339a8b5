/**
 * Every setting trustgate reads, flags and environment variables alike, in one table: each
 * row is parsed, range-checked and documented here and nowhere else. The settings object is
 * built once at start-up; an invalid value refuses the start (exit 2) with a message naming
 * the setting, the value and an accepted example. This is the only module that reads
 * `process.env` (a test checks it); everything else gets its values passed down.
 *
 * Adding a setting: one row in SERVE_SETTINGS (and its field in ServeOptions); cross-setting
 * rules go in serveRules. (Over 400 lines on purpose: it is the one table of every setting,
 * and splitting the table would make a second place to look.)
 */
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_SERVER_LIMITS, DEFAULT_TOTAL_BYTES_IN_FLIGHT, DEFAULT_WORKER_MEMORY_MB, type ServerLimits } from '../notary/server-limits.js';
import { exemptionProblems } from '../policy/exemption.js';
// The caps alone: settings load on every start, --version included, and must stay light.
import { MAX_TARGETS_BYTES } from '../tuf/caps.js';
import { isLogLevel, LOG_LEVELS, type LogLevel } from '../server/log.js';
import { UsageError } from './usage.js';

/** The environment as read once at start-up. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The process's environment: called once, by main, and handed down from there. */
export function processEnvironment(): Env {
  return { ...process.env };
}

/** Invalid settings: every problem found, one per line, each naming setting, value and an example. */
export class SettingsError extends UsageError {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} settings are invalid:\n  ${problems.join('\n  ')}`);
    this.name = 'SettingsError';
  }
}

export interface ServeOptions {
  policyDir?: string;
  kubernetes: boolean;
  port: number;
  host: string;
  tlsCert?: string;
  tlsKey?: string;
  deadlineMs: number;
  allowUnmatched: boolean;
  /** Exemption patterns as given, each valid (policy/exemption.ts). */
  exempt: string[];
  stateFile?: string;
  logLevel: LogLevel;
  /** How long verified trust data is used before it is refreshed from the trust server. */
  refreshIntervalMs: number;
  /** Standalone: where credentials Secrets are mounted (`<dir>/<secretName>/{username,password}`). */
  secretsDir?: string;
  /** Cluster: the ConfigMap holding the high-water marks shared by all replicas. */
  stateConfigMap?: string;
  /** Cluster: trustgate's own namespace (its ConfigMap, and the Secrets of ClusterTrustPolicies). */
  podNamespace: string;
  /**
   * After SIGTERM: how long /readyz fails while admissions are still answered, before the
   * server closes. 0 by default (nothing routes to a lone process); the chart sets it.
   */
  drainMs: number;
  /** Self-managed TLS: CA and serving certificate kept in this Secret (of POD_NAMESPACE), renewed by the server. */
  tlsSecret?: string;
  /** DNS names (and IPs) of the serving certificate in self-managed mode. */
  tlsDnsNames: string[];
  /** Webhook configurations whose caBundle the server keeps current in self-managed mode. */
  mutatingWebhooks: string[];
  validatingWebhooks: string[];
  /** Loading trust data (see loadLimitsOf): verification workers and per-trust-server limits. */
  verifyWorkers: number;
  workerMemoryMb: number;
  maxTotalMibInFlight: number;
  clusterServerMaxLoads: number;
  clusterServerMaxMibInFlight: number;
  clusterServerMaxMetadataMib: number;
  namespacedServerMaxLoads: number;
  namespacedServerMaxMibInFlight: number;
  namespacedServerMaxMetadataMib: number;
  /** Also serve /metrics over plain HTTP on this port. */
  metricsPort?: number;
  /** Cluster: how often running Pods are re-verified (0: never). */
  auditIntervalMs: number;
  /** Trust data expiring within this window is reported (audit findings, Events) before it is refused. */
  expiryWarningMs: number;
  /** Cluster: this replica's name, for the audit Lease and as the Events' reportingInstance (default: the host name). */
  podName?: string;
  /** Cluster: the Lease through which one replica is chosen to run the audit. */
  auditLease: string;
}

/** What loading trust data may take, from the flags --verify-workers ... --namespaced-server-max-metadata-mib. */
export interface LoadLimitOptions {
  workers: number;
  workerMemoryMb: number;
  maxTotalBytesInFlight: number;
  cluster: ServerLimits;
  namespaced: ServerLimits;
}

const MiB = 1024 * 1024;

export function loadLimitsOf(o: ServeOptions): LoadLimitOptions {
  return {
    workers: o.verifyWorkers,
    workerMemoryMb: o.workerMemoryMb,
    maxTotalBytesInFlight: o.maxTotalMibInFlight * MiB,
    cluster: { maxConcurrentLoads: o.clusterServerMaxLoads, maxBytesInFlight: o.clusterServerMaxMibInFlight * MiB, maxMetadataBytes: o.clusterServerMaxMetadataMib * MiB },
    namespaced: { maxConcurrentLoads: o.namespacedServerMaxLoads, maxBytesInFlight: o.namespacedServerMaxMibInFlight * MiB, maxMetadataBytes: o.namespacedServerMaxMetadataMib * MiB },
  };
}

/** A value that does not parse: `reason` completes "<setting> <reason>, got <value>". */
class Invalid extends Error {}

interface Setting<K extends keyof ServeOptions = keyof ServeOptions> {
  key: K;
  /** `--name` on the command line. */
  flag?: string;
  /** Environment variable; an empty one counts as unset. */
  env?: string;
  /** Placeholder in the help text; absent for boolean flags. */
  value?: string;
  /** Raw default, as a user would write it (shown in the help). */
  default?: string;
  /** A value that is accepted, for error messages. */
  example?: string;
  multiple?: boolean;
  help: string;
  /** Raw text to value; throws Invalid. Absent: the text itself (booleans: true). */
  parse?: (raw: string) => ServeOptions[K] extends (infer E)[] ? E : ServeOptions[K];
}

function setting<K extends keyof ServeOptions>(s: Setting<K>): Setting {
  return s as unknown as Setting;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const nonEmpty = (raw: string): string => {
  if (raw === '') throw new Invalid('must not be empty');
  return raw;
};

/** Decimal seconds in [min, max] (min exclusive when `open`), to whole milliseconds. */
function seconds(min: number, max: number, open: boolean): (raw: string) => number {
  const range = open ? `(${min}, ${max}]` : `${min}-${max}`;
  return (raw) => {
    const n = Number(raw);
    if (!/^\d+(\.\d+)?$/.test(raw) || (open ? !(n > min) : !(n >= min)) || n > max) throw new Invalid(`must be seconds in ${range}`);
    return Math.round(n * 1000);
  };
}

/** Whole numbers in [min, max]. */
function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) throw new Invalid(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** The limits on loading trust data; the defaults keep peak memory inside the chart's 256Mi. */
function loadLimitSettings(): Setting[] {
  const c = DEFAULT_SERVER_LIMITS.cluster;
  const ns = DEFAULT_SERVER_LIMITS.namespaced;
  const row = (key: keyof ServeOptions, flag: string, def: number, min: number, max: number, help: string) =>
    setting({ key, flag, value: 'N', default: String(def), example: String(def), parse: integer(min, max) as never, help: `${help} (${min}-${max}).` });
  const maxMib = MAX_TARGETS_BYTES / MiB;
  return [
    row('verifyWorkers', 'verify-workers', 1, 1, 16, 'Worker threads that verify large trust data off the admission thread'),
    row('workerMemoryMb', 'worker-memory-mb', DEFAULT_WORKER_MEMORY_MB, 16, 4096, 'Heap limit (MB) of each verification worker; a load past it is refused and the worker replaced'),
    row('maxTotalMibInFlight', 'max-total-mib-in-flight', DEFAULT_TOTAL_BYTES_IN_FLIGHT / MiB, 1, 4096, 'MiB of trust data held by loads at once, over all trust servers'),
    row('clusterServerMaxLoads', 'cluster-server-max-loads', c.maxConcurrentLoads, 1, 1024, 'Loads at once from one trust server (a Notary server, or a TUF 1.0 repository by its metadata URL) named by ClusterTrustPolicies'),
    row('clusterServerMaxMibInFlight', 'cluster-server-max-mib-in-flight', c.maxBytesInFlight / MiB, 1, 4096, 'MiB held at once by loads from one such server'),
    row('clusterServerMaxMetadataMib', 'cluster-server-max-metadata-mib', c.maxMetadataBytes / MiB, 1, maxMib, 'Largest metadata file (MiB) accepted from one such server'),
    row('namespacedServerMaxLoads', 'namespaced-server-max-loads', ns.maxConcurrentLoads, 1, 1024, 'Loads at once from one trust server named only by TrustPolicies (a tenant)'),
    row('namespacedServerMaxMibInFlight', 'namespaced-server-max-mib-in-flight', ns.maxBytesInFlight / MiB, 1, 4096, 'MiB held at once by loads from one such server'),
    row('namespacedServerMaxMetadataMib', 'namespaced-server-max-metadata-mib', ns.maxMetadataBytes / MiB, 1, maxMib, 'Largest metadata file (MiB) accepted from one such server'),
  ];
}

export const SERVE_SETTINGS: readonly Setting[] = [
  setting({ key: 'policyDir', flag: 'policy-dir', value: 'DIR', example: '/etc/trustgate/policies', parse: nonEmpty,
    help: 'Read TrustPolicy / ClusterTrustPolicy manifests from this directory and watch it (standalone). Exactly one of --policy-dir and --kubernetes.' }),
  setting({ key: 'kubernetes', flag: 'kubernetes',
    help: 'Read policies from the cluster (list/watch) with the in-cluster service account, or KUBECONFIG.' }),
  setting({ key: 'port', flag: 'port', value: 'PORT', default: '8443', example: '8443',
    help: 'HTTPS port, 0-65535 (0: any free port).',
    parse: (raw) => {
      if (!/^\d+$/.test(raw) || Number(raw) > 65535) throw new Invalid('must be an integer 0-65535');
      return Number(raw);
    } }),
  setting({ key: 'host', flag: 'host', value: 'ADDRESS', default: '0.0.0.0', example: '127.0.0.1', parse: nonEmpty,
    help: 'Address to listen on.' }),
  setting({ key: 'tlsCert', flag: 'tls-cert', value: 'FILE', example: '/etc/trustgate/tls/tls.crt', parse: nonEmpty,
    help: 'Serving certificate (PEM), reloaded when it changes; with --tls-key. Without both, a self-signed certificate is made.' }),
  setting({ key: 'tlsKey', flag: 'tls-key', value: 'FILE', example: '/etc/trustgate/tls/tls.key', parse: nonEmpty,
    help: 'Private key of --tls-cert (PEM).' }),
  // The API server's webhook timeout is at most 30 s; a longer deadline could never apply.
  setting({ key: 'deadlineMs', flag: 'deadline', value: 'SECONDS', default: '8', example: '8', parse: seconds(0, 30, true),
    help: 'Every admission is answered within this many seconds, in (0, 30]; keep it below the webhook timeoutSeconds.' }),
  setting({ key: 'allowUnmatched', flag: 'allow-unmatched',
    help: 'Admit images no policy matches (default: deny them).' }),
  setting({ key: 'exempt', flag: 'exempt', value: 'PATTERN', multiple: true, example: 'registry.k8s.io/pause:3.9',
    help: "Admit images matching this pattern without verification; repeatable. Same rules as a policy's spec.images (literal registry); a reference with a digest is exempt only if the pattern names that digest (PATTERN@sha256:HEX).",
    parse: (raw) => {
      const problems = exemptionProblems(raw);
      if (problems.length > 0) throw new Invalid(`must be an image pattern as in a policy's spec.images: ${problems.join('; ')}`);
      return raw;
    } }),
  setting({ key: 'stateFile', flag: 'state-file', value: 'FILE', example: '/var/lib/trustgate/state.json', parse: nonEmpty,
    help: 'Keep the high-water marks (rollback protection) in this JSON file. Not used when TRUSTGATE_STATE_CONFIGMAP is set.' }),
  setting({ key: 'logLevel', flag: 'log-level', value: 'LEVEL', default: 'info', example: 'info',
    help: `One of ${LOG_LEVELS.join(', ')}.`,
    parse: (raw) => {
      if (!isLogLevel(raw)) throw new Invalid(`must be one of ${LOG_LEVELS.join(', ')}`);
      return raw;
    } }),
  setting({ key: 'metricsPort', flag: 'metrics-port', value: 'PORT', example: '8080',
    help: 'Also serve /metrics over plain HTTP on this port, 1-65535 (scrapers need no TLS; the chart sets it). Without it /metrics is only on the HTTPS port.',
    parse: (raw) => {
      if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) throw new Invalid('must be an integer 1-65535');
      return Number(raw);
    } }),
  setting({ key: 'auditIntervalMs', flag: 'audit-interval', value: 'SECONDS', default: '0', example: '3600', parse: seconds(0, 604800, false),
    help: 'With --kubernetes: every this many seconds one replica (a Lease) re-verifies the images of running Pods and reports what would be denied now, 0-604800 (0: no audit).' }),
  setting({ key: 'expiryWarningMs', flag: 'expiry-warning', value: 'SECONDS', default: '604800', example: '604800', parse: seconds(0, 31536000, false),
    help: 'Trust data expiring within this many seconds is reported ahead (audit findings, Events), 0-31536000.' }),
  setting({ key: 'drainMs', flag: 'drain-seconds', value: 'SECONDS', default: '0', example: '10', parse: seconds(0, 300, false),
    help: 'On SIGTERM, fail /readyz but keep answering admissions this many seconds (0-300) before closing, so traffic moves to other replicas first.' }),
  setting({ key: 'tlsSecret', flag: 'tls-secret', value: 'NAME', example: 'trustgate-tls',
    help: "With --kubernetes: keep a CA and serving certificate in this Secret of trustgate's namespace, renew them before expiry and keep the webhooks' caBundle current (self-managed TLS).",
    parse: (raw) => {
      if (raw.length > 253 || !DNS_SUBDOMAIN.test(raw)) throw new Invalid('must be a Secret name (lowercase DNS subdomain, at most 253 characters)');
      return raw;
    } }),
  setting({ key: 'tlsDnsNames', flag: 'tls-dns-name', value: 'NAME', multiple: true, example: 'trustgate.trustgate-system.svc', parse: nonEmpty,
    help: 'With --tls-secret: a DNS name (or IP) of the serving certificate, the Service name the API server calls; repeatable.' }),
  setting({ key: 'mutatingWebhooks', flag: 'mutating-webhook', value: 'NAME', multiple: true, example: 'trustgate', parse: nonEmpty,
    help: 'With --tls-secret: a MutatingWebhookConfiguration whose caBundle the server keeps current; repeatable.' }),
  setting({ key: 'validatingWebhooks', flag: 'validating-webhook', value: 'NAME', multiple: true, example: 'trustgate', parse: nonEmpty,
    help: 'With --tls-secret: a ValidatingWebhookConfiguration whose caBundle the server keeps current; repeatable.' }),
  ...loadLimitSettings(),
  setting({ key: 'refreshIntervalMs', env: 'TRUSTGATE_REFRESH_SECONDS', value: 'SECONDS', default: '60', example: '60', parse: seconds(0, 86400, false),
    help: 'Verified trust data is refreshed from the trust server once it is older than this many seconds, 0-86400 (0: on every admission). A revoked tag stays admitted until then.' }),
  setting({ key: 'secretsDir', env: 'TRUSTGATE_SECRETS_DIR', value: 'DIR', example: '/etc/trustgate/secrets',
    help: 'Standalone only: credentials named by policies are read from DIR/<secretName>/username and .../password. DIR must exist.',
    parse: (raw) => {
      let dir = false;
      try {
        dir = statSync(raw).isDirectory();
      } catch {
        // Reported below, the same for a missing path and a file.
      }
      if (!dir) throw new Invalid('must name an existing directory');
      return raw;
    } }),
  setting({ key: 'stateConfigMap', env: 'TRUSTGATE_STATE_CONFIGMAP', value: 'NAME', example: 'trustgate-state',
    help: "With --kubernetes: keep the high-water marks in this ConfigMap of trustgate's namespace, shared by all replicas (the chart sets it).",
    parse: (raw) => {
      if (raw.length > 253 || !DNS_SUBDOMAIN.test(raw)) throw new Invalid('must be a ConfigMap name (lowercase DNS subdomain, at most 253 characters)');
      return raw;
    } }),
  setting({ key: 'podNamespace', env: 'POD_NAMESPACE', value: 'NAMESPACE', default: 'trustgate', example: 'trustgate-system',
    help: "With --kubernetes: trustgate's own namespace, for its state ConfigMap and the credentials Secrets of ClusterTrustPolicies (the chart sets it).",
    parse: (raw) => {
      if (raw.length > 63 || !DNS_LABEL.test(raw)) throw new Invalid('must be a namespace name (lowercase DNS label, at most 63 characters)');
      return raw;
    } }),
  setting({ key: 'podName', env: 'POD_NAME', value: 'NAME', example: 'trustgate-6d5f9c7b8-x2x4q',
    help: "With --kubernetes: this replica's name, held in the audit Lease and named in Events (the chart sets it; default: the host name).",
    parse: (raw) => {
      if (raw.length > 253 || !DNS_SUBDOMAIN.test(raw)) throw new Invalid('must be a Pod name (lowercase DNS subdomain, at most 253 characters)');
      return raw;
    } }),
  setting({ key: 'auditLease', env: 'TRUSTGATE_AUDIT_LEASE', value: 'NAME', default: 'trustgate-audit', example: 'trustgate-audit',
    help: "With --audit-interval: the Lease (coordination.k8s.io) in trustgate's namespace through which one replica runs the audit (the chart sets it).",
    parse: (raw) => {
      if (raw.length > 253 || !DNS_SUBDOMAIN.test(raw)) throw new Invalid('must be a Lease name (lowercase DNS subdomain, at most 253 characters)');
      return raw;
    } }),
];

/** Rules between settings; each returns a problem or undefined. */
const serveRules: ReadonlyArray<(o: Partial<ServeOptions>) => string | undefined> = [
  (o) => ((o.policyDir !== undefined) === (o.kubernetes === true) ? 'give exactly one policy source: --policy-dir DIR or --kubernetes' : undefined),
  (o) => ((o.tlsCert === undefined) !== (o.tlsKey === undefined) ? '--tls-cert and --tls-key go together' : undefined),
  (o) =>
    o.stateConfigMap !== undefined && !o.kubernetes
      ? `TRUSTGATE_STATE_CONFIGMAP=${o.stateConfigMap} applies only with --kubernetes: standalone, use --state-file FILE (or unset it)`
      : undefined,
  (o) => (o.metricsPort !== undefined && o.metricsPort === o.port ? `--metrics-port ${o.metricsPort} is the HTTPS port: give another port` : undefined),
  (o) => {
    const selfManagedOnly = ([['tls-dns-name', o.tlsDnsNames], ['mutating-webhook', o.mutatingWebhooks], ['validating-webhook', o.validatingWebhooks]] as const).find(([, v]) => (v?.length ?? 0) > 0);
    return o.tlsSecret === undefined && selfManagedOnly ? `--${selfManagedOnly[0]} goes with --tls-secret` : undefined;
  },
  (o) => (o.tlsSecret !== undefined && !o.kubernetes ? '--tls-secret keeps the certificate in a Kubernetes Secret: it needs --kubernetes' : undefined),
  (o) => (o.tlsSecret !== undefined && o.tlsCert !== undefined ? 'give either --tls-secret or --tls-cert/--tls-key, not both' : undefined),
  (o) =>
    o.tlsSecret !== undefined && (o.tlsDnsNames?.length ?? 0) === 0
      ? '--tls-secret needs at least one --tls-dns-name (the Service DNS name the API server calls)'
      : undefined,
  (o) =>
    o.secretsDir !== undefined && o.kubernetes
      ? `TRUSTGATE_SECRETS_DIR=${o.secretsDir} applies only with --policy-dir: with --kubernetes, credentials come from Secrets (unset it)`
      : undefined,
];

/** Environment variables named like ours that no row reads: most likely a typo that would silently do nothing. */
function unknownEnv(env: Env): string[] {
  const known = new Set([...SERVE_SETTINGS.flatMap((s) => (s.env ? [s.env] : [])), ...CLI_ENV]);
  return Object.keys(env)
    .filter((name) => name.startsWith('TRUSTGATE_') && !known.has(name))
    .map((name) => `${name} is not a trustgate setting (known: ${[...known].filter((k) => k.startsWith('TRUSTGATE_')).join(', ')})`);
}

function describe(s: Setting): string {
  return s.flag ? `--${s.flag}` : s.env!;
}

function exampleOf(s: Setting): string {
  return s.flag ? `--${s.flag} ${s.example}` : `${s.env}=${s.example}`;
}

/** The settings of `trustgate serve` from its flags and the environment; throws SettingsError naming every problem. */
export function parseServeArgs(argv: string[], env: Env = {}): ServeOptions {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const s of SERVE_SETTINGS) if (s.flag) options[s.flag] = { type: s.value ? 'string' : 'boolean', ...(s.multiple ? { multiple: true } : {}) };
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  if (positionals.length > 0) throw new UsageError(`serve takes no positional arguments, got ${JSON.stringify(positionals[0])}`);

  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  const parseOne = (s: Setting, raw: string): unknown => {
    try {
      return s.parse ? s.parse(raw) : raw;
    } catch (e) {
      if (!(e instanceof Invalid)) throw e;
      problems.push(`${describe(s)} ${e.message}, got ${JSON.stringify(raw)} (e.g. ${exampleOf(s)})`);
      return undefined;
    }
  };
  for (const s of SERVE_SETTINGS) {
    const given = s.flag ? values[s.flag] : env[s.env!] === '' ? undefined : env[s.env!];
    if (typeof given === 'boolean') out[s.key] = given;
    else if (Array.isArray(given)) out[s.key] = given.map((raw) => parseOne(s, String(raw)));
    else if (given !== undefined) out[s.key] = parseOne(s, given);
    else if (s.default !== undefined) out[s.key] = parseOne(s, s.default);
    else if (s.multiple) out[s.key] = [];
    else if (!s.value) out[s.key] = false;
  }
  problems.push(...unknownEnv(env));
  if (problems.length === 0) for (const rule of serveRules) {
    const problem = rule(out as Partial<ServeOptions>);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) throw new SettingsError(problems);
  return out as unknown as ServeOptions;
}

/** `trustgate serve --help`: every flag and environment variable, from the table. */
export function serveHelp(): string {
  const line = (head: string, s: Setting) => {
    const extra = s.default !== undefined ? ` (default ${s.default})` : '';
    return `  ${head}\n      ${s.help}${extra}`;
  };
  const flags = SERVE_SETTINGS.filter((s) => s.flag).map((s) => line(`--${s.flag}${s.value ? ` ${s.value}` : ''}`, s));
  const envs = SERVE_SETTINGS.filter((s) => s.env).map((s) => line(`${s.env}=${s.value}`, s));
  return [
    'usage: trustgate serve --policy-dir DIR | --kubernetes [flags]',
    '',
    'Flags:',
    ...flags,
    '  -h, --help',
    '      Print this text.',
    '',
    'Environment (an empty variable counts as unset; any other TRUSTGATE_* variable is refused):',
    ...envs,
    '  KUBECONFIG',
    '      With --kubernetes outside a pod: the kubeconfig file (read by the Kubernetes client).',
    '',
    'An invalid setting refuses the start with exit code 2.',
    '',
    'Example:',
    '  trustgate serve --policy-dir ./policies --port 8443 --state-file /var/lib/trustgate/state.json',
  ].join('\n');
}

/** Environment of `verify` and `inspect`: the CLI has no Secrets, so credentials come from here, like the notary CLI's. */
const CLI_ENV = ['TRUSTGATE_USERNAME', 'TRUSTGATE_PASSWORD'] as const;

/** `verify --timeout SECONDS`: how long a check may take in all. */
export function cliTimeoutMs(raw: string): number {
  try {
    return seconds(0, 3600, true)(raw);
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    throw new SettingsError([`--timeout ${e.message}, got ${JSON.stringify(raw)} (e.g. --timeout 30)`]);
  }
}

export function cliCredentials(env: Env): { username: string; password: string } | undefined {
  const username = env['TRUSTGATE_USERNAME'] || undefined;
  const password = env['TRUSTGATE_PASSWORD'];
  if (username === undefined && !password) return undefined;
  if (username === undefined) throw new SettingsError(['TRUSTGATE_PASSWORD is set but TRUSTGATE_USERNAME is not: set both (e.g. TRUSTGATE_USERNAME=ci-reader) or neither']);
  if (password === undefined) throw new SettingsError([`TRUSTGATE_USERNAME=${username} is set but TRUSTGATE_PASSWORD is not: set both or neither`]);
  return { username, password };
}

export type StateStore = { kind: 'configmap'; namespace: string; name: string } | { kind: 'file'; path: string } | { kind: 'memory' };

/**
 * Where the high-water marks live: the shared ConfigMap when configured (the chart also passes
 * --state-file, on an emptyDir, which is then not opened), else the file, else memory only.
 */
export function stateStoreOf(o: ServeOptions): StateStore {
  if (o.kubernetes && o.stateConfigMap !== undefined) return { kind: 'configmap', namespace: o.podNamespace, name: o.stateConfigMap };
  if (o.stateFile !== undefined) return { kind: 'file', path: o.stateFile };
  return { kind: 'memory' };
}
