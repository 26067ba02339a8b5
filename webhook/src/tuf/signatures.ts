import { TufError } from './errors.js';
import { methodsFor, type PublicKey } from './keys.js';
import type { Envelope, RoleKeys } from './metadata.js';

/**
 * Count valid signatures by distinct keys of a role. Unknown keys, wrong methods and bad
 * signatures are skipped, never fatal (as Notary does), but remembered so that a refusal
 * can say what was wrong. Returns the IDs of the keys that signed.
 */
export function verifyThreshold(env: Envelope, keys: Map<string, PublicKey>, role: RoleKeys, what = env.role): Set<string> {
  const allowed = new Set(role.keyids);
  const valid = new Set<string>();
  const problems: string[] = [];
  for (const s of env.signatures) {
    if (valid.has(s.keyid)) continue; // a key counts once, however often it signs
    const key = allowed.has(s.keyid) ? keys.get(s.keyid) : undefined;
    if (!key) {
      problems.push(`signature by key ${short(s.keyid)}, which is not a ${what} key`);
      continue;
    }
    if (!methodsFor(key.keytype).includes(s.method)) {
      problems.push(`key ${short(s.keyid)} is ${key.keytype} and cannot make "${s.method}" signatures`);
      continue;
    }
    if (key.verify(s.method, env.canonical, s.sig)) valid.add(s.keyid);
    else problems.push(`invalid ${s.method} signature by key ${short(s.keyid)}`);
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
