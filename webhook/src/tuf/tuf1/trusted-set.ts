/**
 * The TUF 1.0 client workflow's verification steps (specification §5.2-§5.6), in the order
 * the specification gives, on bytes the caller fetched: python-tuf's TrustedMetadataSet.
 * Nothing here does I/O or reads a clock: `now` and the version floors come in, verified
 * metadata or a TufError comes out, and nothing is kept from a file that failed.
 */
import { sha256 } from '../crypto.js';
import { checkDeclaredFile } from '../declared-file.js';
import { TufError } from '../errors.js';
import { notExpired } from '../expiry.js';
import { notRolledBack } from '../version-floor.js';
import { delegatedRoleNamed } from './delegation.js';
import {
  parseSpecEnvelope,
  parseSpecRoot,
  parseSpecSnapshot,
  parseSpecTargets,
  parseSpecTimestamp,
  type MetaFile,
  type RoleKeys,
  type SpecRoot,
  type SpecSnapshot,
  type SpecTargets,
  type SpecTimestamp,
} from './metadata.js';
import { verifySpecThreshold } from './threshold.js';

/**
 * Highest version trusted so far per role (high-water marks), from earlier loads: "root" as
 * it is, timestamp and snapshot under epochKey(), targets roles under targetsMarkKey(): their
 * marks belong to the timestamp and snapshot keys of the root they were trusted under.
 */
export type SpecVersionFloor = ReadonlyMap<string, number>;

/**
 * §5.3.11: when the timestamp or snapshot keys rotate, the client forgets their versions, so
 * a repository recovers from a fast-forward attack (a stolen key that signed version 2^31).
 * Keying their marks by the role keys that signed them does exactly that, and keeps the
 * marks monotonic (a store shared by replicas only ever raises them).
 */
export function epochKey(role: 'timestamp' | 'snapshot', root: Pick<SpecRoot, 'roles'>): string {
  return `${role}@${keysEpoch(root)}`;
}

/**
 * §5.5.5 checks targets versions against the trusted snapshot's listing, and §5.3.11 deletes
 * that snapshot when the timestamp or snapshot keys rotate: a targets role's mark belongs to
 * the same keys as theirs, so a repository also recovers from a fast-forwarded targets role.
 */
export function targetsMarkKey(role: string, root: Pick<SpecRoot, 'roles'>): string {
  return `${role}@${keysEpoch(root)}`;
}

function keysEpoch(root: Pick<SpecRoot, 'roles'>): string {
  const part = (r: RoleKeys) => `${[...r.keyids].sort().join(',')}/${r.threshold}`;
  return Buffer.from(sha256(Buffer.from(`${part(root.roles.timestamp)};${part(root.roles.snapshot)}`))).toString('hex');
}

/** Marks that are not a targets role's (for §5.5.5). Delegated names of this form are refused when parsed. */
export const NOT_TARGETS_MARK = /^(root|(timestamp|snapshot)@[0-9a-f]{64})$/;

/**
 * §5.5.2 / §5.6.2 (declared-file.ts): length and every hash, when the parent declares them,
 * must match the bytes. TUF 1.0 makes both optional, and refuses a hash it cannot check.
 * The same rule holds for a target file and its entry (§5.7.3), which always declares both.
 */
export function checkMetaFile(bytes: Uint8Array, meta: Pick<MetaFile, 'length' | 'hashes'>, role: string, declaredBy: string): void {
  const declared = { ...(meta.length !== undefined ? { length: meta.length } : {}), hashes: Object.entries(meta.hashes ?? {}) };
  const { unchecked } = checkDeclaredFile(bytes, declared, role, declaredBy, (alg, by) => `${alg} of the file differs from what ${by} declares`);
  if (unchecked.length > 0) throw new TufError('hash-mismatch', role, `${declaredBy} declares a ${unchecked[0]} hash, which this client cannot check`);
}

