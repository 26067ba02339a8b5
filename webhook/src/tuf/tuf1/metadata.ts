/**
 * The metadata file formats of the TUF specification 1.0 (§4: root §4.3, snapshot §4.4,
 * targets and delegations §4.5, timestamp §4.6). Parsing checks shape only; trust comes
 * from trusted-set.ts. Every object is read through Fields, so a wrong shape is one
 * 'malformed' error that names the field.
 */
import { parseSignedEnvelope } from '../envelope.js';
import { TufError } from '../errors.js';
import { Fields, isObject, type JsonObject } from '../json.js';
import { parseSpecKey, type SpecKey } from './keys.js';

export const TOP_LEVEL_ROLES = ['root', 'timestamp', 'snapshot', 'targets'] as const;

export interface SpecSignature {
  readonly keyid: string;
  readonly sig: Uint8Array;
}

export interface SpecEnvelope {
  readonly role: string;
  readonly signed: JsonObject;
  /** Canonical JSON (OLPC, as securesystemslib writes it) of `signed`: what signatures cover. */
  readonly canonical: Uint8Array;
  readonly signatures: SpecSignature[];
}

export interface RoleKeys {
  readonly keyids: readonly string[];
  readonly threshold: number;
}

export interface Common {
  readonly version: number;
  readonly expires: Date;
  readonly expiresText: string;
  readonly specVersion: string;
}

export interface SpecRoot extends Common {
  readonly keys: ReadonlyMap<string, SpecKey>;
  readonly roles: Readonly<Record<(typeof TOP_LEVEL_ROLES)[number], RoleKeys>>;
  readonly consistentSnapshot: boolean;
}

/** METAFILES entry (§4.4, §4.6): length and hashes are optional in TUF 1.0. */
export interface MetaFile {
  readonly version: number;
  readonly length?: number;
  readonly hashes?: Readonly<Record<string, string>>;
}

export interface SpecTimestamp extends Common {
  readonly snapshot: MetaFile;
}

export interface SpecSnapshot extends Common {
  /** Keyed by role name ("targets", "payments-release"), not by file name. */
  readonly meta: ReadonlyMap<string, MetaFile>;
}

export interface TargetFile {
  readonly path: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
  readonly custom?: JsonObject;
}

export interface DelegatedRole extends RoleKeys {
  readonly name: string;
  readonly terminating: boolean;
  readonly paths?: readonly string[];
  readonly pathHashPrefixes?: readonly string[];
}

/** §4.5 succinct_roles (TAP 15): 2^bitLength bins named `${namePrefix}-${hex}`. */
export interface SuccinctRoles extends RoleKeys {
  readonly bitLength: number;
  readonly namePrefix: string;
}

export interface Delegations {
  readonly keys: ReadonlyMap<string, SpecKey>;
  readonly roles?: readonly DelegatedRole[];
  readonly succinct?: SuccinctRoles;
}

export interface SpecTargets extends Common {
  readonly targets: ReadonlyMap<string, TargetFile>;
  readonly delegations?: Delegations;
}

type TypeName = 'root' | 'timestamp' | 'snapshot' | 'targets';

export function parseSpecEnvelope(bytes: Uint8Array, role: string, type: TypeName): SpecEnvelope {
  return parseSignedEnvelope(bytes, role, type, (f, i) => {
    const sig = f.string('sig');
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(sig)) throw new TufError('malformed', role, `signatures[${i}].sig is not hex`);
    return { keyid: f.string('keyid'), sig: Buffer.from(sig, 'hex') };
  });
}

// §4.2: "expires" is ISO 8601 "YYYY-MM-DDTHH:MM:SSZ"; implementations also write fractions.
const ISO8601_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

function common(env: SpecEnvelope): Common {
  const f = new Fields(env.signed, env.role, 'signed');
  const specVersion = f.string('spec_version');
  // §5.3.x, as python-tuf and go-tuf do: only major version 1 of the format is understood.
  if (!/^1\.\d+(\.\d+)?$/.test(specVersion)) {
    throw new TufError('malformed', env.role, `spec_version "${specVersion}" is not a 1.x version this client understands`);
  }
  const expiresText = f.string('expires');
  const expires = new Date(expiresText);
  if (!ISO8601_UTC.test(expiresText) || Number.isNaN(expires.getTime())) {
    throw new TufError('malformed', env.role, `expires "${expiresText}" is not an ISO 8601 UTC time`);
  }
  return { version: f.int('version', 1), expires, expiresText, specVersion };
}

function keyMap(obj: JsonObject, role: string): Map<string, SpecKey> {
  const keys = new Map<string, SpecKey>();
  for (const id of Object.keys(obj)) keys.set(id, parseSpecKey(id, obj[id], role));
  return keys;
}

function roleKeys(f: Fields, keys: ReadonlyMap<string, SpecKey>, role: string, name: string): RoleKeys {
  const keyids = f.stringArray('keyids');
  if (new Set(keyids).size !== keyids.length) throw new TufError('malformed', role, `role ${name} lists a key ID twice`);
  for (const id of keyids) {
    if (!keys.has(id)) throw new TufError('malformed', role, `role ${name} lists key ${id}, which is not in keys`);
  }
  return { keyids, threshold: f.int('threshold', 1) };
}

export function parseSpecRoot(env: SpecEnvelope): SpecRoot {
  const f = new Fields(env.signed, env.role, 'signed');
  const keys = keyMap(f.object('keys'), env.role);
  const roles = f.fields('roles');
  const r = (name: (typeof TOP_LEVEL_ROLES)[number]) => roleKeys(roles.fields(name), keys, env.role, name);
  return {
    ...common(env),
    keys,
    roles: { root: r('root'), timestamp: r('timestamp'), snapshot: r('snapshot'), targets: r('targets') },
    consistentSnapshot: f.has('consistent_snapshot') ? f.boolean('consistent_snapshot') : false,
  };
}

