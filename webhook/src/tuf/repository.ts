/**
 * Lookups in the Notary dialect's verified trust data: which role signs which target, under
 * the paths its delegators allow (delegation.ts), re-checked for expiry at every lookup.
 */
import { delegatedKeys, isDelegatedPath, roleMap, type RoleMap } from './delegation.js';
import { TufError } from './errors.js';
import { isExpired, notExpired } from './expiry.js';
import type { FileMeta, Targets } from './metadata.js';
import type { TrustedParts, VerifiedDelegation } from './trusted-set.js';

/** One target as a role signs it. */
export interface SignedTarget {
  name: string;
  role: string;
  /** sha256:<hex> of the manifest. */
  digest: string;
  length: number;
  /** Key IDs (canonical IDs for x509 keys) that may sign this role, like `docker trust inspect` shows. */
  signers: string[];
  expires: string;
}

interface RoleView {
  name: string;
  meta: Targets;
  paths: string[];
  signers: string[];
}

/**
 * Verified trust data of one repository, immutable and safe to share between requests.
 * Every lookup re-checks expiry against the caller's clock, because verified metadata
 * kept in a cache goes stale like any other.
 */
export class TrustedRepository {
  /** Top-level targets first, then the delegations: every lookup goes through it. */
  private readonly roles: RoleMap;
  /**
   * What a role's view needs beyond expiry, worked out at its first lookup: the parts are
   * immutable, and warm admissions look the same roles up thousands of times a second.
   * Expiry is never part of it (it depends on the caller's clock).
   */
  private readonly views = new Map<string, RoleView>();
  /** The earliest expiry among root, timestamp, snapshot and targets. */
  readonly expires: Date;

  constructor(
    readonly gun: string,
    readonly parts: TrustedParts,
  ) {
    this.roles = roleMap(parts);
    const { root, timestamp, snapshot, targets } = parts;
    this.expires = new Date(Math.min(root.meta.expires.getTime(), timestamp.meta.expires.getTime(), snapshot.meta.expires.getTime(), targets.meta.expires.getTime()));
  }

  assertFresh(now: Date): void {
    const { root, timestamp, snapshot, targets } = this.parts;
    notExpired('timestamp', timestamp.meta, now);
    notExpired('snapshot', snapshot.meta, now);
    notExpired('targets', targets.meta, now);
    notExpired('root', root.meta, now);
  }

  /** A role of the tree as trusted now, or the reason it is not trusted. */
  role(name: string, now: Date): RoleView | TufError {
    this.assertFresh(now);
    const skipped = this.parts.skipped.get(name);
    if (skipped) return skipped;
    const role = this.roles.get(name);
    if (!role) {
      return this.parts.snapshot.meta.meta.has(name)
        ? new TufError('not-found', name, 'is not reachable from targets through valid delegations')
        : new TufError('not-found', name, `the repository has no ${name} delegation`);
    }
    // Keys and paths come from the parent: once an ancestor expires, the subtree goes with it.
    for (let up: VerifiedDelegation | undefined = role; up; up = this.roles.get(up.parent)) {
      if (!isExpired(up.meta, now)) continue;
      return new TufError('expired', name, up === role ? `expired at ${up.meta.expiresText}` : `its parent ${up.name} expired at ${up.meta.expiresText}`);
    }
    let view = this.views.get(name);
    if (!view) {
      const { keys, keyids } = delegatedKeys(this.parts.root.meta, this.roles, role);
      view = { name, meta: role.meta, paths: role.paths, signers: keyids.map((id) => keys.get(id)!.canonicalId) };
      this.views.set(name, view);
    }
    return view;
  }

  /** The target `name` exactly as role `roleName` signs it. */
  findInRole(roleName: string, name: string, now: Date): SignedTarget | TufError {
    const role = this.role(roleName, now);
    if (role instanceof TufError) return role;
    const file = role.meta.targets.get(name);
    if (!file) return new TufError('not-found', roleName, `does not sign "${name}"`);
    if (!isDelegatedPath(role.paths, name)) {
      return new TufError('delegation', roleName, `signs "${name}", which is outside its delegated paths [${role.paths.map((p) => JSON.stringify(p)).join(', ')}]`);
    }
    return toSigned(name, roleName, file, role);
  }

  /** Every target of a role (within its paths) whose manifest digest is `digest`. */
  findDigestInRole(roleName: string, digest: string, now: Date): SignedTarget[] | TufError {
    const all = this.listRole(roleName, now);
    return all instanceof TufError ? all : all.filter((t) => t.digest === digest);
  }

  /** All trusted roles in pre-order (targets first), for inspection. */
  roleNames(): string[] {
    const out: string[] = [];
    const visit = (name: string, role: { meta: Targets }) => {
      out.push(name);
      for (const r of role.meta.delegations) {
        const d = this.roles.get(r.name);
        if (d) visit(r.name, d);
      }
    };
    visit('targets', this.roles.get('targets')!);
    return out;
  }

  /** Every signed target of a role within its paths. */
  listRole(roleName: string, now: Date): SignedTarget[] | TufError {
    const role = this.role(roleName, now);
    if (role instanceof TufError) return role;
    const out: SignedTarget[] = [];
    for (const [name, file] of role.meta.targets) {
      if (!isDelegatedPath(role.paths, name)) continue;
      const t = toSigned(name, roleName, file, role);
      if (!(t instanceof TufError)) out.push(t);
    }
    return out;
  }
}

/** `sha256:<hex>` per verified hash, made once: a warm lookup should not re-encode it. */
const digestTexts = new WeakMap<Uint8Array, string>();

function digestText(sha: Buffer): string {
  let text = digestTexts.get(sha);
  if (text === undefined) digestTexts.set(sha, (text = 'sha256:' + sha.toString('hex')));
  return text;
}

function toSigned(name: string, roleName: string, file: FileMeta, role: RoleView): SignedTarget | TufError {
  const sha = file.hashes.get('sha256');
  if (!sha || sha.length !== 32) return new TufError('malformed', roleName, `target "${name}" has no sha256 manifest digest`);
  return {
    name,
    role: roleName,
    digest: digestText(sha),
    length: file.length,
    signers: role.signers,
    expires: role.meta.expiresText,
  };
}