export class SpecTrustedSet {
  private currentRoot: SpecRoot;
  private timestampMeta?: SpecTimestamp;
  private snapshotMeta?: SpecSnapshot;
  private readonly targetsByRole = new Map<string, SpecTargets>();
  private readonly floor: Map<string, number>;
  private rootsChecked = false;
  /** §5.3.11: timestamp or snapshot keys changed during this update: earlier copies no longer count. */
  private topKeysRotated = false;
  private storedTimestamp?: SpecTimestamp;

  /**
   * §5.2: the trusted root (from the policy or a previous load) must sign itself by its own
   * threshold. It may be expired: newer roots may follow (§5.3.10 checks the final one).
   */
  constructor(trustedRootBytes: Uint8Array, private readonly now: Date, floor: SpecVersionFloor = new Map()) {
    const env = parseSpecEnvelope(trustedRootBytes, 'root', 'root');
    const root = parseSpecRoot(env);
    try {
      verifySpecThreshold(env, root.keys, root.roles.root);
    } catch (e) {
      if (!(e instanceof TufError)) throw e;
      throw new TufError('untrusted-root', 'root', `the trusted root (version ${root.version}) is not signed by its own root keys: ${e.message}`);
    }
    this.currentRoot = root;
    this.floor = new Map(floor);
  }

  get root(): SpecRoot {
    return this.currentRoot;
  }

  get timestamp(): SpecTimestamp | undefined {
    return this.timestampMeta;
  }

  get snapshot(): SpecSnapshot | undefined {
    return this.snapshotMeta;
  }

  targets(role = 'targets'): SpecTargets | undefined {
    return this.targetsByRole.get(role);
  }

  /** Every targets role trusted so far, top-level targets first. */
  loadedTargets(): ReadonlyMap<string, SpecTargets> {
    return this.targetsByRole;
  }

  /** §5.3.3-§5.3.9: the next version of root, signed by the old and the new root keys. */
  updateRoot(bytes: Uint8Array): SpecRoot {
    if (this.timestampMeta) throw new Error('root cannot change after timestamp is trusted');
    const old = this.currentRoot;
    const role = `root v${old.version + 1}`;
    const env = parseSpecEnvelope(bytes, role, 'root');
    const next = parseSpecRoot(env);
    verifySpecThreshold(env, old.keys, old.roles.root, `root v${old.version}`); // §5.3.4 old keys
    if (next.version !== old.version + 1) {
      throw new TufError('rollback', role, `file holds root version ${next.version}, expected ${old.version + 1}`); // §5.3.5
    }
    verifySpecThreshold(env, next.keys, next.roles.root, `root v${next.version}`); // §5.3.4 new keys
    // §5.3.11: after a timestamp or snapshot key rotation the stored copies of those roles
    // (a persistent client's) no longer count; the marks of the old keys bind nothing either.
    if (keysEpoch(old) !== keysEpoch(next)) this.topKeysRotated = true;
    this.currentRoot = next;
    return next;
  }

  /** §5.3.10 and the root's own rollback floor: the final root must be fresh and not older than trusted. */
  finishRootUpdates(): void {
    const root = this.currentRoot;
    notRolledBack('root', root.version, this.floor.get('root'), `newest root served is version ${root.version},`);
    notExpired('root', root, this.now);
    this.rootsChecked = true;
  }

  /**
   * A client that keeps its trusted files (python-tuf's metadata directory) starts from them:
   * the stored timestamp, if the final root's timestamp keys sign it, is "the trusted
   * timestamp" of §5.4.3 (expired or not: it only sets floors). Ignored after a timestamp or
   * snapshot key rotation (§5.3.11). Returns what it trusted, or undefined when it was ignored.
   */
  storedTimestampFile(bytes: Uint8Array): SpecTimestamp | undefined {
    if (!this.rootsChecked) this.finishRootUpdates();
    if (this.timestampMeta) throw new Error('the stored timestamp comes before the new one');
    if (this.topKeysRotated) return undefined;
    const env = parseSpecEnvelope(bytes, 'stored timestamp', 'timestamp');
    const ts = parseSpecTimestamp(env);
    verifySpecThreshold(env, this.currentRoot.keys, this.currentRoot.roles.timestamp);
    this.raiseFloor(epochKey('timestamp', this.currentRoot), ts.version);
    this.raiseFloor(epochKey('snapshot', this.currentRoot), ts.snapshot.version);
    this.storedTimestamp = ts;
    return ts;
  }

