/**
 * Threshold counting: the one place that decides whether a role's signatures reach its
 * threshold, for both dialects (Notary v1 here, TUF 1.0 in tuf1/threshold.ts, which only
 * says how its signatures are checked) and every role: root (pinned and rotated), timestamp,
 * snapshot, targets and every delegation.
 *
 * TUF specification 1.0, §5.3.4 (and the same check for each later role): "When computing
 * the THRESHOLD each KEY MUST only contribute one SIGNATURE." A key ID is a hash of how a key
 * is written, not of the key (a plain key and a certificate of it, other PEM whitespace,
 * another base64 spelling, a compressed EC point), so keys are told apart by their public key
 * (DER SubjectPublicKeyInfo), as root pinning does. Notary's own counting (FORMAT.md §4) goes
 * by key ID and is stricter here on purpose.
 */
import { TufError } from './errors.js';
import { methodsFor, type PublicKey } from './keys.js';
import type { Envelope, RoleKeys } from './metadata.js';

/** How one dialect reads a role's signatures for counting. */
export interface ThresholdCheck<S extends { readonly keyid: string }, K> {
  /** The role's key filed under `keyid`, or undefined when it is not a key of the role. */
  key(keyid: string): K | undefined;
  /** The public key itself (hex DER SPKI), whatever ID it is filed under. */
  identity(key: K): string;
  /** Undefined when `sig` is a valid signature by `key`, else what is wrong with it. */
  problem(key: K, sig: S): string | undefined;
}

/**
 * Count valid signatures by distinct public keys. Unknown keys and bad signatures are skipped,
 * never fatal (as Notary and python-tuf do), but remembered so that a refusal can say what was
 * wrong. `what` names whose keys they must be ("targets", "root v2"); `signers` words them
 * in the summary. Returns the key IDs that counted.
 */
export function countThreshold<S extends { readonly keyid: string }, K>(
  role: string,
  signatures: readonly S[],
  threshold: number,
  what: string,
  check: ThresholdCheck<S, K>,
  signers = `${what} keys`,
): Set<string> {
  const valid = new Set<string>();
  /** Public key -> the key ID under which it counted. */
  const counted = new Map<string, string>();
  const problems: string[] = [];
  for (const s of signatures) {
    if (valid.has(s.keyid)) continue; // a key counts once, however often it signs
    const key = check.key(s.keyid);
    if (key === undefined) {
      problems.push(`signature by key ${short(s.keyid)}, which is not a ${what} key`);
      continue;
    }
    const identity = check.identity(key);
    const earlier = counted.get(identity);
    if (earlier !== undefined) {
      problems.push(`key ${short(s.keyid)} is the same public key as key ${short(earlier)} and counts once`);
      continue;
    }
    const problem = check.problem(key, s);
    if (problem !== undefined) {
      problems.push(problem);
      continue;
    }
    valid.add(s.keyid);
    counted.set(identity, s.keyid);
  }
  if (valid.size < threshold) {
    const detail = problems.length ? `; ${[...new Set(problems)].join('; ')}` : '';
    throw new TufError('signature', role, `${valid.size} valid signature(s) by ${signers}, threshold is ${threshold}${detail}`);
  }
  return valid;
}

/** Notary v1: a signature names its method, which must fit the key type. */
export function verifyThreshold(env: Envelope, keys: Map<string, PublicKey>, role: RoleKeys, what = env.role): Set<string> {
  const allowed = new Set(role.keyids);
  return countThreshold(env.role, env.signatures, role.threshold, what, {
    key: (keyid) => (allowed.has(keyid) ? keys.get(keyid) : undefined),
    identity: (key) => key.spki.toString('hex'),
    problem: (key, s) => {
      if (!methodsFor(key.keytype).includes(s.method)) return `key ${short(s.keyid)} is ${key.keytype} and cannot make "${s.method}" signatures`;
      return key.verify(s.method, env.canonical, s.sig) ? undefined : `invalid ${s.method} signature by key ${short(s.keyid)}`;
    },
  });
}

export function short(id: string): string {
  return id.length > 12 ? id.slice(0, 12) + '…' : id;
}
