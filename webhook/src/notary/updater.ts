/**
 * The I/O half of the client (python-tuf's Updater to tuf/'s TrustedMetadataSet): asks a
 * MetadataSource for files in the order the Notary client does, fetching in parallel what
 * can be, and hands every byte to tuf/ for verification in order. Nothing here decides trust.
 */
import {
  TrustedMetadataSet,
  TrustedRepository,
  TufError,
  verifyNextRoot,
  verifyPinnedRoot,
  MAX_ROOT_BYTES,
  MAX_SNAPSHOT_BYTES,
  MAX_TARGETS_BYTES,
  MAX_TIMESTAMP_BYTES,
  type RootPin,
  type VerifiedRoot,
  type VersionFloor,
  type FileMeta,
} from '../tuf/index.js';
import { FetchError, type MetadataSource } from './source.js';

export interface UpdateOptions {
  pin: RootPin;
  now: Date;
  /** High-water marks: versions below these are refused as rollbacks. */
  floor?: VersionFloor;
  /** What an earlier update verified; unchanged files are not fetched or verified again. */
  previous?: TrustedRepository;
  signal?: AbortSignal;
  /** Refuse repositories with longer root chains or more delegations (endless data). */
  maxRootVersions?: number;
  maxDelegations?: number;
}

const DEFAULT_MAX_ROOT_VERSIONS = 256;
const DEFAULT_MAX_DELEGATIONS = 1024;

export async function loadRepository(source: MetadataSource, opts: UpdateOptions): Promise<TrustedRepository> {
  const floor = opts.floor ?? new Map<string, number>();
  let root = opts.previous?.parts.root;
  let refreshedRoot = false;
  let early: EarlyFetches | undefined;
  if (!root) {
    // First contact: nothing can be reused, so every top-level file is asked for at once
    // (one round trip instead of four); verification still goes strictly in order.
    early = fetchTopLevel(source, opts.signal);
    root = await bootstrapRoot(source, opts);
    refreshedRoot = true;
  }
  try {
    return await loadWithRoot(source, root, opts, floor, early);
  } catch (e) {
    // A failure under a cached root may mean the repository rotated keys: walk to the
    // newest root and try once more, as the official client does.
    if (refreshedRoot || !(e instanceof TufError) || !ROTATION_HINTS.has(e.code)) throw e;
    const newer = await walkRoots(source, root, opts);
    if (newer.sha256 === root.sha256) throw e;
    return await loadWithRoot(source, newer, { ...opts, previous: undefined }, floor);
  }
}

const ROTATION_HINTS = new Set(['signature', 'hash-mismatch', 'bad-key']);

async function loadWithRoot(source: MetadataSource, root: VerifiedRoot, opts: UpdateOptions, floor: VersionFloor, early?: EarlyFetches): Promise<TrustedRepository> {
  const { signal } = opts;
  const previous = opts.previous && opts.previous.parts.root.sha256 === root.sha256 ? opts.previous.parts : undefined;
  const set = new TrustedMetadataSet(source.gun, opts.now, floor, previous);
  set.setRoot(root);
  set.updateTimestamp(await (early?.timestamp ?? source.fetch({ role: 'timestamp', maxBytes: MAX_TIMESTAMP_BYTES }, signal)));
  if (!set.tryReuseSnapshot()) {
    const declared = timestampSnapshotMeta(set);
    await verifyEarlyOrDeclared(early?.snapshot, 'snapshot', (bytes) => set.updateSnapshot(bytes), () => fetchDeclared(source, 'snapshot', declared, signal));
  }
  const snapshotMeta = snapshotOf(set);
  // Once the snapshot is trusted, every delegation it lists can be fetched by hash at once
  // (with the targets), instead of one level of the tree per round trip.
  const delegations = early ? fetchListedDelegations(source, snapshotMeta, opts) : undefined;
  if (!set.tryReuseTargets()) {
    await verifyEarlyOrDeclared(early?.targets, 'targets', (bytes) => set.updateTargets(bytes), () => fetchDeclared(source, 'targets', snapshotMeta.get('targets'), signal));
  }
  await walkDelegations(source, set, snapshotMeta, opts, delegations);
  return new TrustedRepository(source.gun, set.result());
}

