// A TUF 1.0 repository built with @tufjs/models (tuf-js's metadata models: an implementation
// independent of ours), signed with real keys of every type the specification names. Like
// python-tuf's RepositorySimulator: tests change metadata, re-sign, publish, and feed the
// files to trustgate's client; nothing here copies trustgate's verification code.
import { generateKeyPairSync, sign as nodeSign, constants, createHash, type KeyObject } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Metadata, MetaFile, Root, Signature, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';

const SPEC = '1.0.31';

export type KeyKind = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'rsa' | 'rsa-pkcs1v15';

export interface TestKey {
  readonly kind: KeyKind;
  readonly key: Key;
  readonly id: string;
  readonly privateKey: KeyObject;
  sign(data: Buffer): Signature;
}

const rsaPool: { publicKey: KeyObject; privateKey: KeyObject }[] = [];
let rsaNext = 0;

function keyPair(kind: KeyKind): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (kind) {
    case 'ed25519':
      return generateKeyPairSync('ed25519');
    case 'ecdsa-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ecdsa-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'rsa':
    case 'rsa-pkcs1v15':
      // RSA key generation is slow; a small pool of distinct keys serves every test.
      if (rsaPool.length < 4) rsaPool.push(generateKeyPairSync('rsa', { modulusLength: 2048 }));
      return rsaPool[rsaNext++ % rsaPool.length]!;
  }
}

export function keyFields(kind: KeyKind, publicKey: KeyObject): { keytype: string; scheme: string; keyval: { public: string } } {
  if (kind === 'ed25519') {
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } };
  }
  const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  if (kind === 'rsa') return { keytype: 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: pem } };
  if (kind === 'rsa-pkcs1v15') return { keytype: 'rsa', scheme: 'rsa-pkcs1v15-sha256', keyval: { public: pem } };
  const scheme = kind === 'ecdsa-p256' ? 'ecdsa-sha2-nistp256' : 'ecdsa-sha2-nistp384';
  return { keytype: 'ecdsa', scheme, keyval: { public: pem } };
}

/** Key ID as the specification computes it: SHA-256 of the canonical key object. */
export function specKeyId(fields: object): string {
  return createHash('sha256').update(canonicalize(fields)).digest('hex');
}

export function rawSign(kind: KeyKind, privateKey: KeyObject, data: Buffer): Buffer {
  switch (kind) {
    case 'ed25519':
      return nodeSign(null, data, privateKey);
    case 'ecdsa-p256':
      return nodeSign('sha256', data, privateKey);
    case 'ecdsa-p384':
      return nodeSign('sha384', data, privateKey);
    case 'rsa':
      return nodeSign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'rsa-pkcs1v15':
      return nodeSign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
  }
}

export function makeKey(kind: KeyKind = 'ed25519', pair = keyPair(kind), fields = keyFields(kind, pair.publicKey)): TestKey {
  const id = specKeyId(fields);
  const key = new Key({ keyID: id, keyType: fields.keytype, scheme: fields.scheme, keyVal: fields.keyval });
  return {
    kind,
    key,
    id,
    privateKey: pair.privateKey,
    sign: (data) => new Signature({ keyID: id, sig: rawSign(kind, pair.privateKey, data).toString('hex') }),
  };
}

export const DAY = 24 * 3600 * 1000;

