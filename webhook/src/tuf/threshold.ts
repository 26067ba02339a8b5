/**
 * Threshold counting: the one place that decides whether a role's signatures reach its
 * threshold, for root (pinned and rotated), timestamp, snapshot, targets and every delegation.
 *
 * TUF specification 1.0, §5.3.4 (and the same check for each later role): "When computing
 * the THRESHOLD each KEY MUST only contribute one SIGNATURE." A key ID is a hash of how a key
 * is written, not of the key (a plain key and a certificate of it, other PEM whitespace,
 * another base64 spelling, a compressed EC point), so keys are told apart by their public key
 * (PublicKey.spki), as root pinning does. Notary's counting (FORMAT.md §4) goes by key ID.
 */
import { TufError } from './errors.js';
import { methodsFor, type PublicKey } from './keys.js';
import type { Envelope, RoleKeys } from './metadata.js';

/**
 * Count valid signatures by distinct public keys of a role. Unknown keys, wrong methods and
 * bad signatures are skipped, never fatal (as Notary does), but remembered so that a refusal
 * can say what was wrong. Returns the IDs of the keys that counted.
 */
export function verifyThreshold(env: Envelope, keys: Map<string, PublicKey>, role: RoleKeys, what = env.role): Set<string> {
  const allowed = new Set(role.keyids);
  const valid = new Set<string>();
  /** Public key (hex SPKI) -> the key ID under which it counted. */
  const counted = new Map<string, string>();
  const problems: string[] = [];
  for (const s of env.signatures) {
    if (valid.has(s.keyid)) continue; // a key counts once, however often it signs
    const key = allowed.has(s.keyid) ? keys.get(s.keyid) : undefined;
    if (!key) {
      problems.push(`signature by key ${short(s.keyid)}, which is not a ${what} key`);
      continue;
    }
    const publicKey = key.spki.toString('hex');
    const earlier = counted.get(publicKey);
    if (earlier !== undefined) {
      problems.push(`key ${short(s.keyid)} is the same public key as key ${short(earlier)} and counts once`);
      continue;
    }
    if (!methodsFor(key.keytype).includes(s.method)) {
      problems.push(`key ${short(s.keyid)} is ${key.keytype} and cannot make "${s.method}" signatures`);
      continue;
    }
    if (key.verify(s.method, env.canonical, s.sig)) {
      valid.add(s.keyid);
      counted.set(publicKey, s.keyid);
    } else problems.push(`invalid ${s.method} signature by key ${short(s.keyid)}`);
  }
  if (valid.size < role.threshold) {
    const detail = problems.length ? `; ${[...new Set(problems)].join('; ')}` : '';
    throw new TufError(
      'signature',
      env.role,
      `${valid.size} valid signature(s) by ${what} keys, threshold is ${role.threshold}${detail}`,
    );
  }
  return valid;
}

export function short(id: string): string {
  return id.length > 12 ? id.slice(0, 12) + '…' : id;
}