  /**
   * The stored snapshot, if the final root's snapshot keys sign it, is "the trusted snapshot"
   * of §5.5.5: every targets file it lists is a floor for the new snapshot. Whether it is
   * also current is for updateSnapshot to decide. Ignored after a key rotation (§5.3.11).
   */
  storedSnapshotFile(bytes: Uint8Array): SpecSnapshot | undefined {
    if (this.snapshotMeta) throw new Error('the stored snapshot comes before the new one');
    if (this.topKeysRotated) return undefined;
    const env = parseSpecEnvelope(bytes, 'stored snapshot', 'snapshot');
    const snap = parseSpecSnapshot(env);
    verifySpecThreshold(env, this.currentRoot.keys, this.currentRoot.roles.snapshot);
    for (const [role, meta] of snap.meta) {
      if (role !== 'root' && role !== 'timestamp' && role !== 'snapshot') this.raiseFloor(targetsMarkKey(role, this.currentRoot), meta.version);
    }
    return snap;
  }

  private raiseFloor(role: string, version: number): void {
    this.floor.set(role, Math.max(this.floor.get(role) ?? 0, version));
  }

  /**
   * §5.4: timestamp, signed by the root's timestamp keys, never older than trusted. A new file
   * of the same version as the stored timestamp is no news: the stored one stays trusted (as
   * python-tuf and go-tuf do), and is what this returns.
   */
  updateTimestamp(bytes: Uint8Array): SpecTimestamp {
    if (!this.rootsChecked) this.finishRootUpdates();
    const env = parseSpecEnvelope(bytes, 'timestamp', 'timestamp');
    let ts = parseSpecTimestamp(env);
    verifySpecThreshold(env, this.currentRoot.keys, this.currentRoot.roles.timestamp); // §5.4.2
    notRolledBack('timestamp', ts.version, this.floor.get(epochKey('timestamp', this.currentRoot))); // §5.4.3.1
    if (this.storedTimestamp && ts.version === this.storedTimestamp.version) ts = this.storedTimestamp;
    notRolledBack('timestamp', ts.snapshot.version, this.floor.get(epochKey('snapshot', this.currentRoot)), `names snapshot version ${ts.snapshot.version},`); // §5.4.3.2
    notExpired('timestamp', ts, this.now); // §5.4.4
    this.timestampMeta = ts;
    return ts;
  }

  /** §5.5: snapshot, bound to the timestamp's declaration, no targets role rolled back. */
  updateSnapshot(bytes: Uint8Array): SpecSnapshot {
    const ts = this.timestampMeta;
    if (!ts) throw new Error('snapshot before timestamp');
    checkMetaFile(bytes, ts.snapshot, 'snapshot', 'timestamp'); // §5.5.2
    const env = parseSpecEnvelope(bytes, 'snapshot', 'snapshot');
    const snap = parseSpecSnapshot(env);
    verifySpecThreshold(env, this.currentRoot.keys, this.currentRoot.roles.snapshot); // §5.5.3
    if (snap.version !== ts.snapshot.version) {
      throw new TufError('rollback', 'snapshot', `version ${snap.version}, but timestamp names version ${ts.snapshot.version}`); // §5.5.4
    }
    const epoch = `@${keysEpoch(this.currentRoot)}`;
    for (const [mark, min] of this.floor) {
      // Marks trusted under other timestamp/snapshot keys bind nothing any more (§5.3.11).
      if (NOT_TARGETS_MARK.test(mark) || !mark.endsWith(epoch)) continue;
      const role = mark.slice(0, -epoch.length);
      const listed = snap.meta.get(role);
      // §5.5.5: every targets file trusted before is still listed, at no older version.
      if (!listed) throw new TufError('rollback', 'snapshot', `no longer lists ${role}.json, which was trusted at version ${min}`);
      notRolledBack('snapshot', listed.version, min, `lists ${role}.json at version ${listed.version},`);
    }
    notExpired('snapshot', snap, this.now); // §5.5.6
    this.snapshotMeta = snap;
    return snap;
  }

