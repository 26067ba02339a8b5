/**
 * The Notary dialect's verification steps in the client order of the Notary/TUF 0.x
 * specification (FORMAT.md §7; python-tuf's TrustedMetadataSet): root, timestamp, snapshot,
 * targets, then the delegations in pre-order. The rules each step applies have their own
 * homes: root trust in root-trust.ts, delegation names, paths and the role map in
 * delegation.ts, and the rules both dialects share in expiry.ts, version-floor.ts,
 * declared-file.ts and threshold.ts.
 */
import { capped, MAX_SNAPSHOT_BYTES, MAX_TARGETS_BYTES, MAX_TIMESTAMP_BYTES } from './caps.js';
import { sha256 } from './crypto.js';
import { checkDeclaredFile } from './declared-file.js';
import { restrictPaths, roleMap, topLevelTargets, type RoleMap } from './delegation.js';
import { TufError } from './errors.js';
import { expiryRefusal, notExpired } from './expiry.js';
import {
  parseEnvelope,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  type DelegatedRole,
  type Envelope,
  type FileMeta,
  type Root,
  type Snapshot,
  type Targets,
  type Timestamp,
} from './metadata.js';
import { verifyRootSelf } from './root-trust.js';
import { verifyThreshold } from './threshold.js';
import { notRolledBack, type VersionFloor } from './version-floor.js';

export interface Verified<T> {
  readonly meta: T;
  /** hex sha256 of the exact bytes, so a cache can tell identical files apart from new ones. */
  readonly sha256: string;
  readonly length: number;
}

export interface VerifiedRoot extends Verified<Root> {
  readonly bytes: Uint8Array;
}

/** A targets role as its delegator delegates it (top-level targets: by root, every path). */
export interface VerifiedDelegation extends Verified<Targets> {
  readonly name: string;
  readonly parent: string;
  readonly threshold: number;
  /** The role's paths restricted to what its parent may delegate. */
  readonly paths: string[];
}

/**
 * What one load trusted, in the form version stores, the CLI and other threads read:
 * top-level targets apart from the delegations. Lookups go through its role map (delegation.ts).
 */
export interface TrustedParts {
  root: VerifiedRoot;
  timestamp: Verified<Timestamp>;
  snapshot: Verified<Snapshot>;
  targets: Verified<Targets>;
  delegations: Map<string, VerifiedDelegation>;
  /** Delegations present in the snapshot that were not trusted, and why (expired, under-signed). */
  skipped: Map<string, TufError>;
}

const notaryHashMismatch = (alg: string, declaredBy: string) => `${alg} differs from the hash ${declaredBy} declares`;

