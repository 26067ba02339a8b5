/**
 * `trustgate verify IMAGE` and `trustgate inspect IMAGE`: one image under the policies of
 * some files, with the webhook's engine and its matching rules (spec.images; all matching
 * policies apply).
 */
import { describeFailure } from '../admission/report.js';
import { parseReference, formatReference } from '../images/reference.js';
import { loadRepository } from '../notary/updater.js';
import { policyId, type TrustPolicy } from '../policy/model.js';
import { pinFromPem, TufError } from '../tuf/index.js';
import { VerificationEngine } from '../verify/engine.js';
import { TrustServerLimits } from '../notary/server-limits.js';
import { describeExpiry, roleExpiries } from '../verify/expiry.js';
import type { ImageVerdict } from '../verify/types.js';
import { commandSpec, parseCommand } from './commands.js';
import { InputError, parseAt, parseOutput } from './inputs.js';
import { fileLookup, loadPolicyFiles } from './policy-files.js';
import { cliTimeoutMs, type Env } from './settings.js';
import { cliSourceFor, tufSource } from './trust-sources.js';
import { tufReport, tufReportText, type TufReport } from './inspect-tuf.js';
import { SpecDirSource } from '../tufrepo/dir-source.js';

function tufSourceOf(metadataDir: string | undefined): SpecDirSource | undefined {
  return metadataDir !== undefined ? new SpecDirSource(metadataDir) : undefined;
}
import { UsageError } from './usage.js';

interface Common {
  image: string;
  policies: TrustPolicy[];
  files: string[];
  namespace: string | undefined;
  ignoreImageMatch: boolean;
  clock: () => Date;
  metadataDir: string | undefined;
  output: 'text' | 'json';
  timeoutMs: number;
  env: Env;
}

