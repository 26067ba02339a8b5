/**
 * Messages between the main thread and a verification worker, and errors as plain data
 * (a structured clone keeps neither class nor code of TufError and FetchError).
 */
import type { GetFailureKind } from '../notary/http-get.js';
import { FetchError, type FetchErrorKind, type MetadataRequest, type RemoteGetRequest } from '../notary/source.js';
import { TufError, type RepositoryWire, type TufErrorCode } from '../tuf/index.js';

export type ErrorWire =
  | { kind: 'tuf'; code: TufErrorCode; role: string; message: string }
  | { kind: 'fetch'; fetchKind: FetchErrorKind; server: string; role: string; message: string; status?: number }
  | { kind: 'other'; message: string };

export type ToWorker =
  | {
      type: 'load';
      job: number;
      gun: string;
      server: string;
      pin: { keys: Uint8Array[]; threshold: number };
      now: Date;
      floor: Map<string, number>;
    }
  | { type: 'fetched'; fid: number; bytes: Uint8Array }
  /** The answer is the body the worker received itself for its GET `held`. */
  | { type: 'fetched-held'; fid: number; held: number }
  | { type: 'fetch-failed'; fid: number; error: ErrorWire }
  /** Run this GET of the current job and keep the body of a 200 (a fetch of a large file). */
  | { type: 'get'; gid: number; req: RemoteGetRequest }
  | { type: 'get-abort'; gid: number };

export type FromWorker =
  | { type: 'fetch'; job: number; fid: number; req: MetadataRequest }
  | { type: 'done'; job: number; wire: RepositoryWire }
  | { type: 'failed'; job: number; error: ErrorWire }
  /** The answer to a GET; the body of a 200 stays in the worker (only its length comes). */
  | { type: 'got'; gid: number; res: GotWire }
  | { type: 'get-failed'; gid: number; kind: GetFailureKind; message: string };

export interface GotWire {
  status: number;
  statusMessage: string;
  headers: Record<string, string | string[] | undefined>;
  challenges: string[];
  /** Empty for a 200; otherwise the (capped) error body. */
  body: Uint8Array;
  /** Bytes of the body of a 200. */
  length: number;
}

export function errorToWire(e: unknown): ErrorWire {
  if (e instanceof TufError) return { kind: 'tuf', code: e.code, role: e.role, message: e.message.slice(e.role.length + 2) };
  if (e instanceof FetchError) {
    const prefix = `${e.role} from ${e.server}: `;
    const message = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
    return { kind: 'fetch', fetchKind: e.kind, server: e.server, role: e.role, message, ...(e.status !== undefined ? { status: e.status } : {}) };
  }
  return { kind: 'other', message: e instanceof Error ? e.message : String(e) };
}

export function errorFromWire(w: ErrorWire): Error {
  if (w.kind === 'tuf') return new TufError(w.code, w.role, w.message);
  if (w.kind === 'fetch') return new FetchError(w.fetchKind, w.server, w.role, w.message, w.status);
  return new Error(w.message);
}
