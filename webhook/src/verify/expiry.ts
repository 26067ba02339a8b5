/**
 * When verified trust data stops being trusted, role by role: what the expiry gauge exports
 * and what `trustgate inspect` forecasts. A delegation is only as long-lived as its
 * ancestors, so its forecast is the earliest expiry on its way up to targets.
 */
import type { TrustedRepository } from '../tuf/index.js';
import type { SpecRepository } from '../tufrepo/updater.js';

export interface RoleExpiry {
  role: string;
  expires: Date;
}

/** root, timestamp, snapshot, targets and every verified delegation, each with the time it stops being trusted. */
export function roleExpiries(repo: TrustedRepository): RoleExpiry[] {
  const { root, timestamp, snapshot, targets, delegations } = repo.parts;
  const out: RoleExpiry[] = [
    { role: 'root', expires: root.meta.expires },
    { role: 'timestamp', expires: timestamp.meta.expires },
    { role: 'snapshot', expires: snapshot.meta.expires },
    { role: 'targets', expires: targets.meta.expires },
  ];
  for (const [name, d] of delegations) {
    let t = d.meta.expires.getTime();
    for (let up = delegations.get(d.parent); up; up = delegations.get(up.parent)) t = Math.min(t, up.meta.expires.getTime());
    out.push({ role: name, expires: new Date(Math.min(t, targets.meta.expires.getTime())) });
  }
  return out;
}

/**
 * The same for a TUF 1.0 repository: the top-level roles and every delegated role verified so
 * far (lookups load them as they need them), a delegation bounded by targets' expiry.
 */
export function specRoleExpiries(repo: SpecRepository): RoleExpiry[] {
  const t = repo.trusted;
  const top = t.targets();
  const out: RoleExpiry[] = [{ role: 'root', expires: t.root.expires }];
  if (t.timestamp) out.push({ role: 'timestamp', expires: t.timestamp.expires });
  if (t.snapshot) out.push({ role: 'snapshot', expires: t.snapshot.expires });
  if (top) out.push({ role: 'targets', expires: top.expires });
  for (const [role, meta] of t.loadedTargets()) {
    if (role === 'targets') continue;
    out.push({ role, expires: new Date(Math.min(meta.expires.getTime(), top?.expires.getTime() ?? Infinity)) });
  }
  return out;
}

/** "targets/releases expires in 3 days", "timestamp expired 2 hours ago". */
export function describeExpiry(e: RoleExpiry, now: Date): string {
  const left = e.expires.getTime() - now.getTime();
  return left > 0 ? `${e.role} expires in ${span(left)}` : `${e.role} expired ${span(-left)} ago`;
}

/** One line per role, soonest first: what an operator reads to know which signer must act next. */
export function expiryForecast(repo: TrustedRepository, now: Date): string[] {
  return roleExpiries(repo)
    .sort((a, b) => a.expires.getTime() - b.expires.getTime() || a.role.localeCompare(b.role))
    .map((e) => describeExpiry(e, now));
}

const UNITS: [number, string][] = [
  [365 * 86_400_000, 'year'],
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
];

/** The largest whole unit, rounded down: "3 days" for 3 days 20 hours, so nobody is told they have more time than they do. */
function span(ms: number): string {
  for (const [size, unit] of UNITS) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${unit}${n === 1 ? '' : 's'}`;
  }
  return 'less than a minute';
}
