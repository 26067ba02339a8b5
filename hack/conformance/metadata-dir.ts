/**
 * The conformance client's METADATA_DIR: the metadata it trusts, one file per role under the
 * unversioned name the suite reads (root.json, timestamp.json, a delegated role's quoted
 * name + ".json"). Files are replaced atomically, so a failed or killed refresh leaves the
 * previous trusted file or the new verified one, never a mix.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { quoteRoleName } from '../../webhook/src/tufrepo/file-names.js';
import type { SpecLocalMetadata } from '../../webhook/src/tufrepo/updater.js';

export class MetadataDir implements SpecLocalMetadata {
  constructor(readonly dir: string) {}

  fileOf(role: string): string {
    return path.join(this.dir, `${quoteRoleName(role)}.json`);
  }

  /** A stored file that cannot be read counts as absent: it would be verified before use anyway. */
  async read(role: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.fileOf(role));
    } catch {
      return undefined;
    }
  }

  write(role: string, bytes: Uint8Array): Promise<void> {
    return writeAtomically(this.fileOf(role), bytes);
  }
}

/** Write a temporary sibling (a dot name without ".json", so no reader mistakes it for metadata), flush, rename. */
export async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const handle = await open(tmp, 'w', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
