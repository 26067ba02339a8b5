/**
 * MetadataSource for a directory of role files (air-gapped use, audits): `root.json`,
 * `<N>.root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, and delegations as
 * nested paths (`targets/releases.json`). Hash-addressed requests read
 * `<role>.<sha256>.json` when the bundle has it and `<role>.json` otherwise; the verifier
 * checks the hash either way.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import * as path from 'node:path';
import { FetchError, type MetadataRequest, type MetadataSource } from './source.js';
import { metadataFileName } from './paths.js';

export interface DirSourceOptions {
  dir: string;
  gun: string;
  /** How the origin is named in messages; default the directory's absolute path. */
  server?: string;
}

const CHUNK = 64 * 1024;

export class DirSource implements MetadataSource {
  readonly server: string;
  readonly gun: string;
  private readonly dir: string;

  constructor(opts: DirSourceOptions) {
    if (typeof opts.dir !== 'string' || opts.dir.length === 0) throw new TypeError('metadata directory must be a non-empty path');
    if (typeof opts.gun !== 'string' || opts.gun.length === 0) throw new TypeError('GUN must be a non-empty string');
    this.dir = path.resolve(opts.dir);
    this.gun = opts.gun;
    this.server = opts.server ?? this.dir;
  }

  /** The file names tried for a request, in order (relative to the directory). */
  candidates(req: MetadataRequest): string[] {
    const exact = metadataFileName(req);
    if (req.sha256Hex === undefined) return [exact];
    return [exact, metadataFileName({ role: req.role, maxBytes: req.maxBytes })];
  }

  async fetch(req: MetadataRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const names = this.candidates(req);
    const fail = (kind: FetchError['kind'], reason: string) => new FetchError(kind, this.server, req.role, reason);
    for (const name of names) {
      if (signal?.aborted) throw fail('timeout', `aborted by the caller before reading ${name}`);
      const file = this.resolve(name);
      const bytes = await readCapped(file, req.maxBytes, name, fail);
      if (bytes !== undefined) {
        if (signal?.aborted) throw fail('timeout', `aborted by the caller while reading ${name}`);
        return bytes;
      }
    }
    throw fail('not-found', `no ${names.join(' or ')} in ${this.dir}`);
  }

  private resolve(name: string): string {
    const file = path.resolve(this.dir, ...name.split('/'));
    // Role names are validated to plain segments; this guards the invariant anyway.
    if (!file.startsWith(this.dir + path.sep)) throw new TypeError(`metadata file ${JSON.stringify(name)} would be outside ${this.dir}`);
    return file;
  }
}

/** The file's bytes, undefined when it does not exist; never more than maxBytes read into memory. */
async function readCapped(
  file: string,
  maxBytes: number,
  name: string,
  fail: (kind: FetchError['kind'], reason: string) => FetchError,
): Promise<Uint8Array | undefined> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO planted in the bundle must not hang the reader.
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw fail('unreachable', `cannot open ${name}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw fail('not-found', `${name} is not a regular file`);
    if (st.size > maxBytes) throw fail('too-large', `${name} has ${st.size} bytes, more than the limit of ${maxBytes}`);
    // The file may grow between stat and read: read at most one byte past the cap.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(CHUNK, maxBytes + 1 - total);
      if (want <= 0) break;
      const buf = Buffer.alloc(want);
      const { bytesRead } = await fh.read(buf, 0, want, total);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
    }
    if (total > maxBytes) throw fail('too-large', `${name} grew past the limit of ${maxBytes} bytes while being read`);
    return new Uint8Array(Buffer.concat(chunks, total));
  } catch (e) {
    if (e instanceof FetchError) throw e;
    throw fail('unreachable', `cannot read ${name}: ${(e as Error).message}`);
  } finally {
    await fh.close();
  }
}