/** Top-level files asked for before anything is trusted; only bytes, verified later in order. */
interface EarlyFetches {
  timestamp: Promise<Uint8Array>;
  /** By name, since their hashes are not known yet; undefined when the fetch failed. */
  snapshot: Promise<Uint8Array | undefined>;
  targets: Promise<Uint8Array | undefined>;
}

function fetchTopLevel(source: MetadataSource, signal: AbortSignal | undefined): EarlyFetches {
  const timestamp = source.fetch({ role: 'timestamp', maxBytes: MAX_TIMESTAMP_BYTES }, signal);
  // Awaited only once the root is trusted; an early failure must not count as unhandled.
  timestamp.catch(() => undefined);
  const byName = (role: string, maxBytes: number) => source.fetch({ role, maxBytes }, signal).catch(() => undefined);
  return { timestamp, snapshot: byName('snapshot', MAX_SNAPSHOT_BYTES), targets: byName('targets', MAX_TARGETS_BYTES) };
}

/**
 * Verify bytes fetched by name before their hash was known. If the repository changed in
 * between (they no longer match what the parent declares) or the early fetch failed, the
 * file is fetched again by hash, as it would have been without the head start.
 */
async function verifyEarlyOrDeclared(
  early: Promise<Uint8Array | undefined> | undefined,
  role: string,
  verify: (bytes: Uint8Array) => unknown,
  fetchDeclaredBytes: () => Promise<Uint8Array>,
): Promise<void> {
  const bytes = await early;
  if (bytes) {
    try {
      verify(bytes);
      return;
    } catch (e) {
      const stale = e instanceof TufError && e.role === role && (e.code === 'hash-mismatch' || e.code === 'too-large');
      if (!stale) throw e;
    }
  }
  verify(await fetchDeclaredBytes());
}

function fetchListedDelegations(source: MetadataSource, meta: Map<string, FileMeta>, opts: UpdateOptions): Map<string, Promise<Uint8Array>> {
  const roles = [...meta.keys()].filter((r) => r.startsWith('targets/'));
  const out = new Map<string, Promise<Uint8Array>>();
  // Past the cap the walk refuses the repository anyway; do not fetch for it.
  if (roles.length > (opts.maxDelegations ?? DEFAULT_MAX_DELEGATIONS)) return out;
  for (const role of roles) {
    const p = fetchDeclared(source, role, meta.get(role), opts.signal);
    // A role nobody delegates to (or under a skipped parent) is never awaited.
    p.catch(() => undefined);
    out.set(role, p);
  }
  return out;
}

function timestampSnapshotMeta(set: TrustedMetadataSet): FileMeta {
  return set.currentTimestamp().meta.snapshot;
}

function snapshotOf(set: TrustedMetadataSet): Map<string, FileMeta> {
  return set.currentSnapshot().meta.meta;
}

/** Hash-addressed fetch capped at the declared length, as the official client does it. */
async function fetchDeclared(source: MetadataSource, role: string, meta: FileMeta | undefined, signal?: AbortSignal): Promise<Uint8Array> {
  if (!meta) throw new TufError('not-found', role, 'not listed in the signed metadata that should declare it');
  const sha = meta.hashes.get('sha256');
  return source.fetch(
    sha ? { role, sha256Hex: sha.toString('hex'), maxBytes: meta.length } : { role, maxBytes: meta.length },
    signal,
  );
}

/**
 * Pre-order walk. Children of one parent are fetched together, then verified one by one in
 * the order the parent lists them; a skipped (expired, under-signed) role takes its subtree
 * with it.
 */
async function walkDelegations(
  source: MetadataSource,
  set: TrustedMetadataSet,
  meta: Map<string, FileMeta>,
  opts: UpdateOptions,
  fetched?: Map<string, Promise<Uint8Array>>,
): Promise<void> {
  const max = opts.maxDelegations ?? DEFAULT_MAX_DELEGATIONS;
  let count = 0;
  const visit = async (parent: string): Promise<void> => {
    const children = set.delegatedRoles(parent).filter((r) => meta.has(r.name));
    count += children.length;
    if (count > max) throw new TufError('too-large', parent, `more than ${max} delegations`);
    const reused = children.map((r) => set.tryReuseDelegation(r, parent));
    const bytesOf = await Promise.all(
      children.map((r, i) => (reused[i] === undefined ? (fetched?.get(r.name) ?? fetchDeclared(source, r.name, meta.get(r.name), opts.signal)) : undefined)),
    );
    for (let i = 0; i < children.length; i++) {
      const role = children[i]!;
      const bytes = bytesOf[i];
      const outcome = bytes ? set.updateDelegation(role, parent, bytes) : reused[i]!;
      if (!(outcome instanceof TufError)) await visit(role.name);
    }
  };
  await visit('targets');
}

