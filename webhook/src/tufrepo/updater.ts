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
import { rolesForTarget } from '../tuf/tuf1/delegation.js';
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

/** How many roles one lookup requests ahead of its walk (sibling delegations that may sign the path). */
const PREFETCH_SIBLINGS = 8;

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
  /**
   * Runs each batch of fetches (the refresh, then each lookup that loads roles) with the
   * source it may use: the webhook's per-trust-server limits. Default: the source as is.
   */
  limit?: SpecFetchLimit;
}

/** Runs `work` with a source that may be a limited view of `source` (TrustServerLimits.runLoad's shape). */
export type SpecFetchLimit = <T>(source: SpecSource, work: (limited: SpecSource) => Promise<T>) => Promise<T>;

const UNLIMITED: SpecFetchLimit = (source, work) => work(source);

/** A lookup over verified roles reached one that is not loaded yet (SpecRepository.withRoles loads it). */
export class NeedsRole extends Error {
  constructor(
    readonly role: string,
    readonly parent: string,
  ) {
    super(`targets role ${role} is not loaded yet`);
  }
}

/** The result of a lookup: the target and the role whose signed metadata lists it. */
export interface FoundTarget {
  readonly target: TargetFile;
  readonly role: string;
}

export function refreshSpecRepository(source: SpecSource, opts: SpecRefreshOptions): Promise<SpecRepository> {
  const limit = opts.limit ?? UNLIMITED;
  return limit(source, (limited) => refresh(source, limited, limit, opts));
}

