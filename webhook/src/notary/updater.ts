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
  MAX_TIMESTAMP_BYTES,
  type RootPin,
  type VerifiedRoot,
  type VersionFloor,
  type FileMeta,
} from '../tuf/index.js';
import type { MetadataSource } from './source.js';

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
  if (!root) {
    root = await bootstrapRoot(source, opts);
    refreshedRoot = true;
  }
  try {
    return await loadWithRoot(source, root, opts, floor);
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

async function loadWithRoot(source: MetadataSource, root: VerifiedRoot, opts: UpdateOptions, floor: VersionFloor): Promise<TrustedRepository> {
  const { signal } = opts;
  const previous = opts.previous && opts.previous.parts.root.sha256 === root.sha256 ? opts.previous.parts : undefined;
  const set = new TrustedMetadataSet(source.gun, opts.now, floor, previous);
  set.setRoot(root);
  set.updateTimestamp(await source.fetch({ role: 'timestamp', maxBytes: MAX_TIMESTAMP_BYTES }, signal));
  if (!set.tryReuseSnapshot()) {
    const declared = timestampSnapshotMeta(set);
    set.updateSnapshot(await fetchDeclared(source, 'snapshot', declared, signal));
  }
  const snapshotMeta = snapshotOf(set);
  if (!set.tryReuseTargets()) {
    set.updateTargets(await fetchDeclared(source, 'targets', snapshotMeta.get('targets'), signal));
  }
  await walkDelegations(source, set, snapshotMeta, opts);
  return new TrustedRepository(source.gun, set.result());
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
async function walkDelegations(source: MetadataSource, set: TrustedMetadataSet, meta: Map<string, FileMeta>, opts: UpdateOptions): Promise<void> {
  const max = opts.maxDelegations ?? DEFAULT_MAX_DELEGATIONS;
  let count = 0;
  const visit = async (parent: string): Promise<void> => {
    const children = set.delegatedRoles(parent).filter((r) => meta.has(r.name));
    count += children.length;
    if (count > max) throw new TufError('too-large', parent, `more than ${max} delegations`);
    const reused = children.map((r) => set.tryReuseDelegation(r, parent));
    const fetched = await Promise.all(
      children.map((r, i) => (reused[i] === undefined ? fetchDeclared(source, r.name, meta.get(r.name), opts.signal) : undefined)),
    );
    for (let i = 0; i < children.length; i++) {
      const role = children[i]!;
      const bytes = fetched[i];
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
  try {
    return verifyPinnedRoot(currentBytes, opts.pin, source.gun);
  } catch (e) {
    if (!(e instanceof TufError) || (e.code !== 'untrusted-root' && e.code !== 'signature')) throw e;
  }
  const newest = claimedVersion(currentBytes);
  const max = opts.maxRootVersions ?? DEFAULT_MAX_ROOT_VERSIONS;
  if (newest > max) throw new TufError('too-large', 'root', `root claims version ${newest}; more than ${max} versions are refused`);
  const all = await Promise.all(
    Array.from({ length: newest }, (_, i) => source.fetch({ role: 'root', version: i + 1, maxBytes: MAX_ROOT_BYTES }, opts.signal)),
  );
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
