import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { parseReference, formatReference } from '../images/reference.js';
import { DirSource } from '../notary/dir-source.js';
import { HttpSource } from '../notary/http-source.js';
import type { MetadataSource } from '../notary/source.js';
import { loadRepository } from '../notary/updater.js';
import { parsePolicyYaml, type TrustPolicy } from '../policy/model.js';
import { pinFromPem, TufError } from '../tuf/index.js';
import { VerificationEngine } from '../verify/engine.js';
import { expiryForecast, roleExpiries } from '../verify/expiry.js';
import type { ImageVerdict } from '../verify/types.js';
import { cliCredentials, cliTimeoutMs, type Env } from './settings.js';
import { UsageError } from './usage.js';

const OPTIONS = {
  policy: { type: 'string' },
  'metadata-dir': { type: 'string' },
  at: { type: 'string' },
  output: { type: 'string', default: 'text' },
  timeout: { type: 'string', default: '30' },
} as const;

interface Common {
  image: string;
  policies: TrustPolicy[];
  clock: () => Date;
  sourceFor: (policy: TrustPolicy, gun: string) => MetadataSource;
  output: 'text' | 'json';
  timeoutMs: number;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function common(argv: string[], env: Env): Common {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (positionals.length !== 1) throw usage('exactly one IMAGE is required');
  if (!values.policy) throw usage('--policy FILE is required');
  const policies = parsePolicyYaml(readFileSync(values.policy, 'utf8'), values.policy);
  if (policies.length === 0) throw usage(`${values.policy} holds no policy`);
  let clock = () => new Date();
  if (values.at !== undefined) {
    const at = new Date(values.at);
    if (!RFC3339.test(values.at) || Number.isNaN(at.getTime())) throw usage(`--at "${values.at}" is not an RFC 3339 time`);
    clock = () => at;
  }
  const output = values.output;
  if (output !== 'text' && output !== 'json') throw usage('--output must be text or json');
  const timeoutMs = cliTimeoutMs(values.timeout);
  const dir = values['metadata-dir'];
  const credentials = cliCredentials(env);
  const sourceFor = (policy: TrustPolicy, gun: string): MetadataSource =>
    dir !== undefined
      ? new DirSource({ dir, gun })
      : new HttpSource({
          url: policy.spec.trustServer.url,
          gun,
          ...(policy.spec.trustServer.caBundle ? { caBundle: policy.spec.trustServer.caBundle } : {}),
          ...(credentials ? { credentials } : {}),
        });
  return { image: positionals[0]!, policies, clock, sourceFor, output, timeoutMs };
}

function usage(msg: string): Error {
  return new UsageError(msg);
}

export async function verifyCommand(argv: string[], env: Env): Promise<number> {
  const c = common(argv, env);
  const engine = new VerificationEngine({
    // `spec.images` is not consulted here: the file's policies are the ones to check.
    policies: { policiesFor: () => c.policies },
    sourceFor: c.sourceFor,
    clock: c.clock,
  });
  const verdict = await engine.verifyImage(c.image, undefined, AbortSignal.timeout(c.timeoutMs));
  // The CLI is a check: any failing policy fails it, whatever the policy's mode.
  const ok = verdict.failures.length === 0 && verdict.pinned !== undefined;
  if (c.output === 'json') process.stdout.write(JSON.stringify(verdict) + '\n');
  if (ok) {
    if (c.output === 'text') {
      process.stderr.write(`verified ${verdict.reference} under ${verdict.passed.map((p) => `${p.kind}/${p.name}`).join(', ')}\n`);
    }
    process.stdout.write(verdict.pinned + '\n');
    return 0;
  }
  process.stderr.write(oneLine(verdict) + '\n');
  return 1;
}

function oneLine(v: ImageVerdict): string {
  if (v.failures.length === 0) return `${v.image}: not verified`;
  return v.failures
    .map((f) => `${v.image}: ${f.policy.kind}/${f.policy.name}${f.role ? ` role ${f.role}` : ''}${f.server ? ` at ${f.server}` : ''}: ${f.reason}`)
    .join(' | ')
    .replace(/\s*\n\s*/g, ' ');
}

export async function inspectCommand(argv: string[], env: Env): Promise<number> {
  const c = common(argv, env);
  const ref = parseReference(c.image);
  const policy = c.policies[0]!;
  const source = c.sourceFor(policy, ref.name);
  let repo;
  try {
    repo = await loadRepository(source, {
      pin: pinFromPem(policy.spec.root.keys, policy.spec.root.threshold),
      now: c.clock(),
      signal: AbortSignal.timeout(c.timeoutMs),
    });
  } catch (e) {
    const where = e instanceof TufError ? `role ${e.role} at ${source.server}` : source.server;
    process.stderr.write(`${formatReference(ref)}: ${where}: ${(e as Error).message}\n`);
    return 1;
  }
  const now = c.clock();
  const root = repo.parts.root.meta;
  const roles = repo.roleNames().map((name) => {
    const listed = repo.listRole(name, now);
    return listed instanceof TufError
      ? { role: name, error: listed.message }
      : {
          role: name,
          expires: listed[0]?.expires ?? (name === 'targets' ? repo.parts.targets.meta.expiresText : repo.parts.delegations.get(name)?.meta.expiresText),
          signers: repo.role(name, now) instanceof TufError ? [] : (repo.role(name, now) as { signers: string[] }).signers,
          targets: listed.map((t) => ({ name: t.name, digest: t.digest, length: t.length })),
        };
  });
  for (const [name, err] of repo.parts.skipped) roles.push({ role: name, error: err.message });
  const report = {
    name: ref.name,
    server: source.server,
    expires: repo.expires.toISOString(),
    forecast: roleExpiries(repo).map((e) => ({ role: e.role, expires: e.expires.toISOString() })),
    roles,
    administrativeKeys: {
      root: root.roles.root.keyids,
      repository: root.roles.targets.keyids,
      snapshot: root.roles.snapshot.keyids,
      timestamp: root.roles.timestamp.keyids,
    },
    versions: {
      root: root.version,
      timestamp: repo.parts.timestamp.meta.version,
      snapshot: repo.parts.snapshot.meta.version,
      targets: repo.parts.targets.meta.version,
    },
  };
  if (c.output === 'json') {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  const lines = [`Signatures for ${report.name} (trust server ${report.server}, metadata valid until ${report.expires})`, ''];
  lines.push('Expiry forecast (soonest first):', ...expiryForecast(repo, now).map((l) => `  ${l}`), '');
  for (const r of report.roles) {
    if ('error' in r) {
      lines.push(`Role ${r.role}: NOT TRUSTED: ${r.error}`, '');
      continue;
    }
    lines.push(`Role ${r.role} (expires ${r.expires ?? '-'}; signers ${r.signers.join(', ') || '-'})`);
    if (r.targets.length === 0) lines.push('  (no signed tags)');
    for (const t of r.targets) lines.push(`  ${t.name.padEnd(24)} ${t.digest}  ${t.length} B`);
    lines.push('');
  }
  lines.push('Administrative keys:');
  lines.push(`  Root:       ${report.administrativeKeys.root.join(', ')}`);
  lines.push(`  Repository: ${report.administrativeKeys.repository.join(', ')}`);
  lines.push(`  Snapshot:   ${report.administrativeKeys.snapshot.join(', ')}`);
  lines.push(`  Timestamp:  ${report.administrativeKeys.timestamp.join(', ')}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
