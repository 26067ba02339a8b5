/**
 * The I/O half of the TUF 1.0 client (python-tuf's Updater): fetches files in the order of
 * the specification's client workflow (§5.2-§5.6) and hands every byte to tuf/tuf1's
 * SpecTrustedSet, which alone decides trust. Delegated roles are fetched when a target
 * lookup's pre-order walk (§5.6.7) reaches them, once per repository object.
 */
import { TufError, type RootPin } from '../tuf/index.js';
import { checkPinnedSpecRoot } from '../tuf/tuf1/pinning.js';
import { notExpired } from '../tuf/expiry.js';
import { SpecTrustedSet, type SpecVersionFloor } from '../tuf/tuf1/trusted-set.js';
import { preorderWalk, prefixWalk, type RoleVisit } from '../tuf/tuf1/walk.js';
import type { SpecTargets, TargetFile } from '../tuf/tuf1/metadata.js';
import { roleFile, rootFile } from './file-names.js';
import { FetchError, type SpecSource } from './source.js';

/** Every limit of the client in one place (go-tuf's UpdaterConfig); defaults as python-tuf's. */
export interface SpecUpdaterConfig {
  /** §5.3.3: how many newer roots one refresh may walk. */
  maxRootRotations: number;
  /** §5.6.7: how many targets roles one lookup may visit. */
  maxDelegations: number;
  /** Caps for files whose length no trusted metadata declares (§5.2, §5.4.1). */
  rootMaxBytes: number;
  timestampMaxBytes: number;
  snapshotMaxBytes: number;
  targetsMaxBytes: number;
}

export const DEFAULT_SPEC_CONFIG: Readonly<SpecUpdaterConfig> = Object.freeze({
  maxRootRotations: 32,
  maxDelegations: 32,
  rootMaxBytes: 512_000,
  timestampMaxBytes: 16_384,
  snapshotMaxBytes: 2_000_000,
  targetsMaxBytes: 5_000_000,
});

/** How the first root becomes trusted: a root.json the admin trusts, or pinned keys that sign 1.root.json. */
export type SpecBootstrap = { trustedRoot: Uint8Array } | { pin: RootPin };

/**
 * A client's own copy of the metadata it trusts (python-tuf's metadata directory), by role
 * name. Stored files are read before fetching and are only candidates: each is verified again
 * (under the final root) before it counts. `write` receives the exact bytes of a file right
 * after it was verified, never anything else.
 */
export interface SpecLocalMetadata {
  /** The stored file of `role`, or undefined when there is none (or it cannot be read). */
  read(role: string): Promise<Uint8Array | undefined>;
  write(role: string, bytes: Uint8Array): Promise<void>;
}

export interface SpecRefreshOptions {
  bootstrap: SpecBootstrap;
  /** Stored metadata to start from and to keep up to date (a persistent client). */
  local?: SpecLocalMetadata;
  now: Date;
  /** The clock for roles loaded later by lookups, and for their expiry; default: real time. */
  clock?: () => Date;
  /** High-water marks from earlier loads (shared by replicas). */
  floor?: SpecVersionFloor;
  signal?: AbortSignal;
  config?: Partial<SpecUpdaterConfig>;
}

/** The result of a lookup: the target and the role whose signed metadata lists it. */
export interface FoundTarget {
  readonly target: TargetFile;
  readonly role: string;
}