function expiry(now: Date, days: number): string {
  return new Date(now.getTime() + days * DAY).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface RepoOptions {
  now?: Date;
  kinds?: Partial<Record<'root' | 'timestamp' | 'snapshot' | 'targets', KeyKind>>;
  consistentSnapshot?: boolean;
}

/** Target entry for an image, as the contract says: path name:tag, length, sha256 hex. */
export function imageTarget(path: string, manifest: string | Buffer): TargetFile {
  const bytes = Buffer.from(manifest);
  return new TargetFile({ path, length: bytes.length, hashes: { sha256: createHash('sha256').update(bytes).digest('hex') } });
}

export class TufRepo {
  readonly now: Date;
  root: Metadata<Root>;
  timestamp: Metadata<Timestamp>;
  snapshot: Metadata<Snapshot>;
  readonly targets = new Map<string, Metadata<Targets>>();
  readonly signers = new Map<string, TestKey[]>();
  /** Every root version published, by version: the N.root.json files. */
  readonly roots = new Map<number, Buffer>();

  constructor(opts: RepoOptions = {}) {
    this.now = opts.now ?? new Date();
    const exp = expiry(this.now, 365);
    this.root = new Metadata(new Root({ version: 1, specVersion: SPEC, expires: exp, consistentSnapshot: opts.consistentSnapshot ?? true }));
    for (const role of ['root', 'timestamp', 'snapshot', 'targets'] as const) {
      const k = makeKey(opts.kinds?.[role] ?? 'ed25519');
      this.root.signed.addKey(k.key, role);
      this.signers.set(role, [k]);
    }
    this.timestamp = new Metadata(new Timestamp({ version: 1, specVersion: SPEC, expires: expiry(this.now, 1), snapshotMeta: new MetaFile({ version: 1 }) }));
    this.snapshot = new Metadata(new Snapshot({ version: 1, specVersion: SPEC, expires: expiry(this.now, 7) }));
    this.targets.set('targets', new Metadata(new Targets({ version: 1, specVersion: SPEC, expires: expiry(this.now, 30) })));
  }

  expiresIn(days: number): string {
    return expiry(this.now, days);
  }

  /** Adds a delegation from `parent` (default targets) to a new role with a fresh key. */
  delegate(name: string, opts: { parent?: string; paths?: string[]; hashPrefixes?: string[]; terminating?: boolean; kind?: KeyKind; threshold?: number; keys?: TestKey[] } = {}): TestKey[] {
    const parentName = opts.parent ?? 'targets';
    const parent = this.targets.get(parentName)!;
    const keys = opts.keys ?? [makeKey(opts.kind ?? 'ed25519')];
    const role = {
      name,
      keyids: keys.map((k) => k.id),
      threshold: opts.threshold ?? 1,
      terminating: opts.terminating ?? false,
      ...(opts.hashPrefixes ? { path_hash_prefixes: opts.hashPrefixes } : { paths: opts.paths ?? ['*'] }),
    };
    // The models export no Delegations constructor; a round trip through fromJSON builds and
    // validates it the way tuf-js reads a real file.
    const json = parent.signed.toJSON() as { delegations?: { keys: Record<string, unknown>; roles: unknown[] } };
    const delegations = json.delegations ?? { keys: {}, roles: [] };
    for (const k of keys) delegations.keys[k.id] = k.key.toJSON();
    delegations.roles.push(role);
    json.delegations = delegations;
    parent.signed = Targets.fromJSON(json as never);
    if (!this.targets.has(name)) this.targets.set(name, new Metadata(new Targets({ version: 1, specVersion: SPEC, expires: expiry(this.now, 30) })));
    this.signers.set(name, keys);
    return keys;
  }

  addTarget(role: string, path: string, manifest: string | Buffer): TargetFile {
    const t = imageTarget(path, manifest);
    this.targets.get(role)!.signed.addTarget(t);
    return t;
  }

  /** Replaces a role's keys in root (a rotation: the next root must be published). */
  rotate(role: 'root' | 'timestamp' | 'snapshot' | 'targets', kinds: KeyKind[] = ['ed25519'], threshold = 1): TestKey[] {
    const r = this.root.signed;
    for (const id of r.roles[role]!.keyIDs) {
      const usedElsewhere = Object.entries(r.roles).some(([n, ro]) => n !== role && ro.keyIDs.includes(id));
      if (!usedElsewhere) delete (r.keys as Record<string, Key>)[id];
    }
    (r.roles[role] as { keyIDs: string[] }).keyIDs = [];
    (r.roles[role] as { threshold: number }).threshold = threshold;
    const keys = kinds.map((k) => makeKey(k));
    for (const k of keys) r.addKey(k.key, role);
    return keys;
  }

  private signWith(md: Metadata<Root | Timestamp | Snapshot | Targets>, keys: TestKey[]): Buffer {
    md.signatures = {};
    for (const k of keys) md.sign((d) => k.sign(d), true);
    return Buffer.from(JSON.stringify(md.toJSON()));
  }

  /** Signs and records the current root as the next version (1 on first call). */
  publishRoot(extraSigners: TestKey[] = []): Buffer {
    const version = this.roots.size + 1;
    (this.root.signed as { version: number }).version = version;
    const bytes = this.signWith(this.root, [...extraSigners, ...this.signers.get('root')!]);
    this.roots.set(version, bytes);
    return bytes;
  }

  /**
   * Re-signs snapshot and timestamp over the current targets, bumping every version that
   * changed, and returns the files a static server would hold.
   * @param opts.declare lengths to sign instead of the true ones, by role ('snapshot': the
   *   timestamp's entry for it): what a repository's key holder may declare.
   */
  publish(opts: { bump?: string[]; hashes?: boolean; declare?: Record<string, number> } = {}): Map<string, Buffer> {
    if (this.roots.size === 0) this.publishRoot();
    const files = new Map<string, Buffer>();
    const consistent = this.root.signed.consistentSnapshot;
    const snapMeta: Record<string, MetaFile> = {};
    for (const [name, md] of this.targets) {
      if (opts.bump?.includes(name)) (md.signed as { version: number }).version += 1;
      const bytes = this.signWith(md, this.signers.get(name)!);
      const v = md.signed.version;
      const length = opts.declare?.[name] ?? (opts.hashes ? bytes.length : undefined);
      snapMeta[`${name}.json`] = new MetaFile({ version: v, ...(length !== undefined ? { length } : {}), ...(opts.hashes ? { hashes: { sha256: sha256hex(bytes) } } : {}) });
      files.set(consistent ? `${v}.${name}.json` : `${name}.json`, bytes);
    }
    const snap = this.snapshot.signed as { meta: Record<string, MetaFile>; version: number };
    snap.meta = snapMeta;
    if (opts.bump?.includes('snapshot')) snap.version += 1;
    const snapBytes = this.signWith(this.snapshot, this.signers.get('snapshot')!);
    files.set(consistent ? `${snap.version}.snapshot.json` : 'snapshot.json', snapBytes);
    const ts = this.timestamp.signed as { snapshotMeta: MetaFile; version: number };
    ts.snapshotMeta = new MetaFile({ version: snap.version, length: opts.declare?.['snapshot'] ?? snapBytes.length, hashes: { sha256: sha256hex(snapBytes) } });
    if (opts.bump?.includes('timestamp')) ts.version += 1;
    files.set('timestamp.json', this.signWith(this.timestamp, this.signers.get('timestamp')!));
    for (const [v, bytes] of this.roots) files.set(`${v}.root.json`, bytes);
    files.set('root.json', this.roots.get(this.roots.size)!);
    return files;
  }
}

export function sha256hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
