import { TufError } from '../errors.js';
import type { RootPin } from '../pinning.js';
import { identityOfSpki } from './keys.js';
import { parseSpecEnvelope, parseSpecRoot } from './metadata.js';

/**
 * Bootstrap from pinned keys instead of a whole trusted root.json: a threshold of the pinned
 * keys, found among the root's own keys, must sign the root (then §5.2 applies as usual:
 * the root must also meet its own threshold). The refusal names the keys that do sign it,
 * so an admin can see which key to pin.
 */
export function checkPinnedSpecRoot(bytes: Uint8Array, pin: RootPin): void {
  const env = parseSpecEnvelope(bytes, 'root', 'root');
  const root = parseSpecRoot(env);
  const pinned = new Set(pin.keys.map(identityOfSpki));
  const signers = new Set<string>();
  const signedBy: string[] = [];
  const rootKeyIds = new Set(root.roles.root.keyids);
  for (const s of env.signatures) {
    // Only the root role's own keys can vouch for a root, pinned or not.
    const key = rootKeyIds.has(s.keyid) ? root.keys.get(s.keyid) : undefined;
    if (!key || !key.verify(env.canonical, s.sig)) continue;
    signedBy.push(s.keyid);
    if (pinned.has(key.identity)) signers.add(key.identity);
  }
  if (signers.size < pin.threshold) {
    const by = signedBy.length ? `it is signed by ${signedBy.join(', ')}` : 'it carries no valid signature';
    throw new TufError('untrusted-root', 'root', `${signers.size} of the pinned keys sign root v${root.version}, ${pin.threshold} needed; ${by}`);
  }
}