function metaFile(obj: JsonObject, role: string, where: string): MetaFile {
  const f = new Fields(obj, role, where);
  const version = f.int('version', 1);
  const length = f.has('length') ? f.int('length', 0) : undefined;
  const hashes = f.has('hashes') ? hashMap(f.object('hashes'), role, `${where}.hashes`) : undefined;
  return { version, ...(length !== undefined ? { length } : {}), ...(hashes ? { hashes } : {}) };
}

function hashMap(obj: JsonObject, role: string, where: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  const names = Object.keys(obj);
  if (names.length === 0) throw new TufError('malformed', role, `${where} is empty`);
  for (const name of names) {
    const v = obj[name];
    if (typeof v !== 'string' || !/^[0-9a-f]+$/.test(v)) throw new TufError('malformed', role, `${where}.${name} is not lowercase hex`);
    out[name] = v;
  }
  return out;
}

export function parseSpecTimestamp(env: SpecEnvelope): SpecTimestamp {
  const f = new Fields(env.signed, env.role, 'signed');
  const meta = f.object('meta');
  const names = Object.keys(meta);
  if (names.length !== 1 || names[0] !== 'snapshot.json' || !isObject(meta['snapshot.json'])) {
    throw new TufError('malformed', env.role, 'signed.meta must hold exactly "snapshot.json"');
  }
  return { ...common(env), snapshot: metaFile(meta['snapshot.json'], env.role, 'signed.meta["snapshot.json"]') };
}

export function parseSpecSnapshot(env: SpecEnvelope): SpecSnapshot {
  const f = new Fields(env.signed, env.role, 'signed');
  const obj = f.object('meta');
  const meta = new Map<string, MetaFile>();
  for (const file of Object.keys(obj)) {
    const v = obj[file];
    if (!file.endsWith('.json') || !isObject(v)) throw new TufError('malformed', env.role, `signed.meta["${file}"] is not a metadata file entry`);
    meta.set(file.slice(0, -'.json'.length), metaFile(v, env.role, `signed.meta["${file}"]`));
  }
  if (!meta.has('targets')) throw new TufError('malformed', env.role, 'signed.meta does not list targets.json');
  return { ...common(env), meta };
}

export function parseSpecTargets(env: SpecEnvelope): SpecTargets {
  const f = new Fields(env.signed, env.role, 'signed');
  const obj = f.object('targets');
  const targets = new Map<string, TargetFile>();
  for (const path of Object.keys(obj)) {
    const v = obj[path];
    if (!isObject(v)) throw new TufError('malformed', env.role, `target "${path}" is not an object`);
    const t = new Fields(v, env.role, `target "${path}"`);
    const entry: TargetFile = {
      path,
      length: t.int('length', 0),
      hashes: hashMap(t.object('hashes'), env.role, `target "${path}".hashes`),
      ...(t.has('custom') ? { custom: t.object('custom') } : {}),
    };
    targets.set(path, entry);
  }
  const delegations = f.has('delegations') ? parseDelegations(f.fields('delegations'), env.role) : undefined;
  return { ...common(env), targets, ...(delegations ? { delegations } : {}) };
}

function parseDelegations(f: Fields, role: string): Delegations {
  const keys = keyMap(f.object('keys'), role);
  const hasRoles = f.has('roles');
  if (hasRoles === f.has('succinct_roles')) {
    throw new TufError('malformed', role, 'delegations must hold exactly one of roles and succinct_roles');
  }
  if (!hasRoles) {
    const s = f.fields('succinct_roles');
    const bitLength = s.int('bit_length', 1);
    if (bitLength > 32) throw new TufError('malformed', role, `succinct_roles.bit_length ${bitLength} is over 32`);
    return { keys, succinct: { ...roleKeys(s, keys, role, 'succinct_roles'), bitLength, namePrefix: s.string('name_prefix') } };
  }
  const seen = new Set<string>();
  const roles = f.array('roles').map((v, i) => {
    if (!isObject(v)) throw new TufError('malformed', role, `delegations.roles[${i}] is not an object`);
    const r = new Fields(v, role, `delegations.roles[${i}]`);
    const name = r.string('name');
    if (seen.has(name)) throw new TufError('delegation', role, `delegates to "${name}" twice`);
    if ((TOP_LEVEL_ROLES as readonly string[]).includes(name)) {
      throw new TufError('delegation', role, `a delegated role cannot be named "${name}", a top-level role`);
    }
    // Names of this form are the client's version marks of timestamp and snapshot (trusted-set.ts).
    if (/^(timestamp|snapshot)@[0-9a-f]{64}$/.test(name)) throw new TufError('delegation', role, `a delegated role cannot be named "${name}"`);
    seen.add(name);
    const hasPaths = r.has('paths');
    if (hasPaths === r.has('path_hash_prefixes')) {
      throw new TufError('delegation', role, `delegation "${name}" must have exactly one of paths and path_hash_prefixes`);
    }
    const base = { ...roleKeys(r, keys, role, name), name, terminating: r.boolean('terminating') };
    if (hasPaths) return { ...base, paths: r.stringArray('paths') };
    const prefixes = r.stringArray('path_hash_prefixes');
    for (const p of prefixes) {
      if (!/^[0-9a-f]*$/.test(p)) throw new TufError('delegation', role, `delegation "${name}" has a path hash prefix that is not lowercase hex`);
    }
    return { ...base, pathHashPrefixes: prefixes };
  });
  return { keys, roles };
}