export async function refreshSpecRepository(source: SpecSource, opts: SpecRefreshOptions): Promise<SpecRepository> {
  const config = { ...DEFAULT_SPEC_CONFIG, ...opts.config };
  const local = opts.local;
  const fetch = (role: string, file: string, maxBytes: number, fallback?: string) =>
    source.fetch({ role, file, maxBytes, ...(fallback ? { fallback } : {}) }, opts.signal);

  // §5.2: the trusted root. With pinned keys, 1.root.json is the root they must sign.
  let trusted: Uint8Array;
  if ('trustedRoot' in opts.bootstrap) {
    trusted = opts.bootstrap.trustedRoot;
  } else {
    trusted = await fetch('root', rootFile(1), config.rootMaxBytes);
    checkPinnedSpecRoot(trusted, opts.bootstrap.pin);
  }
  const set = new SpecTrustedSet(trusted, opts.now, opts.floor);

  // §5.3.3-§5.3.9: walk N.root.json upward until the repository has no newer one.
  for (let i = 0; i < config.maxRootRotations; i++) {
    let bytes: Uint8Array;
    try {
      bytes = await fetch('root', rootFile(set.root.version + 1), config.rootMaxBytes);
    } catch (e) {
      if (e instanceof FetchError && e.kind === 'not-found') break;
      throw e;
    }
    set.updateRoot(bytes);
    // Each root is kept as soon as it is trusted, as python-tuf does: a later failure (even
    // the final root's expiry, §5.3.10) does not undo a verified rotation.
    await local?.write('root', bytes);
  }
  set.finishRootUpdates();

  // §5.4: the stored timestamp, when it still verifies, is the floor for the new one.
  const storedTs = await local?.read('timestamp');
  const prior = storedTs && ignoreRefusal(() => set.storedTimestampFile(storedTs));
  const tsBytes = await fetch('timestamp', 'timestamp.json', config.timestampMaxBytes);
  if (set.updateTimestamp(tsBytes) !== prior) await local?.write('timestamp', tsBytes);

  // §5.5: a stored snapshot sets the §5.5.5 floors, and is used as is when it is still current.
  const storedSnap = await local?.read('snapshot');
  if (storedSnap) {
    ignoreRefusal(() => set.storedSnapshotFile(storedSnap));
    ignoreRefusal(() => set.updateSnapshot(storedSnap));
  }
  if (!set.snapshot) {
    const snap = set.timestamp!.snapshot;
    const consistent = set.root.consistentSnapshot;
    const bytes = await fetch('snapshot', roleFile('snapshot', consistent ? snap.version : undefined), snap.length ?? config.snapshotMaxBytes, consistent ? roleFile('snapshot', undefined) : undefined);
    set.updateSnapshot(bytes);
    await local?.write('snapshot', bytes);
  }
  const repo = new SpecRepository(source, set, config, opts.clock ?? (() => new Date()), opts.signal, local);
  await repo.role('targets', 'root'); // §5.6
  return repo;
}

/** A stored file that no longer verifies is simply not used (python-tuf's rule); bugs still throw. */
function ignoreRefusal<T>(step: () => T): T | undefined {
  try {
    return step();
  } catch (e) {
    if (e instanceof TufError) return undefined;
    throw e;
  }
}

export class SpecRepository {
  private readonly loading = new Map<string, Promise<SpecTargets>>();

  constructor(
    readonly source: SpecSource,
    private readonly set: SpecTrustedSet,
    private readonly config: SpecUpdaterConfig,
    private readonly clock: () => Date,
    private readonly signal?: AbortSignal,
    private readonly local?: SpecLocalMetadata,
  ) {}

  get trusted(): SpecTrustedSet {
    return this.set;
  }

  /** The earliest expiry of the top-level roles: the cache serves nothing past it. */
  get expires(): Date {
    return this.set.expires;
  }

  /** Throws a TufError 'expired' when a top-level role has expired since it was loaded. */
  assertFresh(): void {
    this.set.assertFresh(this.clock());
  }

  /** A targets role, fetched and verified once (§5.6), bound to the snapshot's version. */
  role(name: string, parent: string, signal = this.signal): Promise<SpecTargets> {
    const have = this.set.targets(name);
    if (have) {
      // Loaded earlier: still only trusted while unexpired (§5.6.5 at the time of use).
      try {
        notExpired(name, have, this.clock());
      } catch (e) {
        return Promise.reject(e);
      }
      return Promise.resolve(have);
    }
    let p = this.loading.get(name);
    if (!p) {
      p = this.fetchRole(name, parent, signal);
      this.loading.set(name, p);
      // A failed load is not kept: the next lookup tries again (the caller's cache decides when).
      p.catch(() => this.loading.delete(name));
    }
    return p;
  }