function common(command: 'verify' | 'inspect', argv: string[], env: Env): Common {
  const { values, positionals } = parseCommand(commandSpec(command)!, argv);
  if (positionals.length !== 1) throw new UsageError(`${command} takes exactly one IMAGE, got ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  const files = (values['policy'] as string[] | undefined) ?? [];
  if (files.length === 0) throw new UsageError(`${command} needs --policy FILE (e.g. trustgate ${command} ${positionals[0]} --policy policy.yaml)`);
  const output = parseOutput(values['output']);
  const timeoutMs = cliTimeoutMs(values['timeout'] as string);
  const at = values['at'] === undefined ? undefined : parseAt(values['at'] as string);
  const { policies } = loadPolicyFiles(files, { requireNamespace: false });
  return {
    image: positionals[0]!,
    policies,
    files,
    namespace: values['namespace'] as string | undefined,
    ignoreImageMatch: values['ignore-image-match'] === true,
    clock: at ? () => at : () => new Date(),
    metadataDir: values['metadata-dir'] as string | undefined,
    output,
    timeoutMs,
    env,
  };
}

/** Why no policy applies, with what would make one apply. */
function unmatched(c: Common, reference: string): string {
  const scope = c.namespace !== undefined ? ` in namespace ${c.namespace}` : '';
  const patterns = [...new Set(c.policies.flatMap((p) => p.spec.images))].join(', ');
  return (
    `${c.image}: no policy in ${c.files.join(', ')} matches ${reference}${scope} (their spec.images: ${patterns}), ` +
    'so the webhook would deny it: add a matching pattern to spec.images, or pass --ignore-image-match to apply every policy anyway'
  );
}

export async function verifyCommand(argv: string[], env: Env): Promise<number> {
  const c = common('verify', argv, env);
  const engine = new VerificationEngine({
    policies: fileLookup(c.policies, { ...(c.namespace !== undefined ? { namespace: c.namespace } : {}), ignoreImageMatch: c.ignoreImageMatch }),
    sourceFor: cliSourceFor({ ...(c.metadataDir !== undefined ? { metadataDir: c.metadataDir } : {}) }, env),
    ...tufSource(c.metadataDir),
    clock: c.clock,
    // One image for the person at the terminal: no other admissions to keep answering.
    workers: false,
    limits: TrustServerLimits.none(),
  });
  const verdict = await engine.verifyImage(c.image, c.namespace, AbortSignal.timeout(c.timeoutMs));
  // The CLI is a check: any failing policy fails it, whatever the policy's mode.
  const ok = verdict.failures.length === 0 && verdict.pinned !== undefined;
  const reason = ok ? undefined : oneLine(c, verdict);
  if (c.output === 'json') {
    process.stdout.write(JSON.stringify({ verified: ok, ...verdict, ...(reason ? { reason } : {}) }, null, 2) + '\n');
  } else if (ok) {
    process.stderr.write(`verified ${verdict.reference} under ${verdict.passed.map((p) => `${p.kind}/${p.name}`).join(', ')}\n`);
    process.stdout.write(verdict.pinned + '\n');
  }
  if (ok) return 0;
  process.stderr.write(reason + '\n');
  return 1;
}

function oneLine(c: Common, v: ImageVerdict): string {
  if (v.failures.some((f) => f.code === 'no-policy')) return unmatched(c, v.reference);
  if (v.failures.length === 0) return `${v.image}: not verified`;
  return `${v.image}: ${v.failures.map(describeFailure).join('; ')}`.replace(/\s*\n\s*/g, ' ');
}

export async function inspectCommand(argv: string[], env: Env): Promise<number> {
  const c = common('inspect', argv, env);
  let ref;
  try {
    ref = parseReference(c.image);
  } catch (e) {
    throw new InputError(`${c.image}: ${(e as Error).message}`);
  }
  const reference = formatReference(ref);
  const applying = fileLookup(c.policies, { ...(c.namespace !== undefined ? { namespace: c.namespace } : {}), ignoreImageMatch: c.ignoreImageMatch }).policiesFor(reference, c.namespace);
  if (applying.length === 0) {
    process.stderr.write(unmatched(c, reference) + '\n');
    return 1;
  }
  const sourceFor = cliSourceFor({ ...(c.metadataDir !== undefined ? { metadataDir: c.metadataDir } : {}) }, env);
  // Policies that read the same server with the same root keys see the same trust data: one report for them.
  const groups = new Map<string, TrustPolicy[]>();
  for (const p of applying) {
    const root = p.spec.root.trustedRoot ?? [...p.spec.root.keys].sort().join('|');
    const key = `${p.spec.trustServer.protocol ?? 'notary'}|${p.spec.trustServer.url}|${root}|${p.spec.root.threshold}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const reports: Array<Report | TufReport> = [];
  let failed = false;
  for (const policies of groups.values()) {
    const policy = policies[0]!;
    if (policy.spec.trustServer.protocol === 'tuf') {
      const tufSource = tufSourceOf(c.metadataDir);
      try {
        reports.push(await tufReport(ref, policies, tufSource, c.clock(), AbortSignal.timeout(c.timeoutMs)));
      } catch (e) {
        failed = true;
        const where = e instanceof TufError ? `role ${e.role} at ${tufSource?.server ?? policy.spec.trustServer.url}` : tufSource?.server ?? policy.spec.trustServer.url;
        process.stderr.write(`${reference}: ${policies.map(policyId).join(', ')}: ${where}: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}\n`);
      }
      continue;
    }
    const source = sourceFor(policy, ref.name);
    try {
      const repo = await loadRepository(source, {
        pin: pinFromPem(policy.spec.root.keys, policy.spec.root.threshold),
        now: c.clock(),
        signal: AbortSignal.timeout(c.timeoutMs),
      });
      reports.push(report(ref.name, source.server, policies, repo, c.clock()));
    } catch (e) {
      failed = true;
      const where = e instanceof TufError ? `role ${e.role} at ${source.server}` : source.server;
      process.stderr.write(`${reference}: ${policies.map(policyId).join(', ')}: ${where}: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}\n`);
    }
  }
  if (c.output === 'json') {
    // One document: the report itself in the common case of one trust source.
    if (reports.length > 0) process.stdout.write(JSON.stringify(reports.length === 1 ? reports[0] : { name: ref.name, reports }, null, 2) + '\n');
  } else {
    process.stdout.write(reports.map((r) => ('protocol' in r ? tufReportText(r, c.clock()) : text(r, c.clock()))).join('\n'));
  }
  return failed ? 1 : 0;
}

type Repo = Awaited<ReturnType<typeof loadRepository>>;
type Report = ReturnType<typeof report>;

function report(name: string, server: string, policies: TrustPolicy[], repo: Repo, now: Date) {
  const root = repo.parts.root.meta;
  const roles = repo.roleNames().map((role) => {
    const verified = repo.role(role, now);
    if (verified instanceof TufError) return { role, error: verified.message };
    const listed = repo.listRole(role, now);
    if (listed instanceof TufError) return { role, error: listed.message };
    return {
      role,
      expires: verified.meta.expiresText,
      signers: verified.signers,
      targets: listed.map((t) => ({ name: t.name, digest: t.digest, length: t.length })),
    };
  });
  for (const [role, err] of repo.parts.skipped) roles.push({ role, error: err.message });
  return {
    name,
    server,
    policies: policies.map(policyId),
    expires: repo.expires.toISOString(),
    // When each role stops being trusted (a delegation counts its parents), soonest first.
    forecast: roleExpiries(repo)
      .sort((a, b) => a.expires.getTime() - b.expires.getTime() || a.role.localeCompare(b.role))
      .map((e) => ({ role: e.role, expires: e.expires.toISOString() })),
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
}

function text(r: Report, now: Date): string {
  const lines = [`Signatures for ${r.name} (trust server ${r.server}, metadata valid until ${r.expires}; policies ${r.policies.join(', ')})`, ''];
  lines.push('Expiry forecast (soonest first):', ...r.forecast.map((f) => `  ${describeExpiry({ role: f.role, expires: new Date(f.expires) }, now)}`), '');
  for (const role of r.roles) {
    if ('error' in role) {
      lines.push(`Role ${role.role}: NOT TRUSTED: ${role.error}`, '');
      continue;
    }
    lines.push(`Role ${role.role} (expires ${role.expires ?? '-'}; signers ${role.signers.join(', ') || '-'})`);
    if (role.targets.length === 0) lines.push('  (no signed tags)');
    for (const t of role.targets) lines.push(`  ${t.name.padEnd(24)} ${t.digest}  ${t.length} B`);
    lines.push('');
  }
  lines.push('Administrative keys:');
  lines.push(`  Root:       ${r.administrativeKeys.root.join(', ')}`);
  lines.push(`  Repository: ${r.administrativeKeys.repository.join(', ')}`);
  lines.push(`  Snapshot:   ${r.administrativeKeys.snapshot.join(', ')}`);
  lines.push(`  Timestamp:  ${r.administrativeKeys.timestamp.join(', ')}`);
  return lines.join('\n') + '\n';
}

