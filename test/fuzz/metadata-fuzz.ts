/**
 * Fuzzing the TUF core through the updater: a repository forged with real keys, one role
 * file mutated per case, loaded the way the engine loads it (cold, or as a refresh over the
 * unmutated repository). Two kinds of case:
 *
 *  raw       the mutated bytes are served with their original signatures (an attacker
 *            without keys). If the load still succeeds and some image now resolves where it
 *            did not, or to another digest, the mutation must not have touched the signed
 *            canonical part; otherwise trust was forged.
 *  resigned  the mutated `signed` body is signed again with the role's real key and its
 *            parents' hashes are updated (a key holder publishing odd data), to reach the
 *            parsers and checks behind the signatures. Anything it yields must still be
 *            well-formed and unexpired.
 *
 * In both, nothing but TufError/FetchError may escape.
 */
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import { loadRepository } from '../../webhook/src/notary/updater.js';
import { parseJson } from '../../webhook/src/tuf/json.js';
import { canonicalBytes, pinFromPem, TufError, type RootPin, type TrustedRepository } from '../../webhook/src/tuf/index.js';
import { signedDigest, type DelegationRequirement } from '../../webhook/src/verify/signed-digest.js';
import { envelope, fileMeta, openEnvelope, RepoForge, type ForgedRepo, type ForgeKey } from '../support/forge.js';
import { BYTE_MUTATIONS, mutateBytes, mutateTree, parseTree, serialize, TREE_MUTATIONS, type Node } from './mutate.js';
import type { Prng } from './prng.js';

export const FUZZ_NOW = new Date('2031-06-01T12:00:00Z');
const ROLES = ['root', 'timestamp', 'snapshot', 'targets', 'targets/releases', 'targets/qa', 'targets/releases/nightly'] as const;
const TAGS = ['v1.0', 'v2.0', 'qa/rc1', 'nightly/20310601', 'hello-file', 'v9'];
const REQUIREMENTS: Array<DelegationRequirement | undefined> = [
  undefined,
  { roles: ['targets/releases'], threshold: 1 },
  { roles: ['targets/qa'], threshold: 1 },
  { roles: ['targets/releases', 'targets/releases/nightly'], threshold: 1 },
];

export interface CaseOutcome {
  /** raw / resigned, and whether the load went through. */
  label: string;
  accepted: boolean;
  note: string;
  finding?: string;
  /** The mutated file, for the reproducer. */
  role: string;
  bytes: Buffer;
}

/** Serves a forged repository from memory, without the event-loop turns of a network. */
export class MapSource implements MetadataSource {
  readonly server = 'fuzz://forge';
  constructor(
    readonly gun: string,
    private readonly files: Map<string, Buffer>,
    private readonly roots: Buffer[],
  ) {}

  fetch(req: MetadataRequest): Promise<Uint8Array> {
    const bytes = req.version !== undefined ? this.roots[req.version - 1] : this.files.get(req.role);
    if (!bytes) return Promise.reject(new FetchError('not-found', this.server, req.role, 'no such file'));
    if (bytes.length > req.maxBytes) return Promise.reject(new FetchError('too-large', this.server, req.role, `more than ${req.maxBytes} bytes`));
    return Promise.resolve(bytes);
  }
}

type Verdicts = string[];

function verdicts(repo: TrustedRepository): Verdicts {
  const out: string[] = [];
  for (const req of REQUIREMENTS) {
    for (const tag of TAGS) {
      const r = signedDigest(repo, { tag }, req, FUZZ_NOW);
      out.push(r.ok ? r.digest : `deny:${r.code}`);
    }
  }
  return out;
}

/** Canonical bytes of the `signed` part as the core would sign-check them, or undefined. */
function signedCanonical(bytes: Uint8Array, role: string): Buffer | undefined {
  try {
    const doc = parseJson(bytes, role);
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || doc['signed'] === undefined) return undefined;
    return canonicalBytes(doc['signed'], role);
  } catch {
    return undefined;
  }
}

export class MetadataFuzzer {
  private constructor(
    private readonly forge: RepoForge,
    private readonly base: ForgedRepo,
    private readonly pin: RootPin,
    private readonly baseline: TrustedRepository,
    private readonly expected: Verdicts,
  ) {}

  static async create(): Promise<MetadataFuzzer> {
    const forge = new RepoForge({ now: FUZZ_NOW });
    const base = forge.build();
    const pin = pinFromPem(base.rootPems, 1);
    const baseline = await loadRepository(new MapSource(base.gun, base.files, base.roots), { pin, now: FUZZ_NOW });
    const expected = verdicts(baseline);
    if (!expected.some((v) => v.startsWith('sha256:'))) throw new Error('fuzz baseline resolves no image: the forge changed');
    return new MetadataFuzzer(forge, base, pin, baseline, expected);
  }

  private keyOf(role: string): ForgeKey {
    const k = this.forge.keys;
    switch (role) {
      case 'root':
        return k.root[0]!;
      case 'timestamp':
        return k.timestamp;
      case 'snapshot':
        return k.snapshot;
      case 'targets':
        return k.targets;
      case 'targets/releases':
        return k.releases;
      case 'targets/qa':
        return k.qa;
      default:
        return k.nightly;
    }
  }

