/**
 * A TUF 1.0 repository's metadata in a directory (air-gapped use, audits): `N.root.json`
 * and/or `root.json`, and `ROLE.json` and/or `VERSION.ROLE.json`. A versioned name that is
 * missing falls back to the unversioned one; the verifier checks versions either way.
 */
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { FetchError, type SpecFileRequest, type SpecSource } from './source.js';

export class SpecDirSource implements SpecSource {
  readonly server: string;
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.server = this.dir;
  }

  async fetch(req: SpecFileRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const names = req.fallback ? [req.file, req.fallback] : [req.file];
    for (const name of names) {
      if (signal?.aborted) throw new FetchError('timeout', this.server, req.role, `aborted before reading ${name}`);
      if (name.includes('/') || name === '.' || name === '..') throw new FetchError('not-found', this.server, req.role, `${JSON.stringify(name)} is not a plain file name`);
      const file = path.join(this.dir, name);
      let size: number;
      try {
        const s = await stat(file);
        if (!s.isFile()) continue;
        size = s.size;
      } catch {
        continue;
      }
      if (size > req.maxBytes) throw new FetchError('too-large', this.server, req.role, `${name} is ${size} bytes, over the cap of ${req.maxBytes}`);
      const bytes = await readFile(file);
      if (bytes.length > req.maxBytes) throw new FetchError('too-large', this.server, req.role, `${name} grew past the cap of ${req.maxBytes} bytes while being read`);
      return bytes;
    }
    throw new FetchError('not-found', this.server, req.role, `no ${names.join(' or ')} in ${this.dir}`);
  }
}
