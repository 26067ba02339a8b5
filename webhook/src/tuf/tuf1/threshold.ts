import { TufError } from '../errors.js';
import type { SpecKey } from './keys.js';
import type { RoleKeys, SpecEnvelope } from './metadata.js';

/**
 * TUF 1.0 §5.3.4 / §5.4.2 / §5.5.3 / §5.6.3: a role's file is trusted when a threshold of the
 * role's keys signs its canonical `signed`. Key IDs are taken as given, so the same public
 * key listed under two IDs (or signing twice) counts once: the count is over keys, not IDs.
 * Unknown keys and bad signatures are skipped and remembered for the refusal message.
 */
export function verifySpecThreshold(env: SpecEnvelope, keys: ReadonlyMap<string, SpecKey>, role: RoleKeys, what = env.role): void {
  const allowed = new Set(role.keyids);
  const signers = new Set<string>();
  const problems: string[] = [];
  for (const s of env.signatures) {
    const key = allowed.has(s.keyid) ? keys.get(s.keyid) : undefined;
    if (!key) {
      problems.push(`signature by key ${short(s.keyid)}, which is not a ${what} key`);
      continue;
    }
    if (signers.has(key.identity)) continue;
    if (key.verify(env.canonical, s.sig)) signers.add(key.identity);
    else problems.push(`invalid ${key.scheme} signature by key ${short(s.keyid)}`);
  }
  if (signers.size < role.threshold) {
    const detail = problems.length ? `; ${[...new Set(problems)].join('; ')}` : '';
    throw new TufError('signature', env.role, `${signers.size} valid signature(s) by distinct ${what} keys, threshold is ${role.threshold}${detail}`);
  }
}

function short(id: string): string {
  return id.length > 12 ? id.slice(0, 12) + '…' : id;
}
