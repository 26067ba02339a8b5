import { TufError } from './errors.js';
import { isSha1Signed, sha256, sha512 } from './crypto.js';
import type { PublicKey } from './keys.js';
import {
  parseEnvelope,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  type DelegatedRole,
  type FileMeta,
  type Root,
  type Snapshot,
  type Targets,
  type Timestamp,
} from './metadata.js';
import type { RootPin } from './pinning.js';
import { short, verifyThreshold } from './threshold.js';

/** Highest version trusted so far per role (high-water marks); nothing below them is accepted. */
export type VersionFloor = ReadonlyMap<string, number>;

export interface Verified<T> {
  readonly meta: T;
  /** hex sha256 of the exact bytes, so a cache can tell identical files apart from new ones. */
  readonly sha256: string;
  readonly length: number;
}

export interface VerifiedRoot extends Verified<Root> {
  readonly bytes: Uint8Array;
}

export interface VerifiedDelegation extends Verified<Targets> {
  readonly name: string;
  readonly parent: string;
  readonly threshold: number;
  /** The role's paths restricted to what its parent may delegate. */
  readonly paths: string[];
}

/** Byte caps applied before any parsing, for files whose length no signed metadata declares. */
export const MAX_ROOT_BYTES = 512 * 1024;
export const MAX_TIMESTAMP_BYTES = 64 * 1024;
/** Caps for files whose length is declared, on top of the declaration. */
export const MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024;
export const MAX_TARGETS_BYTES = 64 * 1024 * 1024;

const ONE_DAY_MS = 24 * 3600 * 1000;

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function capped(bytes: Uint8Array, max: number, role: string): void {
  if (bytes.length > max) throw new TufError('too-large', role, `${bytes.length} bytes exceed the cap of ${max}`);
}

function notExpired(role: string, m: { expires: Date; expiresText: string }, now: Date): void {
  if (m.expires.getTime() <= now.getTime()) {
    throw new TufError('expired', role, `expired at ${m.expiresText}`);
  }
}

function notRolledBack(role: string, version: number, floor: VersionFloor): void {
  const min = floor.get(role);
  if (min !== undefined && version < min) {
    throw new TufError('rollback', role, `version ${version} is older than version ${min} already trusted`);
  }
}

/** Length and every known hash must match what the parent role declared. */
export function checkAgainstMeta(bytes: Uint8Array, meta: FileMeta | undefined, role: string, declaredBy: string): string {
  if (!meta) throw new TufError('not-found', role, `${declaredBy} does not list ${role}`);
  if (bytes.length > meta.length) {
    throw new TufError('too-large', role, `${bytes.length} bytes, more than the ${meta.length} that ${declaredBy} declares`);
  }
  if (bytes.length !== meta.length) {
    throw new TufError('hash-mismatch', role, `${bytes.length} bytes, but ${declaredBy} declares ${meta.length}`);
  }
  const digest256 = sha256(bytes);
  let known = 0;
  for (const [alg, want] of meta.hashes) {
    const got = alg === 'sha256' ? digest256 : alg === 'sha512' ? sha512(bytes) : undefined;
    if (!got) continue;
    known++;
    if (!want.equals(got)) throw new TufError('hash-mismatch', role, `${alg} differs from the hash ${declaredBy} declares`);
  }
  if (known === 0) throw new TufError('hash-mismatch', role, `${declaredBy} declares no sha256/sha512 hash for ${role}`);
  return hex(digest256);
}

