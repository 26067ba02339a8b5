/**
 * One small interface per backend: the verification code asks for a role's bytes, a
 * source delivers at most `maxBytes` of them or throws a FetchError. Sources never
 * interpret the bytes; tuf/ decides whether they are trustworthy.
 */
export interface MetadataRequest {
  /** 'root' | 'timestamp' | 'snapshot' | 'targets' | 'targets/releases' | ... */
  role: string;
  /** Versioned root: `<version>.root.json`. */
  version?: number;
  /** Hash-addressed file as the official client fetches it: `<role>.<sha256 hex>.json`. */
  sha256Hex?: string;
  /** Hard cap: reading stops with a 'too-large' FetchError past it. */
  maxBytes: number;
}

export type FetchErrorKind =
  | 'not-found' // 404 / no such file
  | 'too-large' // more bytes than maxBytes
  | 'timeout' // deadline reached / aborted
  | 'unreachable' // connection refused, reset, DNS
  | 'tls' // certificate not trusted, wrong host
  | 'auth' // 401/403 after the token dance
  | 'http'; // any other status

export class FetchError extends Error {
  override readonly name = 'FetchError';
  constructor(
    readonly kind: FetchErrorKind,
    /** Where it came from: the server URL or the metadata directory. */
    readonly server: string,
    readonly role: string,
    message: string,
    readonly status?: number,
  ) {
    super(`${role} from ${server}: ${message}`);
  }
}

export interface MetadataSource {
  /** Human-readable origin for messages, e.g. "https://notary.example.com:4443". */
  readonly server: string;
  /** The GUN this source serves. */
  readonly gun: string;
  fetch(req: MetadataRequest, signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * The same fetch with its HTTP GET run by `via`, where the bytes are to be verified (a
   * verification worker), so that a large body is never received on this thread; the bytes
   * stay there under a handle. Only sources that speak HTTP have it.
   */
  fetchHeld?(req: MetadataRequest, via: RemoteGet, signal?: AbortSignal): Promise<HeldBytes>;
}

/** Bytes received and kept by whoever ran the GET (see MetadataSource.fetchHeld). */
export interface HeldBytes {
  readonly held: number;
  readonly length: number;
}

/** One HTTP GET as plain data, for a thread that runs it (notary/http-get.ts there). */
export interface RemoteGetRequest {
  url: string;
  headers: Record<string, string>;
  /** PEM CA bundle; replaces the system roots when given. */
  ca?: string;
  maxBytes: number;
}

/**
 * Runs a GET elsewhere: the answer as http-get gives it, except that the body of a 200 stays
 * there (`held`); other bodies (error details, a few KB at most) come back. Rejects with a
 * GetFailure; `signal` stops the request there too.
 */
export type RemoteGet = (
  req: RemoteGetRequest,
  signal: AbortSignal,
  abortReason: () => string,
) => Promise<{ status: number; statusMessage: string; headers: Record<string, string | string[] | undefined>; challenges: string[]; body: Uint8Array; held?: HeldBytes }>;
