/**
 * Root trust of the Notary dialect (FORMAT.md §7.1): which root keys count (x509 leaf
 * certificates issued to the repository's GUN, not SHA-1 signed, valid now), the first root
 * from pinned keys, and root rotation (TUF 1.0 §5.3.4-§5.3.5 in Notary's form: version n+1
 * signed by the keys of version n and by its own). TUF 1.0's root steps are in tuf1/trusted-set.ts and
 * tuf1/pinning.ts.
 */
import { capped, MAX_ROOT_BYTES } from './caps.js';
import { isSha1Signed, sha256 } from './crypto.js';
import { TufError } from './errors.js';
import type { PublicKey } from './keys.js';
import { parseEnvelope, parseRoot, type Envelope, type Root } from './metadata.js';
import type { RootPin } from './pinning.js';
import { short, verifyThreshold } from './threshold.js';
import type { VerifiedRoot } from './trusted-set.js';

const ONE_DAY_MS = 24 * 3600 * 1000;

function commonName(key: PublicKey): string | undefined {
  const line = key.certificate?.subject.split('\n').find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

/**
 * Keys that may sign root: certificates issued to this GUN (Notary binds a root to its
 * repository through the certificate CN, so one repository's root cannot stand in for
 * another's), and for the root in force also within their validity period.
 */
function rootSigningKeys(root: Root, gun: string, now: Date | undefined): { keys: Map<string, PublicKey>; problems: string[] } {
  const keys = new Map<string, PublicKey>();
  const problems: string[] = [];
  for (const id of root.roles.root.keyids) {
    const key = root.keys.get(id)!;
    const cn = commonName(key);
    if (!key.certificate || cn === undefined) {
      problems.push(`root key ${id.slice(0, 12)}… is not an x509 certificate`);
      continue;
    }
    if (key.certificate.ca) {
      problems.push(`root certificate ${id.slice(0, 12)}… is a CA certificate, not a leaf`);
      continue;
    }
    if (isSha1Signed(key.certificate)) {
      problems.push(`root certificate ${id.slice(0, 12)}… uses the broken SHA-1 signature algorithm`);
      continue;
    }
    const matches = cn === gun || (cn.endsWith('*') && gun.startsWith(cn.slice(0, -1)));
    if (!matches) {
      problems.push(`root certificate ${id.slice(0, 12)}… is issued to "${cn}", not "${gun}"`);
      continue;
    }
    if (now) {
      const from = new Date(key.certificate.validFrom).getTime() - ONE_DAY_MS;
      const to = new Date(key.certificate.validTo).getTime();
      if (now.getTime() < from || now.getTime() > to) {
        problems.push(`root certificate ${id.slice(0, 12)}… is valid only from ${key.certificate.validFrom} to ${key.certificate.validTo}`);
        continue;
      }
    }
    keys.set(id, key);
  }
  return { keys, problems };
}

/** A root must meet its own threshold with the keys rootSigningKeys lets count; `now` also checks their validity. */
export function verifyRootSelf(root: Root, env: Envelope, gun: string, now?: Date): Set<string> {
  const { keys, problems } = rootSigningKeys(root, gun, now);
  try {
    return verifyThreshold(env, keys, root.roles.root, `root v${root.version}`);
  } catch (e) {
    // When certificates were set aside, that is the cause to report, not the signatures.
    if (e instanceof TufError && problems.length) {
      throw new TufError('untrusted-root', 'root', `${problems.join('; ')}; so root v${root.version} lacks ${root.roles.root.threshold} valid root signature(s)`);
    }
    throw e;
  }
}

function verifiedRoot(bytes: Uint8Array, root: Root): VerifiedRoot {
  return { meta: root, bytes, sha256: Buffer.from(sha256(bytes)).toString('hex'), length: bytes.length };
}

/**
 * The first trusted root: signed by a threshold of the pinned keys, each of which must be
 * one of the root's own root keys, and by a threshold of its own root keys.
 */
export function verifyPinnedRoot(bytes: Uint8Array, pin: RootPin, gun: string): VerifiedRoot {
  capped(bytes, MAX_ROOT_BYTES, 'root');
  const env = parseEnvelope(bytes, 'root', 'Root');
  const root = parseRoot(env);
  const signers = verifyRootSelf(root, env, gun);
  // Count pinned keys, not root key IDs: one key wrapped in two certificates is still one key.
  const spkiOf = (id: string) => root.keys.get(id)!.spki;
  const inRoot = pin.keys.filter((k) => root.roles.root.keyids.some((id) => spkiOf(id).equals(k)));
  const signed = inRoot.filter((k) => [...signers].some((id) => spkiOf(id).equals(k)));
  if (signed.length < pin.threshold) {
    const v = root.version;
    const by = `it is signed by ${[...signers].map(short).join(', ')}`;
    // Which keys the server does have, so a wrong pin can be told from a wrong server.
    const keys = `its root keys are ${root.roles.root.keyids.join(', ')}`;
    const why =
      signed.length === 0
        ? `none of the pinned keys signs root v${v}; ${by}; ${keys}` + (inRoot.length === 0 ? ` (none of the pinned keys is a root key of root v${v})` : '')
        : `too few pinned keys signed root v${v} (${signed.length} of the required ${pin.threshold}); ${by}; ${keys}`;
    throw new TufError('untrusted-root', 'root', why);
  }
  return verifiedRoot(bytes, root);
}

/** Root rotation: version n+1 must be signed by a threshold of version n's root keys and of its own. */
export function verifyNextRoot(prev: VerifiedRoot, bytes: Uint8Array, gun: string): VerifiedRoot {
  capped(bytes, MAX_ROOT_BYTES, 'root');
  const env = parseEnvelope(bytes, 'root', 'Root');
  const root = parseRoot(env);
  const expected = prev.meta.version + 1;
  if (root.version !== expected) {
    throw new TufError('rollback', 'root', `expected root version ${expected}, got ${root.version}`);
  }
  // The previous root's certificates may have expired since; Notary does not check them here.
  const { keys } = rootSigningKeys(prev.meta, gun, undefined);
  try {
    verifyThreshold(env, keys, prev.meta.roles.root, `previous root v${prev.meta.version}`);
  } catch (e) {
    if (e instanceof TufError) throw new TufError(e.code, 'root', `root v${root.version} is not signed by the keys of root v${prev.meta.version}: ${e.message.replace(/^root: /, '')}`);
    throw e;
  }
  verifyRootSelf(root, env, gun);
  return verifiedRoot(bytes, root);
}