/**
 * First contact: trust root.json directly when the pinned keys sign it; otherwise (the
 * repository rotated its root keys since the keys were pinned) start at the first version
 * the pinned keys sign and walk every later version.
 */
async function bootstrapRoot(source: MetadataSource, opts: UpdateOptions): Promise<VerifiedRoot> {
  const currentBytes = await source.fetch({ role: 'root', maxBytes: MAX_ROOT_BYTES }, opts.signal);
  let refusal: TufError;
  try {
    return verifyPinnedRoot(currentBytes, opts.pin, source.gun);
  } catch (e) {
    if (!(e instanceof TufError) || (e.code !== 'untrusted-root' && e.code !== 'signature')) throw e;
    refusal = e;
  }
  const newest = claimedVersion(currentBytes);
  // Version 1 is the start of every chain: there is no older root to look for.
  if (newest === 1) throw refusal;
  const max = opts.maxRootVersions ?? DEFAULT_MAX_ROOT_VERSIONS;
  if (newest > max) throw new TufError('too-large', 'root', `root claims version ${newest}; more than ${max} versions are refused`);
  // A server without versioned roots cannot show a chain from the pinned keys; the cause to
  // report is still that the pinned keys do not sign root.json, not the missing file.
  const fetchVersion = (version: number) =>
    source.fetch({ role: 'root', version, maxBytes: MAX_ROOT_BYTES }, opts.signal).catch((e: unknown) => {
      if (!(e instanceof FetchError) || e.kind !== 'not-found') throw e;
      const why = refusal.message.replace(/^root: /, '');
      throw new TufError(refusal.code, 'root', `${why}; no chain from an older root can be checked: ${version}.root.json is not served (${e.message})`);
    });
  const all = await Promise.all(Array.from({ length: newest }, (_, i) => fetchVersion(i + 1)));
  let anchor: VerifiedRoot | undefined;
  let firstError: unknown;
  for (const bytes of all) {
    if (!anchor) {
      try {
        anchor = verifyPinnedRoot(bytes, opts.pin, source.gun);
      } catch (e) {
        firstError ??= e;
      }
      continue;
    }
    anchor = verifyNextRoot(anchor, bytes, source.gun);
  }
  if (!anchor) throw firstError;
  return anchor;
}

/** From a trusted root, walk versioned roots up to the version root.json claims. */
async function walkRoots(source: MetadataSource, from: VerifiedRoot, opts: UpdateOptions): Promise<VerifiedRoot> {
  const newest = claimedVersion(await source.fetch({ role: 'root', maxBytes: MAX_ROOT_BYTES }, opts.signal));
  const start = from.meta.version + 1;
  if (newest < start) return from;
  const max = opts.maxRootVersions ?? DEFAULT_MAX_ROOT_VERSIONS;
  if (newest - start + 1 > max) throw new TufError('too-large', 'root', `${newest - start + 1} new root versions; more than ${max} are refused`);
  const all = await Promise.all(
    Array.from({ length: newest - start + 1 }, (_, i) => source.fetch({ role: 'root', version: start + i, maxBytes: MAX_ROOT_BYTES }, opts.signal)),
  );
  let root = from;
  for (const bytes of all) root = verifyNextRoot(root, bytes, source.gun);
  return root;
}

/** The version an untrusted root.json claims: only a hint of how far to walk. */
function claimedVersion(bytes: Uint8Array): number {
  let v: unknown;
  try {
    v = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { signed?: { version?: unknown } }).signed?.version;
  } catch {
    v = undefined;
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new TufError('malformed', 'root', 'root.json has no valid version');
  }
  return v;
}
