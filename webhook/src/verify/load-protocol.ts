/**
 * Messages between the main thread and a verification worker, and errors as plain data
 * (a structured clone keeps neither class nor code of TufError and FetchError).
 */
import { FetchError, type FetchErrorKind, type MetadataRequest } from '../notary/source.js';
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
  | { type: 'fetch-failed'; fid: number; error: ErrorWire };

export type FromWorker =
  | { type: 'fetch'; job: number; fid: number; req: MetadataRequest }
  | { type: 'done'; job: number; wire: RepositoryWire }
  | { type: 'failed'; job: number; error: ErrorWire };

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
