/**
 * The delegation rules of the Notary dialect (FORMAT.md §5.2, §7.4, §7.5; TUF 1.0 §4.5 has
 * the same rules in another form), one home each: the name rule (a delegation is a direct
 * child of the role that lists it), delegated-path matching (Notary's paths are prefixes),
 * path restriction (a child keeps only the paths its parent may delegate), and the role map,
 * in which top-level targets is simply the first role: root delegates it every path, so
 * nothing that walks or looks up roles treats it apart. TUF 1.0's rules (shell-style
 * patterns, hash prefixes, succinct bins) are in tuf1/delegation.ts.
 */
import { TufError } from './errors.js';
import type { PublicKey } from './keys.js';
import type { Root, Targets } from './metadata.js';
import type { TrustedParts, Verified, VerifiedDelegation } from './trusted-set.js';

const ROLE_NAME = /^[-a-z0-9_/]+$/;

/**
 * A role listed in X's delegations must be a direct child X/<name>, with a clean name:
 * otherwise a delegation could claim a place elsewhere in the tree ("path escape").
 */
export function checkDelegationName(name: string, parent: string): void {
  const segments = name.split('/');
  const child = segments.slice(parent.split('/').length);
  if (
    name.length >= 256 ||
    !ROLE_NAME.test(name) ||
    !name.startsWith(parent + '/') ||
    child.length !== 1 ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new TufError('delegation', parent, `"${name}" is not a valid direct child delegation of ${parent}`);
  }
}

/** A role may sign a target whose name starts with one of its paths ("" delegates every name). */
export function isDelegatedPath(paths: readonly string[], target: string): boolean {
  return paths.some((p) => target.startsWith(p));
}

/** A child may only sign under paths that one of its parent's paths also covers. */
export function restrictPaths(child: readonly string[], parent: readonly string[]): string[] {
  return child.filter((c) => isDelegatedPath(parent, c));
}

/** Top-level targets as the role root delegates every path to. */
export function topLevelTargets(root: Root, targets: Verified<Targets>): VerifiedDelegation {
  return { ...targets, name: 'targets', parent: 'root', threshold: root.roles.targets.threshold, paths: [''] };
}

/** Targets roles by name: top-level targets first, then the delegations in the order trusted. */
export type RoleMap = ReadonlyMap<string, VerifiedDelegation>;

export function roleMap(parts: Pick<TrustedParts, 'root' | 'targets' | 'delegations'>): Map<string, VerifiedDelegation> {
  return new Map([['targets', topLevelTargets(parts.root.meta, parts.targets)], ...parts.delegations]);
}

/** The keys that may sign a role, as its delegator names them: root for top-level targets, else the parent role. */
export function delegatedKeys(root: Root, roles: RoleMap, role: VerifiedDelegation): { keys: ReadonlyMap<string, PublicKey>; keyids: readonly string[] } {
  if (role.parent === 'root') return { keys: root.keys, keyids: root.roles.targets.keyids };
  const parent = roles.get(role.parent)!.meta;
  return { keys: parent.delegationKeys, keyids: parent.delegations.find((r) => r.name === role.name)!.keyids };
}
