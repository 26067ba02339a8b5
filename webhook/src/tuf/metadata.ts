/**
 * The metadata file formats of the Notary dialect (FORMAT.md §1 envelope, §5.1 root, §5.2
 * targets and delegations, §5.3 snapshot, §5.4 timestamp). Parsing checks shape only; trust
 * comes from trusted-set.ts. TUF 1.0's formats are in tuf1/metadata.ts.
 */
import { checkDelegationName } from './delegation.js';
import { parseSignedEnvelope } from './envelope.js';
import { TufError } from './errors.js';
import { Fields, isObject, type JsonObject } from './json.js';
import { checkBase64, decodeBase64, parseKey, type PublicKey } from './keys.js';

export interface Signature {
  keyid: string;
  method: string;
  sig: Buffer;
}

/** A metadata file split into what is signed (as canonical bytes) and its signatures. */
export interface Envelope {
  role: string;
  signed: JsonObject;
  canonical: Buffer;
  signatures: Signature[];
}

export interface RoleKeys {
  keyids: string[];
  threshold: number;
}

export interface FileMeta {
  readonly length: number;
  /** algorithm -> raw digest */
  readonly hashes: ReadonlyMap<string, Buffer>;
}

interface Common {
  version: number;
  expires: Date;
  /** As written, for messages. */
  expiresText: string;
}

export interface Root extends Common {
  keys: Map<string, PublicKey>;
  roles: { root: RoleKeys; targets: RoleKeys; snapshot: RoleKeys; timestamp: RoleKeys };
}

export interface Timestamp extends Common {
  snapshot: FileMeta;
}

export interface Snapshot extends Common {
  meta: Map<string, FileMeta>;
}

export interface DelegatedRole extends RoleKeys {
  name: string;
  paths: string[];
}

export interface Targets extends Common {
  targets: Map<string, FileMeta>;
  delegationKeys: Map<string, PublicKey>;
  delegations: DelegatedRole[];
}

type TypeName = 'Root' | 'Timestamp' | 'Snapshot' | 'Targets';

export function parseEnvelope(bytes: Uint8Array, role: string, type: TypeName): Envelope {
  return parseSignedEnvelope(bytes, role, type, (f, i) => ({
    keyid: f.string('keyid'),
    method: f.string('method').toLowerCase(),
    sig: decodeBase64(f.string('sig'), role, `signatures[${i}].sig`),
  }));
}

// Go's time.Time text form: RFC 3339 with up to 9 fractional digits.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function common(env: Envelope): Common {
  const f = new Fields(env.signed, env.role, 'signed');
  const expiresText = f.string('expires');
  const expires = new Date(expiresText);
  if (!RFC3339.test(expiresText) || Number.isNaN(expires.getTime())) {
    throw new TufError('malformed', env.role, `expires "${expiresText}" is not an RFC 3339 time`);
  }
  return { version: f.int('version', 1), expires, expiresText };
}

function roleKeys(f: Fields, name: string, keys: Map<string, PublicKey>, role: string): RoleKeys {
  const r = f.fields(name);
  const keyids = r.stringArray('keyids');
  const threshold = r.int('threshold', 1);
  for (const id of keyids) {
    if (!keys.has(id)) throw new TufError('malformed', role, `role ${name} lists key ${id}, which is not in keys`);
  }
  return { keyids: [...new Set(keyids)], threshold };
}

function keyMap(obj: JsonObject, role: string): Map<string, PublicKey> {
  const keys = new Map<string, PublicKey>();
  for (const id of Object.keys(obj)) keys.set(id, parseKey(id, obj[id], role));
  return keys;
}

export function parseRoot(env: Envelope): Root {
  const f = new Fields(env.signed, env.role, 'signed');
  const keys = keyMap(f.object('keys'), env.role);
  const roles = f.fields('roles');
  return {
    ...common(env),
    keys,
    roles: {
      root: roleKeys(roles, 'root', keys, env.role),
      targets: roleKeys(roles, 'targets', keys, env.role),
      snapshot: roleKeys(roles, 'snapshot', keys, env.role),
      timestamp: roleKeys(roles, 'timestamp', keys, env.role),
    },
  };
}

/**
 * Checks a file-meta object (base64 hashes, integer length) without decoding it and returns
 * its length. `where` is only spelled out for an error: a targets file has one per tag.
 */
