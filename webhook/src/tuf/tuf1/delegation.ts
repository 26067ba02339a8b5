/**
 * Which delegated roles may sign a target path (TUF 1.0 §4.5 "delegations", the one home of
 * the rule python-tuf calls DelegatedRole.is_delegated_path, and of succinct hash bins).
 */
import { sha256 } from '../crypto.js';
import type { Delegations, DelegatedRole, RoleKeys, SuccinctRoles } from './metadata.js';

export interface RoleForTarget extends RoleKeys {
  readonly name: string;
  readonly terminating: boolean;
}

/**
 * §4.5 "paths": a PATHPATTERN uses shell-style wildcards, and "*" does not match across "/":
 * pattern and path must have the same number of "/"-separated parts, each matching.
 */
export function matchesPathPattern(path: string, pattern: string): boolean {
  const parts = path.split('/');
  const globs = pattern.split('/');
  if (parts.length !== globs.length) return false;
  return globs.every((g, i) => segmentRegex(g).test(parts[i]!));
}

const regexCache = new Map<string, RegExp>();

/** fnmatch for one segment: *, ?, [set], [!set]; everything else literal. */
function segmentRegex(glob: string): RegExp {
  let re = regexCache.get(glob);
  if (re) return re;
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        out += '\\[';
        continue;
      }
      let set = glob.slice(i + 1, end);
      const negate = set.startsWith('!');
      if (negate) set = set.slice(1);
      out += `[${negate ? '^' : ''}${set.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  re = new RegExp(`^${out}$`, 's');
  if (regexCache.size > 4096) regexCache.clear();
  regexCache.set(glob, re);
  return re;
}

function pathHash(path: string): string {
  return Buffer.from(sha256(Buffer.from(path, 'utf8'))).toString('hex');
}

/** §4.5: a role signs a path when a pattern matches it, or its SHA-256 starts with a prefix. */
export function isDelegatedPath(role: DelegatedRole, path: string): boolean {
  if (role.paths) return role.paths.some((p) => matchesPathPattern(path, p));
  const h = pathHash(path);
  return (role.pathHashPrefixes ?? []).some((p) => h.startsWith(p));
}

/** TAP 15: the bin of a path is the first bitLength bits of its SHA-256. */
export function succinctRoleFor(s: SuccinctRoles, path: string): string {
  const digest = sha256(Buffer.from(path, 'utf8'));
  let value = 0;
  for (let i = 0; i < 4; i++) value = value * 256 + (digest[i] ?? 0);
  const bin = Math.floor(value / 2 ** (32 - s.bitLength));
  const width = Math.ceil(s.bitLength / 4);
  return `${s.namePrefix}-${bin.toString(16).padStart(width, '0')}`;
}

/** The role a delegation names `name` under, or undefined when it delegates no such role. */
export function delegatedRoleNamed(d: Delegations, name: string): RoleForTarget | undefined {
  if (d.roles) return d.roles.find((r) => r.name === name);
  const s = d.succinct!;
  const prefix = `${s.namePrefix}-`;
  const suffix = name.slice(prefix.length);
  const width = Math.ceil(s.bitLength / 4);
  if (!name.startsWith(prefix) || suffix.length !== width || !/^[0-9a-f]+$/.test(suffix)) return undefined;
  if (parseInt(suffix, 16) >= 2 ** s.bitLength) return undefined;
  return { name, keyids: s.keyids, threshold: s.threshold, terminating: true };
}

/** §5.6.7.2 the child roles of a delegation that may sign `path`, in listed order. */
export function rolesForTarget(d: Delegations, path: string): RoleForTarget[] {
  if (d.roles) return d.roles.filter((r) => isDelegatedPath(r, path));
  const s = d.succinct!;
  return [{ name: succinctRoleFor(s, path), keyids: s.keyids, threshold: s.threshold, terminating: true }];
}

/** Whether a delegation lets `name` sign `path` (a succinct bin only for its own paths). */
export function delegatesPathTo(d: Delegations, name: string, path: string): RoleForTarget | undefined {
  return rolesForTarget(d, path).find((r) => r.name === name);
}