function commonName(key: PublicKey): string | undefined {
  const line = key.certificate?.subject.split('\n').find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

/**
 * Keys that may sign root: certificates issued to this GUN (Notary binds a root to its
 * repository through the certificate CN, so one repository's root cannot stand in for
 * another's), and for the root in force also within their validity period.
 */
function rootSigningKeys(root: Root, gun: string, now: Date | undefined): { keys: Map<string, PublicKey>; problems: string[] } {
  const keys = new Map<string, PublicKey>();
  const problems: string[] = [];
  for (const id of root.roles.root.keyids) {
    const key = root.keys.get(id)!;
    const cn = commonName(key);
    if (!key.certificate || cn === undefined) {
      problems.push(`root key ${id.slice(0, 12)}… is not an x509 certificate`);
      continue;
    }
    if (key.certificate.ca) {
      problems.push(`root certificate ${id.slice(0, 12)}… is a CA certificate, not a leaf`);
      continue;
    }
    if (isSha1Signed(key.certificate)) {
      problems.push(`root certificate ${id.slice(0, 12)}… uses the broken SHA-1 signature algorithm`);
      continue;
    }
    const matches = cn === gun || (cn.endsWith('*') && gun.startsWith(cn.slice(0, -1)));
    if (!matches) {
      problems.push(`root certificate ${id.slice(0, 12)}… is issued to "${cn}", not "${gun}"`);
      continue;
    }
    if (now) {
      const from = new Date(key.certificate.validFrom).getTime() - ONE_DAY_MS;
      const to = new Date(key.certificate.validTo).getTime();
      if (now.getTime() < from || now.getTime() > to) {
        problems.push(`root certificate ${id.slice(0, 12)}… is valid only from ${key.certificate.validFrom} to ${key.certificate.validTo}`);
        continue;
      }
    }
    keys.set(id, key);
  }
  return { keys, problems };
}

function verifyRootSelf(root: Root, env: ReturnType<typeof parseEnvelope>, gun: string, now?: Date): Set<string> {
  const { keys, problems } = rootSigningKeys(root, gun, now);
  try {
    return verifyThreshold(env, keys, root.roles.root, `root v${root.version}`);
  } catch (e) {
    // When certificates were set aside, that is the cause to report, not the signatures.
    if (e instanceof TufError && problems.length) {
      throw new TufError('untrusted-root', 'root', `${problems.join('; ')}; so root v${root.version} lacks ${root.roles.root.threshold} valid root signature(s)`);
    }
    throw e;
  }
}

function verifiedRoot(bytes: Uint8Array, root: Root): VerifiedRoot {
  return { meta: root, bytes, sha256: hex(sha256(bytes)), length: bytes.length };
}

/**
 * The first trusted root: signed by a threshold of the pinned keys, each of which must be
 * one of the root's own root keys, and by a threshold of its own root keys.
 */
export function verifyPinnedRoot(bytes: Uint8Array, pin: RootPin, gun: string): VerifiedRoot {
  capped(bytes, MAX_ROOT_BYTES, 'root');
  const env = parseEnvelope(bytes, 'root', 'Root');
  const root = parseRoot(env);
  const signers = verifyRootSelf(root, env, gun);
  // Count pinned keys, not root key IDs: one key wrapped in two certificates is still one key.
  const spkiOf = (id: string) => root.keys.get(id)!.spki;
  const inRoot = pin.keys.filter((k) => root.roles.root.keyids.some((id) => spkiOf(id).equals(k)));
  const signed = inRoot.filter((k) => [...signers].some((id) => spkiOf(id).equals(k)));
  if (signed.length < pin.threshold) {
    const v = root.version;
    const by = `it is signed by ${[...signers].map(short).join(', ')}`;
    // Which keys the server does have, so a wrong pin can be told from a wrong server.
    const keys = `its root keys are ${root.roles.root.keyids.join(', ')}`;
    const why =
      signed.length === 0
        ? `none of the pinned keys signs root v${v}; ${by}; ${keys}` + (inRoot.length === 0 ? ` (none of the pinned keys is a root key of root v${v})` : '')
        : `too few pinned keys signed root v${v} (${signed.length} of the required ${pin.threshold}); ${by}; ${keys}`;
    throw new TufError('untrusted-root', 'root', why);
  }
  return verifiedRoot(bytes, root);
}

/** Root rotation: version n+1 must be signed by a threshold of version n's root keys and of its own. */
export function verifyNextRoot(prev: VerifiedRoot, bytes: Uint8Array, gun: string): VerifiedRoot {
  capped(bytes, MAX_ROOT_BYTES, 'root');
  const env = parseEnvelope(bytes, 'root', 'Root');
  const root = parseRoot(env);
  const expected = prev.meta.version + 1;
  if (root.version !== expected) {
    throw new TufError('rollback', 'root', `expected root version ${expected}, got ${root.version}`);
  }
  // The previous root's certificates may have expired since; Notary does not check them here.
  const { keys } = rootSigningKeys(prev.meta, gun, undefined);
  try {
    verifyThreshold(env, keys, prev.meta.roles.root, `previous root v${prev.meta.version}`);
  } catch (e) {
    if (e instanceof TufError) throw new TufError(e.code, 'root', `root v${root.version} is not signed by the keys of root v${prev.meta.version}: ${e.message.replace(/^root: /, '')}`);
    throw e;
  }
  verifyRootSelf(root, env, gun);
  return verifiedRoot(bytes, root);
}

export interface TrustedParts {
  root: VerifiedRoot;
  timestamp: Verified<Timestamp>;
  snapshot: Verified<Snapshot>;
  targets: Verified<Targets>;
  delegations: Map<string, VerifiedDelegation>;
  /** Delegations present in the snapshot that were not trusted, and why (expired, under-signed). */
  skipped: Map<string, TufError>;
}

/**
 * Verifies one repository's metadata strictly in the client order of the Notary/TUF spec.
 * Each step accepts only what the previous steps vouch for; every check is against `now`
 * and the version floor. Instances are single-use: create one per refresh.
 */
export class TrustedMetadataSet {
  private root?: VerifiedRoot;
  private timestamp?: Verified<Timestamp>;
  private snapshot?: Verified<Snapshot>;
  private targets?: Verified<Targets>;
  private readonly delegations = new Map<string, VerifiedDelegation>();
  private readonly skipped = new Map<string, TufError>();

  /**
   * @param previous what an earlier set verified. Files whose bytes the new chain declares
   * unchanged are taken from it without re-verifying signatures, but only while the root is
   * the same one, and always re-checked for expiry and rollback.
   */
  constructor(
    readonly gun: string,
    readonly now: Date,
    readonly floor: VersionFloor = new Map(),
    private readonly previous?: TrustedParts,
  ) {}

  private reusable<T>(prev: Verified<T> | undefined, declared: FileMeta | undefined): prev is Verified<T> {
    if (!prev || !declared || !this.previous || !this.root) return false;
    if (this.previous.root.sha256 !== this.root.sha256) return false;
    const sha = declared.hashes.get('sha256');
    return declared.length === prev.length && sha !== undefined && sha.toString('hex') === prev.sha256;
  }

  /** Take the previous snapshot if the timestamp still declares exactly its bytes. */
  tryReuseSnapshot(): boolean {
    const ts = this.need(this.timestamp, 'snapshot', 'timestamp');
    const prev = this.previous?.snapshot;
    if (!this.reusable(prev, ts.meta.snapshot)) return false;
    notRolledBack('snapshot', prev.meta.version, this.floor);
    notExpired('snapshot', prev.meta, this.now);
    checkAgainstMeta(this.root!.bytes, prev.meta.meta.get('root'), 'root', 'snapshot');
    this.snapshot = prev;
    return true;
  }

  tryReuseTargets(): boolean {
    const snap = this.need(this.snapshot, 'targets', 'snapshot');
    const prev = this.previous?.targets;
    if (!this.reusable(prev, snap.meta.meta.get('targets'))) return false;
    notRolledBack('targets', prev.meta.version, this.floor);
    notExpired('targets', prev.meta, this.now);
    this.targets = prev;
    return true;
  }

  /** Reuse a delegation verified before, if the snapshot declares the same bytes and the parent delegates it the same way. */
  tryReuseDelegation(role: DelegatedRole, parent: string): VerifiedDelegation | TufError | undefined {
    const snap = this.need(this.snapshot, role.name, 'snapshot');
    const prev = this.previous?.delegations.get(role.name);
    const parentNow = parent === 'targets' ? this.targets : this.delegations.get(parent);
    const parentBefore = parent === 'targets' ? this.previous?.targets : this.previous?.delegations.get(parent);
    // Keys, threshold and paths of a delegation live in its parent: reuse only under an unchanged parent.
    if (!parentNow || !parentBefore || parentNow.sha256 !== parentBefore.sha256) return undefined;
    if (!this.reusable(prev, snap.meta.meta.get(role.name))) return undefined;
    notRolledBack(role.name, prev.meta.version, this.floor);
    if (prev.meta.expires.getTime() <= this.now.getTime()) {
      const e = new TufError('expired', role.name, `expired at ${prev.meta.expiresText}`);
      this.skipped.set(role.name, e);
      return e;
    }
    // Paths are re-restricted under the parent as trusted now: an ancestor may have narrowed them.
    const parentPaths = parent === 'targets' ? [''] : this.delegations.get(parent)!.paths;
    const reused: VerifiedDelegation = { ...prev, paths: restrictPaths(role.paths, parentPaths) };
    this.delegations.set(role.name, reused);
    return reused;
  }

  /** The newest root after walking the chain; checked for expiry, certificate validity and rollback. */
  setRoot(root: VerifiedRoot): void {
    if (this.timestamp) throw new Error('root must be set before timestamp');
    const env = parseEnvelope(root.bytes, 'root', 'Root');
    notExpired('root', root.meta, this.now);
    notRolledBack('root', root.meta.version, this.floor);
    verifyRootSelf(root.meta, env, this.gun, this.now);
    this.root = root;
  }

  updateTimestamp(bytes: Uint8Array): Verified<Timestamp> {
    const root = this.need(this.root, 'timestamp', 'root');
    capped(bytes, MAX_TIMESTAMP_BYTES, 'timestamp');
    const env = parseEnvelope(bytes, 'timestamp', 'Timestamp');
    const meta = parseTimestamp(env);
    verifyThreshold(env, root.meta.keys, root.meta.roles.timestamp);
    notRolledBack('timestamp', meta.version, this.floor);
    notExpired('timestamp', meta, this.now);
    this.timestamp = { meta, sha256: hex(sha256(bytes)), length: bytes.length };
    return this.timestamp;
  }

  updateSnapshot(bytes: Uint8Array): Verified<Snapshot> {
    const root = this.need(this.root, 'snapshot', 'root');
    const ts = this.need(this.timestamp, 'snapshot', 'timestamp');
    capped(bytes, MAX_SNAPSHOT_BYTES, 'snapshot');
    const digest = checkAgainstMeta(bytes, ts.meta.snapshot, 'snapshot', 'timestamp');
    const env = parseEnvelope(bytes, 'snapshot', 'Snapshot');
    const meta = parseSnapshot(env);
    verifyThreshold(env, root.meta.keys, root.meta.roles.snapshot);
    notRolledBack('snapshot', meta.version, this.floor);
    notExpired('snapshot', meta, this.now);
    // The snapshot vouches for the root in force: a root we walked to but the repository
    // has since replaced (or a stale one served to us) shows up here.
    checkAgainstMeta(root.bytes, meta.meta.get('root'), 'root', 'snapshot');
    this.snapshot = { meta, sha256: digest, length: bytes.length };
    return this.snapshot;
  }

  updateTargets(bytes: Uint8Array): Verified<Targets> {
    const root = this.need(this.root, 'targets', 'root');
    const snap = this.need(this.snapshot, 'targets', 'snapshot');
    capped(bytes, MAX_TARGETS_BYTES, 'targets');
    const digest = checkAgainstMeta(bytes, snap.meta.meta.get('targets'), 'targets', 'snapshot');
    const env = parseEnvelope(bytes, 'targets', 'Targets');
    const meta = parseTargets(env);
    verifyThreshold(env, root.meta.keys, root.meta.roles.targets);
    notRolledBack('targets', meta.version, this.floor);
    notExpired('targets', meta, this.now);
    this.targets = { meta, sha256: digest, length: bytes.length };
    return this.targets;
  }

  /**
   * Delegations in pre-order, as the official client walks them: parent before child,
   * children in the order listed. Returns the roles to fetch next (children of `name`).
   */
  delegatedRoles(parent: string): DelegatedRole[] {
    const p = parent === 'targets' ? this.targets : this.delegations.get(parent);
    return p ? p.meta.delegations : [];
  }

  /**
   * Verify a delegation file. A hash or length mismatch against the snapshot is fatal
   * (thrown); an expired or under-signed delegation is skipped with its subtree, and the
   * reason kept so a lookup that needed it can say why (returned as a TufError).
   */
  updateDelegation(role: DelegatedRole, parent: string, bytes: Uint8Array): VerifiedDelegation | TufError {
    const snap = this.need(this.snapshot, role.name, 'snapshot');
    const parentMeta = parent === 'targets' ? this.targets : this.delegations.get(parent);
    if (!parentMeta) throw new TufError('delegation', role.name, `parent ${parent} is not trusted`);
    if (!parentMeta.meta.delegations.includes(role)) throw new TufError('delegation', role.name, `not delegated by ${parent}`);
    capped(bytes, MAX_TARGETS_BYTES, role.name);
    const digest = checkAgainstMeta(bytes, snap.meta.meta.get(role.name), role.name, 'snapshot');
    const env = parseEnvelope(bytes, role.name, 'Targets');
    const meta = parseTargets(env);
    try {
      verifyThreshold(env, parentMeta.meta.delegationKeys, role, `${role.name} (keys delegated by ${parent})`);
      notExpired(role.name, meta, this.now);
    } catch (e) {
      if (!(e instanceof TufError)) throw e;
      this.skipped.set(role.name, e);
      return e;
    }
    notRolledBack(role.name, meta.version, this.floor);
    const parentPaths = parent === 'targets' ? [''] : this.delegations.get(parent)!.paths;
    const verified: VerifiedDelegation = {
      name: role.name,
      parent,
      threshold: role.threshold,
      paths: restrictPaths(role.paths, parentPaths),
      meta,
      sha256: digest,
      length: bytes.length,
    };
    this.delegations.set(role.name, verified);
    return verified;
  }

  currentTimestamp(): Verified<Timestamp> {
    return this.need(this.timestamp, 'snapshot', 'timestamp');
  }

  currentSnapshot(): Verified<Snapshot> {
    return this.need(this.snapshot, 'targets', 'snapshot');
  }

  /** Everything trusted, once the top-level chain is complete. */
  result(): TrustedParts {
    return {
      root: this.need(this.root, 'result', 'root'),
      timestamp: this.need(this.timestamp, 'result', 'timestamp'),
      snapshot: this.need(this.snapshot, 'result', 'snapshot'),
      targets: this.need(this.targets, 'result', 'targets'),
      delegations: new Map(this.delegations),
      skipped: new Map(this.skipped),
    };
  }

  private need<T>(v: T | undefined, step: string, missing: string): T {
    if (v === undefined) throw new Error(`${step} cannot be verified before ${missing}`);
    return v;
  }
}

/** A child may only sign under paths that one of its parent's paths also covers. */
export function restrictPaths(child: string[], parent: string[]): string[] {
  return child.filter((c) => parent.some((p) => c.startsWith(p)));
}
