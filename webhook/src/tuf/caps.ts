/**
 * Byte caps of the Notary dialect (sizes seen: FORMAT.md §10), applied before any parsing (TUF 1.0's are the updater's
 * settings, tufrepo/updater.ts). Files whose length no signed metadata declares (root,
 * timestamp) have only these; the others must also match the declared length.
 */
import { TufError } from './errors.js';

export const MAX_ROOT_BYTES = 512 * 1024;
export const MAX_TIMESTAMP_BYTES = 64 * 1024;
export const MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024;
export const MAX_TARGETS_BYTES = 64 * 1024 * 1024;

export function capped(bytes: Uint8Array, max: number, role: string): void {
  if (bytes.length > max) throw new TufError('too-large', role, `${bytes.length} bytes exceed the cap of ${max}`);
}
