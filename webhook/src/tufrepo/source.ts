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
  maxBytes: number;
}

export interface SpecSource {
  /** Human-readable origin for messages: the metadata base URL or the directory. */
  readonly server: string;
  fetch(req: SpecFileRequest, signal?: AbortSignal): Promise<Uint8Array>;
}
