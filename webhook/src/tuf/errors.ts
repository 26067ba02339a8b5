/**
 * Every way trust data can be refused. A code, the role it concerns, and a sentence a
 * person can act on; callers add the image and the server.
 */
export type TufErrorCode =
  | 'malformed' // not JSON, wrong structure, non-integer number, invalid UTF-8
  | 'too-large' // over the byte cap or the length declared by the parent role
  | 'hash-mismatch' // bytes differ from the hash that timestamp/snapshot declared
  | 'signature' // threshold of valid signatures by distinct role keys not reached
  | 'bad-key' // key ID mismatch, unsupported key type, key/method mismatch, weak key
  | 'expired' // expires <= now (freeze attack or stale data)
  | 'rollback' // version below the highest trusted so far
  | 'untrusted-root' // pinned keys absent / not signing, root cert checks
  | 'delegation' // invalid delegation (name, parent, paths)
  | 'not-found'; // role or target absent

export class TufError extends Error {
  override readonly name = 'TufError';
  constructor(
    readonly code: TufErrorCode,
    readonly role: string,
    message: string,
  ) {
    super(`${role}: ${message}`);
  }
}
