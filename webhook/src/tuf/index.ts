export { TufError, type TufErrorCode } from './errors.js';
export { pinFromPem, type RootPin } from './pinning.js';
export {
  TrustedMetadataSet,
  verifyPinnedRoot,
  verifyNextRoot,
  checkAgainstMeta,
  restrictPaths,
  MAX_ROOT_BYTES,
  MAX_TIMESTAMP_BYTES,
  MAX_SNAPSHOT_BYTES,
  MAX_TARGETS_BYTES,
  type VersionFloor,
  type Verified,
  type VerifiedRoot,
  type VerifiedDelegation,
  type TrustedParts,
} from './trusted-set.js';
export { TrustedRepository, type SignedTarget } from './repository.js';
export type { Root, Timestamp, Snapshot, Targets, DelegatedRole, FileMeta } from './metadata.js';
export { canonicalBytes } from './canonical.js';
export { keyId, type PublicKey } from './keys.js';
export { repositoryToWire, repositoryFromWire, type RepositoryWire } from './transfer.js';
