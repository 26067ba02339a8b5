/**
 * The verification core: bytes and a clock in, verified metadata or a TufError out. Where
 * each rule lives (Notary dialect at this level, TUF 1.0 in tuf1/, shared rules here):
 *   threshold counting            threshold.ts (both; tuf1/threshold.ts says how a TUF 1.0 signature is checked)
 *   expiry (freeze attack)        expiry.ts (both)
 *   version floor (rollback)      version-floor.ts (both)
 *   length and hashes declared    declared-file.ts (both)
 *   delegated-path matching,      delegation.ts (Notary: prefixes, name rule, role map)
 *   path restriction                tuf1/delegation.ts (TUF 1.0: patterns, hash prefixes, bins)
 *   root trust                    root-trust.ts (Notary: x509, GUN, pins) / tuf1/trusted-set.ts, tuf1/pinning.ts
 *   client order                  trusted-set.ts / tuf1/trusted-set.ts (+ tuf1/walk.ts)
 *   lookups                       repository.ts (Notary); the TUF 1.0 lookups live in tufrepo/
 */
export { TufError, type TufErrorCode } from './errors.js';
export { pinFromPem, type RootPin } from './pinning.js';
export {
  TrustedMetadataSet,
  checkAgainstMeta,
  type Verified,
  type VerifiedRoot,
  type VerifiedDelegation,
  type TrustedParts,
} from './trusted-set.js';
export { verifyPinnedRoot, verifyNextRoot } from './root-trust.js';
export { restrictPaths } from './delegation.js';
export { MAX_ROOT_BYTES, MAX_TIMESTAMP_BYTES, MAX_SNAPSHOT_BYTES, MAX_TARGETS_BYTES } from './caps.js';
export type { VersionFloor } from './version-floor.js';
export { TrustedRepository, type SignedTarget } from './repository.js';
export type { Root, Timestamp, Snapshot, Targets, DelegatedRole, FileMeta } from './metadata.js';
export { canonicalBytes } from './canonical.js';
export { keyId, type PublicKey } from './keys.js';
export { repositoryToWire, repositoryFromWire, type RepositoryWire } from './transfer.js';
