/**
 * Where a TUF 1.0 repository's metadata comes from: a static HTTP(S) server or a directory.
 * A source delivers at most `maxBytes` of one file or throws a FetchError (the same error
 * type as the Notary sources, so denials read the same); it never interprets the bytes.
 */
export { FetchError, type FetchErrorKind } from '../notary/source.js';

export interface SpecFileRequest {
  /** The role the file holds, for messages ("root", "timestamp", "payments-release"). */
  role: string;
  /** The file name relative to the metadata base URL, already quoted (file-names.ts). */
  file: string;
  /** An unversioned name a directory may hold instead (VERSION.ROLE.json -> ROLE.json). */
  fallback?: string;
  /** The most bytes accepted: what `declared` says, else the client's cap for the role. */
  maxBytes: number;
  /**
   * `maxBytes` is the length trusted metadata declares (the timestamp's for the snapshot,
   * the snapshot's for a targets role), not a client default: the file must be exactly that
   * long, so a limit below it refuses the file without a request (notary/server-limits.ts).
   */
  declared?: boolean;
}

export interface SpecSource {
  /** Human-readable origin for messages: the metadata base URL or the directory. */
  readonly server: string;
  fetch(req: SpecFileRequest, signal?: AbortSignal): Promise<Uint8Array>;
}