/** Notary declares a length and at least one sha256/sha512 hash for every file; others are ignored. */
export function checkAgainstMeta(bytes: Uint8Array, meta: FileMeta | undefined, role: string, declaredBy: string): string {
  if (!meta) throw new TufError('not-found', role, `${declaredBy} does not list ${role}`);
  const hashes = [...meta.hashes].map(([alg, digest]) => [alg, digest.toString('hex')] as const);
  const result = checkDeclaredFile(bytes, { length: meta.length, hashes }, role, declaredBy, notaryHashMismatch);
  if (result.checked === 0) throw new TufError('hash-mismatch', role, `${declaredBy} declares no sha256/sha512 hash for ${role}`);
  return Buffer.from(result.sha256 ?? sha256(bytes)).toString('hex');
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
  /** Top-level targets first, then each delegation once trusted. */
  private readonly roles = new Map<string, VerifiedDelegation>();
  private readonly skipped = new Map<string, TufError>();
  private readonly previousRoles: RoleMap | undefined;

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
  ) {
    this.previousRoles = previous && roleMap(previous);
  }

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
    this.notRolledBack('snapshot', prev.meta.version);
    notExpired('snapshot', prev.meta, this.now);
    checkAgainstMeta(this.root!.bytes, prev.meta.meta.get('root'), 'root', 'snapshot');
    this.snapshot = prev;
    return true;
  }

  tryReuseTargets(): boolean {
    const snap = this.need(this.snapshot, 'targets', 'snapshot');
    const prev = this.previousRoles?.get('targets');
    if (!this.reusable(prev, snap.meta.meta.get('targets'))) return false;
    this.notRolledBack('targets', prev.meta.version);
    notExpired('targets', prev.meta, this.now);
    this.roles.set('targets', prev);
    return true;
  }

  /** Reuse a delegation verified before, if the snapshot declares the same bytes and the parent delegates it the same way. */
  tryReuseDelegation(role: DelegatedRole, parent: string): VerifiedDelegation | TufError | undefined {
    const snap = this.need(this.snapshot, role.name, 'snapshot');
    const prev = this.previousRoles?.get(role.name);
    const parentNow = this.roles.get(parent);
    const parentBefore = this.previousRoles?.get(parent);
    // Keys, threshold and paths of a delegation live in its parent: reuse only under an unchanged parent.
    if (!parentNow || !parentBefore || parentNow.sha256 !== parentBefore.sha256) return undefined;
    if (!this.reusable(prev, snap.meta.meta.get(role.name))) return undefined;
    this.notRolledBack(role.name, prev.meta.version);
    const expired = expiryRefusal(role.name, prev.meta, this.now);
    if (expired) {
      this.skipped.set(role.name, expired);
      return expired;
    }
    // Paths are re-restricted under the parent as trusted now: an ancestor may have narrowed them.
    const reused: VerifiedDelegation = { ...prev, paths: restrictPaths(role.paths, parentNow.paths) };
    this.roles.set(role.name, reused);
    return reused;
  }

  /** The newest root after walking the chain; checked for expiry, certificate validity and rollback. */
  setRoot(root: VerifiedRoot): void {
    if (this.timestamp) throw new Error('root must be set before timestamp');
    const env = parseEnvelope(root.bytes, 'root', 'Root');
    notExpired('root', root.meta, this.now);
    this.notRolledBack('root', root.meta.version);
    verifyRootSelf(root.meta, env, this.gun, this.now);
    this.root = root;
  }

  updateTimestamp(bytes: Uint8Array): Verified<Timestamp> {
    const root = this.need(this.root, 'timestamp', 'root');
    capped(bytes, MAX_TIMESTAMP_BYTES, 'timestamp');
    const env = parseEnvelope(bytes, 'timestamp', 'Timestamp');
    const meta = parseTimestamp(env);
    verifyThreshold(env, root.meta.keys, root.meta.roles.timestamp);
    this.notRolledBack('timestamp', meta.version);
    notExpired('timestamp', meta, this.now);
    this.timestamp = { meta, sha256: Buffer.from(sha256(bytes)).toString('hex'), length: bytes.length };
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
    this.notRolledBack('snapshot', meta.version);
    notExpired('snapshot', meta, this.now);
    // The snapshot vouches for the root in force: a root we walked to but the repository
    // has since replaced (or a stale one served to us) shows up here.
    checkAgainstMeta(root.bytes, meta.meta.get('root'), 'root', 'snapshot');
    this.snapshot = { meta, sha256: digest, length: bytes.length };
    return this.snapshot;
  }

  updateTargets(bytes: Uint8Array): Verified<Targets> {
    const root = this.need(this.root, 'targets', 'root');
    const { env, file } = this.targetsFile('targets', bytes);
    verifyThreshold(env, root.meta.keys, root.meta.roles.targets);
    this.notRolledBack('targets', file.meta.version);
    notExpired('targets', file.meta, this.now);
    const targets = topLevelTargets(root.meta, file);
    this.roles.set('targets', targets);
    return targets;
  }

  /**
   * Delegations in pre-order, as the official client walks them: parent before child,
   * children in the order listed. Returns the roles to fetch next (children of `name`).
   */
  delegatedRoles(parent: string): DelegatedRole[] {
    return this.roles.get(parent)?.meta.delegations ?? [];
  }

  /**
   * Verify a delegation file. A hash or length mismatch against the snapshot is fatal
   * (thrown); an expired or under-signed delegation is skipped with its subtree, and the
   * reason kept so a lookup that needed it can say why (returned as a TufError).
   */
  updateDelegation(role: DelegatedRole, parent: string, bytes: Uint8Array): VerifiedDelegation | TufError {
    this.need(this.snapshot, role.name, 'snapshot');
    const parentRole = this.roles.get(parent);
    if (!parentRole) throw new TufError('delegation', role.name, `parent ${parent} is not trusted`);
    if (!parentRole.meta.delegations.includes(role)) throw new TufError('delegation', role.name, `not delegated by ${parent}`);
    const { env, file } = this.targetsFile(role.name, bytes);
    try {
      verifyThreshold(env, parentRole.meta.delegationKeys, role, `${role.name} (keys delegated by ${parent})`);
      notExpired(role.name, file.meta, this.now);
    } catch (e) {
      if (!(e instanceof TufError)) throw e;
      this.skipped.set(role.name, e);
      return e;
    }
    this.notRolledBack(role.name, file.meta.version);
    const verified: VerifiedDelegation = {
      name: role.name,
      parent,
      threshold: role.threshold,
      paths: restrictPaths(role.paths, parentRole.paths),
      meta: file.meta,
      sha256: file.sha256,
      length: file.length,
    };
    this.roles.set(role.name, verified);
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
    const [targets, ...delegations] = this.roles;
    return {
      root: this.need(this.root, 'result', 'root'),
      timestamp: this.need(this.timestamp, 'result', 'timestamp'),
      snapshot: this.need(this.snapshot, 'result', 'snapshot'),
      targets: this.need(targets?.[1], 'result', 'targets'),
      delegations: new Map(delegations),
      skipped: new Map(this.skipped),
    };
  }

  /** A targets file (top-level or delegated) checked against the snapshot's declaration and parsed; not yet trusted. */
  private targetsFile(role: string, bytes: Uint8Array): { env: Envelope; file: Verified<Targets> } {
    const snap = this.need(this.snapshot, role, 'snapshot');
    capped(bytes, MAX_TARGETS_BYTES, role);
    const digest = checkAgainstMeta(bytes, snap.meta.meta.get(role), role, 'snapshot');
    const env = parseEnvelope(bytes, role, 'Targets');
    return { env, file: { meta: parseTargets(env), sha256: digest, length: bytes.length } };
  }

  private notRolledBack(role: string, version: number): void {
    notRolledBack(role, version, this.floor.get(role));
  }

  private need<T>(v: T | undefined, step: string, missing: string): T {
    if (v === undefined) throw new Error(`${step} cannot be verified before ${missing}`);
    return v;
  }
}