  /**
   * §5.6: top-level targets (parent "root") or a delegated role (parent: the targets role
   * that delegates to it), bound to the snapshot's declaration and signed by the keys the
   * parent names.
   */
  updateTargets(bytes: Uint8Array, role = 'targets', parent = 'root', now = this.now): SpecTargets {
    const snap = this.snapshotMeta;
    if (!snap) throw new Error('targets before snapshot');
    const keys = this.keysFor(role, parent);
    const meta = snap.meta.get(role);
    if (!meta) throw new TufError('not-found', role, `snapshot does not list ${role}.json`);
    checkMetaFile(bytes, meta, role, 'snapshot'); // §5.6.2
    const env = parseSpecEnvelope(bytes, role, 'targets');
    const targets = parseSpecTargets(env);
    verifySpecThreshold(env, keys.keys, keys.role, `${role} (delegated by ${parent})`); // §5.6.3
    if (targets.version !== meta.version) {
      throw new TufError('rollback', role, `version ${targets.version}, but snapshot names version ${meta.version}`); // §5.6.4 (version)
    }
    notExpired(role, targets, now); // §5.6.5
    this.targetsByRole.set(role, targets);
    return targets;
  }

  private keysFor(role: string, parent: string): { keys: SpecRoot['keys']; role: RoleKeys } {
    if (parent === 'root') {
      if (role !== 'targets') throw new TufError('delegation', role, 'only targets is delegated by root');
      return { keys: this.currentRoot.keys, role: this.currentRoot.roles.targets };
    }
    const delegator = this.targetsByRole.get(parent);
    if (!delegator) throw new Error(`${parent} must be trusted before ${role}`);
    const delegated = delegator.delegations ? delegatedRoleNamed(delegator.delegations, role) : undefined;
    if (!delegator.delegations || !delegated) throw new TufError('delegation', role, `${parent} does not delegate to ${role}`);
    return { keys: delegator.delegations.keys, role: delegated };
  }

  /** Whether what the top-level roles say still holds at `now` (cached trust data ages). */
  assertFresh(now: Date): void {
    notExpired('root', this.currentRoot, now);
    if (this.timestampMeta) notExpired('timestamp', this.timestampMeta, now);
    if (this.snapshotMeta) notExpired('snapshot', this.snapshotMeta, now);
    const top = this.targetsByRole.get('targets');
    if (top) notExpired('targets', top, now);
  }

  /** The earliest expiry of the top-level roles (delegations are checked when used). */
  get expires(): Date {
    const all = [this.currentRoot, this.timestampMeta, this.snapshotMeta, this.targetsByRole.get('targets')];
    return new Date(Math.min(...all.filter((m) => m !== undefined).map((m) => m.expires.getTime())));
  }

  /** The high-water marks to keep after this load (the caller persists them). */
  versionFloor(): Map<string, number> {
    const out = new Map(this.floor);
    const raise = (role: string, v: number) => out.set(role, Math.max(out.get(role) ?? 0, v));
    raise('root', this.currentRoot.version);
    if (this.timestampMeta) raise(epochKey('timestamp', this.currentRoot), this.timestampMeta.version);
    if (this.snapshotMeta) raise(epochKey('snapshot', this.currentRoot), this.snapshotMeta.version);
    for (const [role, t] of this.targetsByRole) raise(targetsMarkKey(role, this.currentRoot), t.version);
    return out;
  }
}
