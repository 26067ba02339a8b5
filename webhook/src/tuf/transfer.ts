/**
 * Verified trust data as plain data (what the structured clone of postMessage carries) and
 * back, so a repository verified in another thread can be used here without verifying its
 * bytes again. Only what was verified is carried: the root as its bytes (re-read, it is
 * small), keys as their metadata text (re-read and re-checked against their IDs), targets
 * and snapshot entries as parallel arrays of strings (a structured clone of a few strings per
 * entry costs the receiving thread little; objects and byte arrays per entry cost it hundreds
 * of milliseconds for a large file), hashes decoded when looked up. The sending side is
 * trusted code of this process: nothing here checks signatures.
 */
import { TufError, type TufErrorCode } from './errors.js';
import type { JsonObject } from './json.js';
import { decodeBase64, parseKey, type PublicKey } from './keys.js';
import { parseEnvelope, parseRoot, TargetMeta, type DelegatedRole, type FileMeta, type Snapshot, type Targets, type Timestamp } from './metadata.js';
import { TrustedRepository } from './repository.js';
import type { TrustedParts, Verified, VerifiedDelegation } from './trusted-set.js';

interface CommonWire {
  version: number;
  expiresText: string;
}

interface FileMetaWire {
  length: number;
  hashes: [string, Uint8Array][];
}

/** Many file metas: names, lengths and the hashes as JSON text [[algorithm, base64], ...]. */
interface FileMetasWire {
  names: string[];
  lengths: number[];
  hashes: string[];
}

interface TargetsWire extends CommonWire, FileMetasWire {
  keys: [id: string, keytype: string, publicValue: string][];
  delegations: DelegatedRole[];
}

interface VerifiedWire<T> {
  meta: T;
  sha256: string;
  length: number;
}

export interface RepositoryWire {
  gun: string;
  root: { bytes: Uint8Array; sha256: string; length: number };
  timestamp: VerifiedWire<CommonWire & { snapshot: FileMetaWire }>;
  snapshot: VerifiedWire<CommonWire & FileMetasWire>;
  targets: VerifiedWire<TargetsWire>;
  delegations: (VerifiedWire<TargetsWire> & { name: string; parent: string; threshold: number; paths: string[] })[];
  skipped: [name: string, code: TufErrorCode, role: string, message: string][];
}

export function repositoryToWire(repo: TrustedRepository): RepositoryWire {
  const p = repo.parts;
  return {
    gun: repo.gun,
    root: { bytes: p.root.bytes, sha256: p.root.sha256, length: p.root.length },
    timestamp: verifiedWire(p.timestamp, (m) => ({ ...commonWire(m), snapshot: fileMetaWire(m.snapshot) })),
    snapshot: verifiedWire(p.snapshot, (m) => ({ ...commonWire(m), ...fileMetasWire(m.meta) })),
    targets: verifiedWire(p.targets, targetsWire),
    delegations: [...p.delegations.values()].map((d) => ({
      ...verifiedWire(d, targetsWire),
      name: d.name,
      parent: d.parent,
      threshold: d.threshold,
      paths: d.paths,
    })),
    skipped: [...p.skipped].map(([name, e]) => [name, e.code, e.role, e.message.slice(e.role.length + 2)]),
  };
}

export function repositoryFromWire(w: RepositoryWire): TrustedRepository {
  const rootBytes = w.root.bytes;
  const root = { meta: parseRoot(parseEnvelope(rootBytes, 'root', 'Root')), bytes: rootBytes, sha256: w.root.sha256, length: w.root.length };
  const timestamp: Verified<Timestamp> = verified(w.timestamp, (m) => ({ ...common(m), snapshot: fileMeta(m.snapshot) }));
  const snapshot: Verified<Snapshot> = verified(w.snapshot, (m) => ({ ...common(m), meta: fileMetas(m, 'snapshot') }));
  const targets: Verified<Targets> = verified(w.targets, (m) => targetsOf(m, 'targets'));
  const delegations = new Map<string, VerifiedDelegation>();
  for (const d of w.delegations) {
    delegations.set(d.name, { ...verified(d, (m) => targetsOf(m, d.name)), name: d.name, parent: d.parent, threshold: d.threshold, paths: d.paths });
  }
  const skipped = new Map(w.skipped.map(([name, code, role, message]) => [name, new TufError(code, role, message)]));
  const parts: TrustedParts = { root, timestamp, snapshot, targets, delegations, skipped };
  return new TrustedRepository(w.gun, parts);
}

function verifiedWire<T, W>(v: Verified<T>, f: (m: T) => W): VerifiedWire<W> {
  return { meta: f(v.meta), sha256: v.sha256, length: v.length };
}

function verified<W, T>(v: VerifiedWire<W>, f: (m: W) => T): Verified<T> {
  return { meta: f(v.meta), sha256: v.sha256, length: v.length };
}

function commonWire(m: { version: number; expiresText: string }): CommonWire {
  return { version: m.version, expiresText: m.expiresText };
}

function common(m: CommonWire): { version: number; expires: Date; expiresText: string } {
  return { version: m.version, expires: new Date(m.expiresText), expiresText: m.expiresText };
}

function fileMetaWire(m: FileMeta): FileMetaWire {
  return { length: m.length, hashes: [...m.hashes] };
}

function fileMeta(w: FileMetaWire): FileMeta {
  // The clone delivers plain Uint8Arrays; callers compare and print them as Buffers.
  return { length: w.length, hashes: new Map(w.hashes.map(([alg, h]) => [alg, Buffer.from(h.buffer, h.byteOffset, h.byteLength)])) };
}

function fileMetasWire(metas: ReadonlyMap<string, FileMeta>): FileMetasWire {
  const names: string[] = [];
  const lengths: number[] = [];
  const hashes: string[] = [];
  for (const [name, m] of metas) {
    names.push(name);
    lengths.push(m.length);
    hashes.push(JSON.stringify(m instanceof TargetMeta ? Object.entries(m.encoded) : [...m.hashes].map(([alg, h]) => [alg, h.toString('base64')])));
  }
  return { names, lengths, hashes };
}

function fileMetas(w: FileMetasWire, role: string): Map<string, FileMeta> {
  const out = new Map<string, FileMeta>();
  for (let i = 0; i < w.names.length; i++) out.set(w.names[i]!, new PackedFileMeta(w.lengths[i]!, w.hashes[i]!, role));
  return out;
}

/** A file meta verified elsewhere; its hashes are decoded when first looked up. */
class PackedFileMeta implements FileMeta {
  #hashes: ReadonlyMap<string, Buffer> | undefined;
  constructor(
    readonly length: number,
    private readonly packed: string,
    private readonly role: string,
  ) {}

  get hashes(): ReadonlyMap<string, Buffer> {
    return (this.#hashes ??= new Map((JSON.parse(this.packed) as [string, string][]).map(([alg, b64]) => [alg, decodeBase64(b64, this.role, alg)])));
  }
}

function targetsWire(t: Targets): TargetsWire {
  return {
    ...commonWire(t),
    ...fileMetasWire(t.targets),
    keys: [...t.delegationKeys].map(([id, k]) => [id, k.keytype, k.publicValue]),
    delegations: t.delegations,
  };
}

function targetsOf(w: TargetsWire, role: string): Targets {
  const targets = fileMetas(w, role);
  const delegationKeys = new Map<string, PublicKey>();
  for (const [id, keytype, value] of w.keys) delegationKeys.set(id, parseKey(id, { keytype, keyval: { public: value } }, role));
  return { ...common(w), targets, delegationKeys, delegations: w.delegations };
}