  private async fetchRole(name: string, parent: string, signal?: AbortSignal): Promise<SpecTargets> {
    // A stored copy is used when it passes every check a fetched file must pass (§5.6).
    const stored = await this.local?.read(name);
    const kept = stored && ignoreRefusal(() => this.set.targets(name) ?? this.set.updateTargets(stored, name, parent, this.clock()));
    if (kept) return kept;
    const meta = this.set.snapshot!.meta.get(name);
    if (!meta) throw new TufError('not-found', name, `snapshot does not list ${name}.json`);
    const consistent = this.set.root.consistentSnapshot;
    const bytes = await this.source.fetch(
      {
        role: name,
        file: roleFile(name, consistent ? meta.version : undefined),
        ...(consistent ? { fallback: roleFile(name, undefined) } : {}),
        maxBytes: meta.length ?? this.config.targetsMaxBytes,
      },
      signal,
    );
    const have = this.set.targets(name);
    if (have) return have;
    const verified = this.set.updateTargets(bytes, name, parent, this.clock());
    await this.local?.write(name, bytes);
    return verified;
  }

  /** §5.6.7: the target at `path` from the first role of the pre-order walk that lists it. */
  async findTarget(path: string, signal?: AbortSignal): Promise<FoundTarget | undefined> {
    let found: FoundTarget | undefined;
    await this.drive(preorderWalk(path, this.config.maxDelegations), signal, (visit, targets) => {
      const target = targets.targets.get(path);
      if (target) found = { target, role: visit.role };
      return found !== undefined;
    });
    return found;
  }

  /**
   * Every role the pre-order walk for `path` reaches (terminating roles and the walk's bound
   * respected), with the target each lists at that path: what "a required role signs this
   * image and is trusted for it" is decided on.
   */
  async rolesForPath(path: string, signal?: AbortSignal): Promise<Map<string, TargetFile | undefined>> {
    const out = new Map<string, TargetFile | undefined>();
    await this.drive(preorderWalk(path, this.config.maxDelegations), signal, (visit, targets) => {
      out.set(visit.role, targets.targets.get(path));
      return false;
    });
    return out;
  }

  /**
   * Targets of one repository (paths `${repository}:<tag>`) whose SHA-256 is `sha256Hex`,
   * from the roles that may list such paths. Candidates only: each must then pass the
   * exact-path search (findTarget / rolesForPath) before it is trusted.
   */
  async candidatesByDigest(repository: string, sha256Hex: string, signal?: AbortSignal): Promise<FoundTarget[]> {
    const prefix = `${repository}:`;
    const out: FoundTarget[] = [];
    await this.drive(prefixWalk(prefix, this.config.maxDelegations), signal, (visit, targets) => {
      for (const [path, target] of targets.targets) {
        if (path.startsWith(prefix) && target.hashes['sha256'] === sha256Hex) out.push({ target, role: visit.role });
      }
      return false;
    });
    return out;
  }

  /** Runs a walk, loading each role it visits; `onRole` returns true to stop. */
  private async drive(walk: Generator<RoleVisit, unknown, SpecTargets>, signal: AbortSignal | undefined, onRole: (visit: RoleVisit, targets: SpecTargets) => boolean): Promise<void> {
    let step = walk.next(undefined as unknown as SpecTargets);
    while (!step.done) {
      const targets = await this.role(step.value.role, step.value.parent, signal);
      if (onRole(step.value, targets)) return;
      step = walk.next(targets);
    }
  }

  /** The high-water marks to persist after this load. */
  versionFloor(): Map<string, number> {
    return this.set.versionFloor();
  }
}
