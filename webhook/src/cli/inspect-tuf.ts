/**
 * `trustgate inspect` for protocol-tuf policies: what a TUF 1.0 repository signs for one
 * image repository (every role the specification's search may reach for its tags, with the
 * tags each lists and when each expires), verified the same way the webhook verifies it.
 */
import type { ImageReference } from '../images/reference.js';
import { policyId, type TrustPolicy } from '../policy/model.js';
import { pinFromPem } from '../tuf/index.js';
import { SpecHttpSource } from '../tufrepo/http-source.js';
import type { SpecSource } from '../tufrepo/source.js';
import { refreshSpecRepository } from '../tufrepo/updater.js';
import { describeExpiry, specRoleExpiries } from '../verify/expiry.js';

export interface TufReport {
  name: string;
  protocol: 'tuf';
  server: string;
  policies: string[];
  expires: string;
  /** When each verified role stops being trusted, soonest first. */
  forecast: Array<{ role: string; expires: string }>;
  roles: Array<{ role: string; delegatedBy: string; expires: string; targets: Array<{ name: string; digest: string; length: number }> }>;
  administrativeKeys: { root: readonly string[]; targets: readonly string[]; snapshot: readonly string[]; timestamp: readonly string[] };
  versions: { root: number; timestamp: number; snapshot: number };
}

export async function tufReport(ref: ImageReference, policies: TrustPolicy[], source: SpecSource | undefined, now: Date, signal: AbortSignal): Promise<TufReport> {
  const policy = policies[0]!;
  const { url, caBundle } = policy.spec.trustServer;
  const src = source ?? new SpecHttpSource({ url, ...(caBundle !== undefined ? { caBundle } : {}) });
  try {
    const { trustedRoot, keys, threshold } = policy.spec.root;
    const repo = await refreshSpecRepository(src, {
      bootstrap: trustedRoot !== undefined ? { trustedRoot: Buffer.from(trustedRoot, 'utf8') } : { pin: pinFromPem(keys, threshold) },
      now,
      clock: () => now,
      signal,
    });
    const roles = await repo.rolesOfRepository(ref.name, signal);
    const t = repo.trusted;
    return {
      name: ref.name,
      protocol: 'tuf',
      server: src.server,
      policies: policies.map(policyId),
      expires: repo.expires.toISOString(),
      forecast: specRoleExpiries(repo)
        .sort((a, b) => a.expires.getTime() - b.expires.getTime() || a.role.localeCompare(b.role))
        .map((e) => ({ role: e.role, expires: e.expires.toISOString() })),
      roles: roles.map((r) => ({
        role: r.role,
        delegatedBy: r.parent,
        expires: r.expires,
        targets: r.targets.map((x) => ({ name: x.path.slice(ref.name.length + 1), digest: `sha256:${x.hashes['sha256'] ?? '?'}`, length: x.length })),
      })),
      administrativeKeys: { root: t.root.roles.root.keyids, targets: t.root.roles.targets.keyids, snapshot: t.root.roles.snapshot.keyids, timestamp: t.root.roles.timestamp.keyids },
      versions: { root: t.root.version, timestamp: t.timestamp!.version, snapshot: t.snapshot!.version },
    };
  } finally {
    if (source === undefined) (src as SpecHttpSource).close();
  }
}

export function tufReportText(r: TufReport, now: Date): string {
  const lines = [`Signatures for ${r.name} (TUF 1.0 repository ${r.server}, metadata valid until ${r.expires}; policies ${r.policies.join(', ')})`, ''];
  lines.push('Expiry forecast (soonest first):', ...r.forecast.map((f) => `  ${describeExpiry({ role: f.role, expires: new Date(f.expires) }, now)}`), '');
  for (const role of r.roles) {
    lines.push(`Role ${role.role} (delegated by ${role.delegatedBy}; expires ${role.expires})`);
    if (role.targets.length === 0) lines.push('  (no signed tags of this repository)');
    for (const t of role.targets) lines.push(`  ${t.name.padEnd(24)} ${t.digest}  ${t.length} B`);
    lines.push('');
  }
  lines.push('Administrative keys:');
  lines.push(`  Root:      ${r.administrativeKeys.root.join(', ')}`);
  lines.push(`  Targets:   ${r.administrativeKeys.targets.join(', ')}`);
  lines.push(`  Snapshot:  ${r.administrativeKeys.snapshot.join(', ')}`);
  lines.push(`  Timestamp: ${r.administrativeKeys.timestamp.join(', ')}`);
  return lines.join('\n') + '\n';
}