/** The refresh proper: every fetch through `limited`; the repository keeps `source` and `limit` for its lookups. */
async function refresh(source: SpecSource, limited: SpecSource, limit: SpecFetchLimit, opts: SpecRefreshOptions): Promise<SpecRepository> {
  const config = { ...DEFAULT_SPEC_CONFIG, ...opts.config };
  const local = opts.local;
  const fetch = (role: string, file: string, maxBytes: number, fallback?: string, declared?: boolean) =>
    limited.fetch({ role, file, maxBytes, ...(fallback ? { fallback } : {}), ...(declared ? { declared } : {}) }, opts.signal);

  // §5.2: the trusted root. With pinned keys, 1.root.json is the root they must sign.
  let trusted: Uint8Array;
  if ('trustedRoot' in opts.bootstrap) {
    trusted = opts.bootstrap.trustedRoot;
  } else {
    trusted = await fetch('root', rootFile(1), config.rootMaxBytes);
    checkPinnedSpecRoot(trusted, opts.bootstrap.pin);
  }
  const set = new SpecTrustedSet(trusted, opts.now, opts.floor);
  const fetchTimestamp = () => fetch('timestamp', 'timestamp.json', config.timestampMaxBytes);
  let timestamp: Promise<Uint8Array> | undefined;

  // §5.3.3-§5.3.9: walk N.root.json upward until the repository has no newer one.
  for (let i = 0; i < config.maxRootRotations; i++) {
    const next = fetch('root', rootFile(set.root.version + 1), config.rootMaxBytes);
    if (!timestamp && !local) {
      // Requested alongside the root walk (one round trip less), verified only after it, with
      // the final root, as §5.4 says: trust follows the spec's order, not the order of arrival.
      // Not for a client with local metadata (the conformance adapter), whose requests the
      // TUF conformance suite expects in the spec's order.
      timestamp = fetchTimestamp();
      timestamp.catch(() => undefined);
    }
    let bytes: Uint8Array;
    try {
      bytes = await next;
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
  const tsBytes = await (timestamp ?? fetchTimestamp());
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
    const bytes = await fetch('snapshot', roleFile('snapshot', consistent ? snap.version : undefined), snap.length ?? config.snapshotMaxBytes, consistent ? roleFile('snapshot', undefined) : undefined, snap.length !== undefined);
    set.updateSnapshot(bytes);
    await local?.write('snapshot', bytes);
  }
  const repo = new SpecRepository(source, set, config, opts.clock ?? (() => new Date()), opts.signal, local, limit);
  await repo.role('targets', 'root', opts.signal, undefined, limited); // §5.6
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
  private verifiedRoles = 0;

  constructor(
    readonly source: SpecSource,
    private readonly set: SpecTrustedSet,
    private readonly config: SpecUpdaterConfig,
    private readonly clock: () => Date,
    private readonly signal?: AbortSignal,
    private readonly local?: SpecLocalMetadata,
    /** Each lookup that loads roles runs its fetches inside it (one load, as the refresh was). */
    private readonly limit: SpecFetchLimit = UNLIMITED,
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

  /**
   * A targets role, fetched and verified once (§5.6), bound to the snapshot's version.
   * @param source what to fetch it with: the limited source of the refresh or lookup asking.
   */
  role(name: string, parent: string, signal = this.signal, early?: Promise<Uint8Array>, source = this.source): Promise<SpecTargets> {
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
      p = this.fetchRole(name, parent, signal, early, source);
      this.loading.set(name, p);
      // A failed load is not kept: the next lookup tries again (the caller's cache decides when).
      p.catch(() => this.loading.delete(name));
    }
    return p;
  }

  /** The bytes of a targets role's file, as the snapshot names and bounds it; nothing verified yet. */
  private fetchBytes(name: string, source: SpecSource, signal?: AbortSignal): Promise<Uint8Array> {
    const meta = this.set.snapshot!.meta.get(name);
    if (!meta) return Promise.reject(new TufError('not-found', name, `snapshot does not list ${name}.json`));
    const consistent = this.set.root.consistentSnapshot;
    return source.fetch(
      {
        role: name,
        file: roleFile(name, consistent ? meta.version : undefined),
        ...(consistent ? { fallback: roleFile(name, undefined) } : {}),
        maxBytes: meta.length ?? this.config.targetsMaxBytes,
        ...(meta.length !== undefined ? { declared: true } : {}),
      },
      signal,
    );
  }

  private async fetchRole(name: string, parent: string, signal: AbortSignal | undefined, early: Promise<Uint8Array> | undefined, source: SpecSource): Promise<SpecTargets> {
    if (this.local) {
      // A stored copy is used when it passes every check a fetched file must pass (§5.6).
      const stored = await this.local.read(name);
      const kept = stored && ignoreRefusal(() => this.set.targets(name) ?? this.set.updateTargets(stored, name, parent, this.clock()));
      if (kept) return kept;
    }
    const bytes = await (early ?? this.fetchBytes(name, source, signal));
    const have = this.set.targets(name);
    if (have) return have;
    const targets = this.set.updateTargets(bytes, name, parent, this.clock());
    this.verifiedRoles++;
    await this.local?.write(name, bytes);
    return targets;
  }

  /** How many targets roles lookups have verified so far: high-water marks can only have moved when this has. */
  get rolesVerified(): number {
    return this.verifiedRoles;
  }

  /** §5.6.7: the target at `path` from the first role of the pre-order walk that lists it. */
  findTarget(path: string, signal?: AbortSignal): Promise<FoundTarget | undefined> {
    return this.withRoles(() => this.findTargetLoaded(path), signal);
  }

  /**
   * Every role the pre-order walk for `path` reaches (terminating roles and the walk's bound
   * respected), with the target each lists at that path: what "a required role signs this
   * image and is trusted for it" is decided on.
   */
  rolesForPath(path: string, signal?: AbortSignal): Promise<Map<string, TargetFile | undefined>> {
    return this.withRoles(() => this.rolesForPathLoaded(path), signal);
  }

  /**
   * Targets of one repository (paths `${repository}:<tag>`) whose SHA-256 is `sha256Hex`,
   * from the roles that may list such paths. Candidates only: each must then pass the
   * exact-path search (findTarget / rolesForPath) before it is trusted.
   */
  candidatesByDigest(repository: string, sha256Hex: string, signal?: AbortSignal): Promise<FoundTarget[]> {
    return this.withRoles(() => this.candidatesByDigestLoaded(repository, sha256Hex), signal);
  }

  // The *Loaded lookups answer from roles already verified, synchronously (a warm admission
  // needs no promise), and throw NeedsRole when the walk reaches one not loaded yet.

  findTargetLoaded(path: string): FoundTarget | undefined {
    let found: FoundTarget | undefined;
    this.walkLoaded(preorderWalk(path, this.config.maxDelegations), (visit, targets) => {
      const target = targets.targets.get(path);
      if (target) found = { target, role: visit.role };
      return found !== undefined;
    });
    return found;
  }

  rolesForPathLoaded(path: string): Map<string, TargetFile | undefined> {
    const out = new Map<string, TargetFile | undefined>();
    this.walkLoaded(preorderWalk(path, this.config.maxDelegations), (visit, targets) => {
      out.set(visit.role, targets.targets.get(path));
      return false;
    });
    return out;
  }

  candidatesByDigestLoaded(repository: string, sha256Hex: string): FoundTarget[] {
    const prefix = `${repository}:`;
    const out: FoundTarget[] = [];
    this.walkLoaded(prefixWalk(prefix, this.config.maxDelegations), (visit, targets) => {
      for (const [path, target] of targets.targets) {
        if (path.startsWith(prefix) && target.hashes['sha256'] === sha256Hex) out.push({ target, role: visit.role });
      }
      return false;
    });
    return out;
  }

  /**
   * Runs `lookup` (built on the *Loaded lookups) to the end, fetching and verifying each role
   * it needs first: one role per NeedsRole, then the lookup again from the start (re-walking
   * verified roles costs microseconds; a fetch, milliseconds).
   * @param prefetchFor the lookup's target path: request the sibling roles its search may
   *   visit next ahead of the walk (the webhook). Without it, exactly the roles the walk
   *   visits are fetched, in its order, as the specification's client does (what the
   *   conformance suite checks).
   */
  async withRoles<T>(lookup: () => T, signal = this.signal, prefetchFor?: string): Promise<T> {
    try {
      return lookup();
    } catch (e) {
      if (!(e instanceof NeedsRole)) throw e;
    }
    // Roles to load: one load under the limit, holding its slot and bytes until the lookup
    // has every role it needs (a tenant's lookups queue like its refreshes).
    return this.limit(this.source, async (source) => {
      const early = new Map<string, Promise<Uint8Array>>();
      for (;;) {
        try {
          return lookup();
        } catch (e) {
          if (!(e instanceof NeedsRole)) throw e;
          const loaded = this.role(e.role, e.parent, signal, early.get(e.role), source);
          if (prefetchFor !== undefined) this.prefetchSiblings(e, prefetchFor, early, source, signal);
          await loaded;
          // role() resolves only with the role verified, so the next attempt gets further.
        }
      }
    });
  }

  /**
   * Requests the files of the roles the search for `path` visits after `next` under the same
   * parent (up to PREFETCH_SIBLINGS, stopping at a terminating one), so their round trips
   * overlap. Bytes only: each is verified when, and only if, the walk reaches it, in order.
   */
  private prefetchSiblings(next: NeedsRole, path: string, early: Map<string, Promise<Uint8Array>>, source: SpecSource, signal?: AbortSignal): void {
    const delegations = this.set.targets(next.parent)?.delegations;
    if (!delegations?.roles) return; // succinct bins: one bin per path, nothing comes after it
    const candidates = rolesForTarget(delegations, path);
    const at = candidates.findIndex((r) => r.name === next.role);
    if (at < 0 || candidates[at]!.terminating) return;
    for (const r of candidates.slice(at + 1, at + 1 + PREFETCH_SIBLINGS)) {
      if (!early.has(r.name) && !this.set.targets(r.name) && !this.loading.has(r.name) && this.set.snapshot!.meta.has(r.name)) {
        const bytes = this.fetchBytes(r.name, source, signal);
        bytes.catch(() => undefined); // reported when the walk reaches the role, not before
        early.set(r.name, bytes);
      }
      if (r.terminating) break;
    }
  }

  /** Runs a walk over verified roles; `onRole` returns true to stop. */
  private walkLoaded(walk: Generator<RoleVisit, unknown, SpecTargets>, onRole: (visit: RoleVisit, targets: SpecTargets) => boolean): void {
    let step = walk.next(undefined as unknown as SpecTargets);
    while (!step.done) {
      const { role, parent } = step.value;
      const targets = this.set.targets(role);
      if (!targets) throw new NeedsRole(role, parent);
      // Loaded earlier: still only trusted while unexpired (§5.6.5 at the time of use).
      notExpired(role, targets, this.clock());
      if (onRole(step.value, targets)) return;
      step = walk.next(targets);
    }
  }

  /**
   * Every role that may list tags of one repository (paths `${repository}:<tag>`), in the
   * search's order, with what it lists for it: what `trustgate inspect` shows. Which of them
   * a lookup trusts for one tag is still decided per path (findTarget, rolesForPath).
   */
  rolesOfRepository(repository: string, signal?: AbortSignal): Promise<Array<{ role: string; parent: string; expires: string; targets: TargetFile[] }>> {
    const prefix = `${repository}:`;
    return this.withRoles(() => {
      const out: Array<{ role: string; parent: string; expires: string; targets: TargetFile[] }> = [];
      this.walkLoaded(prefixWalk(prefix, this.config.maxDelegations), (visit, targets) => {
        out.push({ role: visit.role, parent: visit.parent, expires: targets.expiresText, targets: [...targets.targets.values()].filter((t) => t.path.startsWith(prefix)) });
        return false;
      });
      return out;
    }, signal);
  }

  /** The high-water marks to persist after this load. */
  versionFloor(): Map<string, number> {
    return this.set.versionFloor();
  }
}
