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

/**
 * Whether some path starting with `prefix` could be delegated to `role`: what a search by
 * digest (every tag of one repository) must follow. Hash prefixes and bins depend on the
 * whole path, so they may hold any of them.
 */
export function mayDelegatePrefix(role: RoleForTarget & Partial<DelegatedRole>, prefix: string): boolean {
  if (!role.paths) return true;
  return role.paths.some((pattern) => patternMayMatchPrefix(pattern, prefix));
}

/** Whether a path pattern matches some string that starts with `prefix`, segment by segment. */
export function patternMayMatchPrefix(pattern: string, prefix: string): boolean {
  const parts = prefix.split('/');
  const globs = pattern.split('/');
  // The prefix's last part is open-ended (a tag follows), so the pattern needs exactly as many parts.
  if (globs.length !== parts.length) return false;
  for (let i = 0; i < parts.length - 1; i++) if (!segmentRegex(globs[i]!).test(parts[i]!)) return false;
  return globMayStartWith(globs[globs.length - 1]!, parts[parts.length - 1]!);
}

type GlobToken = { kind: 'star' } | { kind: 'one'; test: (c: string) => boolean };

function globTokens(glob: string): GlobToken[] {
  const out: GlobToken[] = [];
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out.push({ kind: 'star' });
    else if (c === '?') out.push({ kind: 'one', test: () => true });
    else if (c === '[' && glob.indexOf(']', i + 2) >= 0) {
      const end = glob.indexOf(']', i + 2);
      const re = segmentRegex(glob.slice(i, end + 1));
      out.push({ kind: 'one', test: (x) => re.test(x) });
      i = end;
    } else out.push({ kind: 'one', test: (x) => x === c });
  }
  return out;
}

/** Runs the glob as an automaton over `prefix`; any state left alive can still match a suffix. */
function globMayStartWith(glob: string, prefix: string): boolean {
  const tokens = globTokens(glob);
  const close = (states: Set<number>) => {
    for (const s of [...states]) for (let i = s; i < tokens.length && tokens[i]!.kind === 'star'; i++) states.add(i + 1);
    return states;
  };
  let states = close(new Set([0]));
  for (const c of prefix) {
    const next = new Set<number>();
    for (const s of states) {
      const t = tokens[s];
      if (!t) continue;
      if (t.kind === 'star') next.add(s);
      else if (t.test(c)) next.add(s + 1);
    }
    states = close(next);
    if (states.size === 0) return false;
  }
  return states.size > 0;
}

/** Every bin name of a succinct delegation, in order. */
export function* succinctRoleNames(s: SuccinctRoles): Generator<string> {
  const width = Math.ceil(s.bitLength / 4);
  for (let bin = 0; bin < 2 ** s.bitLength; bin++) yield `${s.namePrefix}-${bin.toString(16).padStart(width, '0')}`;
}
