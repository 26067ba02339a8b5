/**
 * A file against its parent's declaration, for both dialects: TUF 1.0 §5.5.2 (snapshot
 * against the timestamp's METAFILES entry), §5.6.2 (targets and delegations against the
 * snapshot's); Notary (FORMAT.md) declares the same length and hashes for the same files.
 * The bytes must have the declared length, and each declared hash this client can compute
 * must match. What a dialect requires beyond that (Notary: a length and at least one known
 * hash; TUF 1.0: no hash this client cannot check) it decides from what this returns, and
 * each words a hash mismatch its own way (the refusals people and tests know).
 */
import { sha256, sha512 } from './crypto.js';
import { TufError } from './errors.js';

/** The hash algorithms this client computes. */
const HASHES: ReadonlyMap<string, (bytes: Uint8Array) => Uint8Array> = new Map([
  ['sha256', sha256],
  ['sha512', sha512],
]);

export interface Declaration {
  /** Undefined when the parent declares none (TUF 1.0 makes it optional). */
  readonly length?: number;
  /** Algorithm -> lowercase hex digest, as the parent declares them. */
  readonly hashes: Iterable<readonly [string, string]>;
}

export interface DeclarationChecked {
  /** Algorithms this client cannot compute, so did not check. */
  readonly unchecked: string[];
  readonly checked: number;
  /** The sha256 of the bytes when it was declared (and so computed). */
  readonly sha256?: Uint8Array;
}

/** A dialect's sentence for "the `alg` digest of the bytes is not the declared one". */
export type HashMismatchWording = (alg: string, declaredBy: string) => string;

export function checkDeclaredFile(bytes: Uint8Array, declared: Declaration, role: string, declaredBy: string, hashMismatch: HashMismatchWording): DeclarationChecked {
  const { length } = declared;
  if (length !== undefined && bytes.length > length) {
    throw new TufError('too-large', role, `${bytes.length} bytes, more than the ${length} that ${declaredBy} declares`);
  }
  if (length !== undefined && bytes.length !== length) {
    throw new TufError('hash-mismatch', role, `${bytes.length} bytes, but ${declaredBy} declares ${length}`);
  }
  const unchecked: string[] = [];
  let checked = 0;
  let digest256: Uint8Array | undefined;
  for (const [alg, want] of declared.hashes) {
    const hash = HASHES.get(alg);
    if (!hash) {
      unchecked.push(alg);
      continue;
    }
    const got = hash(bytes);
    if (alg === 'sha256') digest256 = got;
    checked++;
    if (Buffer.from(got).toString('hex') !== want) throw new TufError('hash-mismatch', role, hashMismatch(alg, declaredBy));
  }
  return { unchecked, checked, ...(digest256 ? { sha256: digest256 } : {}) };
}