function checkFileMeta(obj: JsonObject, role: string, where: () => string): number {
  const hashesObj = obj['hashes'];
  if (!isObject(hashesObj)) throw new TufError('malformed', role, `${where()}.hashes must be an object`);
  for (const alg of Object.keys(hashesObj)) {
    const v = hashesObj[alg];
    if (typeof v !== 'string') throw new TufError('malformed', role, `${where()}.hashes.${alg} must be a string`);
    checkBase64(v, role, () => `${where()}.hashes.${alg}`);
  }
  const length = obj['length'];
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw new TufError('malformed', role, `${where()}.length must be an integer >= 0`);
  }
  return length;
}

/** Hashes already checked by checkFileMeta: decoding cannot fail. */
function decodeHashes(hashesObj: JsonObject, role: string): Map<string, Buffer> {
  const hashes = new Map<string, Buffer>();
  for (const alg of Object.keys(hashesObj)) hashes.set(alg, decodeBase64(hashesObj[alg] as string, role, alg));
  return hashes;
}

function fileMeta(obj: JsonObject, role: string, where: () => string): FileMeta {
  const length = checkFileMeta(obj, role, where);
  return { length, hashes: decodeHashes(obj['hashes'] as JsonObject, role) };
}

/**
 * A target's file meta, checked as strictly as any other but decoded only when looked up:
 * a targets file can list 10,000 tags and an admission reads one, so decoding them all
 * up front cost a cold load more time (mostly garbage collection) than hashing the file.
 */
export class TargetMeta implements FileMeta {
  #hashes: ReadonlyMap<string, Buffer> | undefined;
  constructor(
    readonly length: number,
    /** The hashes object as the file wrote it (algorithm -> base64), already checked. */
    readonly encoded: JsonObject,
    private readonly role: string,
  ) {}

  get hashes(): ReadonlyMap<string, Buffer> {
    return (this.#hashes ??= decodeHashes(this.encoded, this.role));
  }
}

export function parseTimestamp(env: Envelope): Timestamp {
  const meta = new Fields(env.signed, env.role, 'signed').fields('meta');
  return { ...common(env), snapshot: fileMeta(meta.object('snapshot'), env.role, () => 'meta.snapshot') };
}

export function parseSnapshot(env: Envelope): Snapshot {
  const metaObj = new Fields(env.signed, env.role, 'signed').object('meta');
  const meta = new Map<string, FileMeta>();
  for (const name of Object.keys(metaObj)) {
    const v = metaObj[name];
    if (!isObject(v)) throw new TufError('malformed', env.role, `meta.${name} must be an object`);
    meta.set(name, fileMeta(v, env.role, () => `meta.${name}`));
  }
  for (const required of ['root', 'targets']) {
    if (!meta.get(required)?.hashes.has('sha256')) {
      throw new TufError('malformed', env.role, `meta.${required} with a sha256 hash is required`);
    }
  }
  return { ...common(env), meta };
}

export function parseTargets(env: Envelope): Targets {
  const f = new Fields(env.signed, env.role, 'signed');
  const targetsObj = f.object('targets');
  const targets = new Map<string, FileMeta>();
  for (const name of Object.keys(targetsObj)) {
    const v = targetsObj[name];
    if (!isObject(v)) throw new TufError('malformed', env.role, `targets["${name}"] must be an object`);
    const length = checkFileMeta(v, env.role, () => `targets["${name}"]`);
    targets.set(name, new TargetMeta(length, v['hashes'] as JsonObject, env.role));
  }
  let delegationKeys = new Map<string, PublicKey>();
  const delegations: DelegatedRole[] = [];
  if (f.has('delegations')) {
    const d = f.fields('delegations');
    delegationKeys = keyMap(d.object('keys'), env.role);
    const seen = new Set<string>();
    d.array('roles').forEach((r, i) => {
      if (!isObject(r)) throw new TufError('malformed', env.role, `delegations.roles[${i}] must be an object`);
      const rf = new Fields(r, env.role, `delegations.roles[${i}]`);
      const name = rf.string('name');
      checkDelegationName(name, env.role);
      if (seen.has(name)) throw new TufError('delegation', env.role, `delegation ${name} is listed twice`);
      seen.add(name);
      if (rf.has('path_hash_prefixes')) {
        throw new TufError('delegation', env.role, `delegation ${name} uses path_hash_prefixes, which Notary v1 does not support`);
      }
      const keyids = rf.stringArray('keyids');
      for (const id of keyids) {
        if (!delegationKeys.has(id)) throw new TufError('malformed', env.role, `delegation ${name} lists key ${id}, which is not in delegations.keys`);
      }
      delegations.push({
        name,
        keyids: [...new Set(keyids)],
        threshold: rf.int('threshold', 1),
        paths: rf.has('paths') ? rf.stringArray('paths') : [],
      });
    });
  }
  return { ...common(env), targets, delegationKeys, delegations };
}