  async runCase(rng: Prng): Promise<CaseOutcome> {
    const role = rng.pick(ROLES);
    const resigned = rng.chance(0.3);
    const original = this.base.get(role);
    const notes: string[] = [];
    const files = new Map(this.base.files);
    let bytes: Buffer;
    if (resigned) {
      bytes = this.resign(role, rng, notes, files);
    } else {
      bytes = original;
      const rounds = 1 + rng.int(3);
      for (let i = 0; i < rounds; i++) {
        if (rng.chance(0.6)) {
          let tree: { value: Node };
          try {
            tree = { value: parseTree(bytes.toString('utf8')) };
          } catch {
            break; // nested too deep for the tree parser: mutate no further
          }
          notes.push(mutateTree(tree, rng, rng.pick(TREE_MUTATIONS)));
          bytes = Buffer.from(serialize(tree.value), 'utf8');
        } else {
          const m = mutateBytes(bytes, rng, rng.pick(BYTE_MUTATIONS));
          notes.push(m.note);
          bytes = m.bytes;
        }
        // Later tree mutations need parseable text; a byte mutation that broke it ends the round.
        try {
          JSON.parse(bytes.toString('utf8'));
        } catch {
          break;
        }
      }
      files.set(role, bytes);
    }
    const roots = role === 'root' ? [files.get('root')!] : this.base.roots;
    const refresh = rng.chance(0.3);
    const label = `${resigned ? 'resigned' : 'raw'}${refresh ? '+refresh' : ''}`;
    const note = `${role}: ${notes.join('; ')}`;
    let repo: TrustedRepository;
    try {
      repo = await loadRepository(new MapSource(this.base.gun, files, roots), {
        pin: this.pin,
        now: FUZZ_NOW,
        ...(refresh ? { previous: this.baseline } : {}),
      });
    } catch (e) {
      if (e instanceof TufError || e instanceof FetchError) return { label, accepted: false, note, role, bytes };
      return { label, accepted: false, note, role, bytes, finding: `crash: ${(e as Error)?.stack ?? String(e)}` };
    }
    let got: Verdicts;
    try {
      got = verdicts(repo);
      repo.assertFresh(FUZZ_NOW);
    } catch (e) {
      return { label, accepted: true, note, role, bytes, finding: `crash after load: ${(e as Error)?.stack ?? String(e)}` };
    }
    const finding = resigned ? this.checkWellFormed(got) : this.checkNoForgery(got, role, original, bytes);
    return { label, accepted: true, note, role, bytes, ...(finding ? { finding } : {}) };
  }

  /** Raw mutations: any new or changed allow must come from bytes whose signed part is untouched. */
  private checkNoForgery(got: Verdicts, role: string, original: Buffer, mutated: Buffer): string | undefined {
    const gained = got.flatMap((v, i) => (v.startsWith('sha256:') && v !== this.expected[i] ? [i] : []));
    if (gained.length === 0) return undefined;
    const before = signedCanonical(original, role)!;
    const after = signedCanonical(mutated, role);
    if (after && after.equals(before)) return undefined;
    const i = gained[0]!;
    return `forged allow: query ${i} (${TAGS[i % TAGS.length]}) resolves to ${got[i]} instead of ${this.expected[i]} after a change to the signed part of ${role}`;
  }

  /** Re-signed mutations may change answers, but every answer must still be a sha256 digest or a denial. */
  private checkWellFormed(got: Verdicts): string | undefined {
    const bad = got.find((v) => !/^sha256:[0-9a-f]{64}$/.test(v) && !/^deny:[a-z-]+$/.test(v));
    return bad === undefined ? undefined : `malformed verdict ${JSON.stringify(bad)}`;
  }

  /** Mutate the signed body, sign it with the role's key, and re-declare it in snapshot/timestamp. */
  private resign(role: string, rng: Prng, notes: string[], files: Map<string, Buffer>): Buffer {
    const original = openEnvelope(this.base.get(role));
    const tree = { value: parseTree(JSON.stringify(original.signed)) as Node };
    const rounds = 1 + rng.int(2);
    for (let i = 0; i < rounds; i++) notes.push(mutateTree(tree, rng, rng.pick(TREE_MUTATIONS)));
    const signedText = serialize(tree.value);
    // Sign what the core will check: its own canonical form of what it parses. Bodies it
    // cannot canonicalise keep the old signatures (they are refused either way).
    let signatures = original.signatures;
    try {
      const doc = parseJson(Buffer.from(signedText, 'utf8'), role);
      const key = this.keyOf(role);
      const sig = key.sign(canonicalBytes(doc, role));
      signatures = [{ keyid: key.id, method: key.defaultMethod, sig: sig.toString('base64') }];
    } catch {
      notes.push('(not signable)');
    }
    const bytes = Buffer.from(`{"signed":${signedText},"signatures":${JSON.stringify(signatures)}}`, 'utf8');
    files.set(role, bytes);
    if (role === 'timestamp') return bytes;
    if (role !== 'snapshot') {
      const snap = openEnvelope(this.base.get('snapshot')).signed;
      if (snap.meta[role]) snap.meta[role] = fileMeta(bytes);
      files.set('snapshot', envelope(snap, [this.forge.keys.snapshot]));
    }
    const ts = openEnvelope(this.base.get('timestamp')).signed;
    ts.meta.snapshot = fileMeta(files.get('snapshot')!);
    files.set('timestamp', envelope(ts, [this.forge.keys.timestamp]));
    return bytes;
  }
}
