import { countThreshold, short } from '../threshold.js';
import type { SpecKey } from './keys.js';
import type { RoleKeys, SpecEnvelope } from './metadata.js';

/**
 * TUF 1.0 §5.3.4 / §5.4.2 / §5.5.3 / §5.6.3: a role's file is trusted when a threshold of the
 * role's keys signs its canonical `signed`. Counting (each public key once, whatever its IDs)
 * is tuf/threshold.ts's; this says only how a TUF 1.0 signature is checked: by the key's scheme.
 */
export function verifySpecThreshold(env: SpecEnvelope, keys: ReadonlyMap<string, SpecKey>, role: RoleKeys, what = env.role): void {
  const allowed = new Set(role.keyids);
  countThreshold(
    env.role,
    env.signatures,
    role.threshold,
    what,
    {
      key: (keyid) => (allowed.has(keyid) ? keys.get(keyid) : undefined),
      identity: (key) => key.identity,
      problem: (key, s) => (key.verify(env.canonical, s.sig) ? undefined : `invalid ${key.scheme} signature by key ${short(s.keyid)}`),
    },
    `distinct ${what} keys`,
  );
}
