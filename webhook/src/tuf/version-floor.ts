/**
 * The version floor, the check against a rollback attack, for both dialects: TUF 1.0
 * §5.4.3 (timestamp, and the snapshot version it names), §5.5.5 (each targets role the
 * snapshot lists); Notary applies it to every role by name. A floor is the highest version
 * trusted so far (a high-water mark kept between loads); nothing below it is accepted.
 * Which key a role's mark is kept under is the dialect's (tuf1/trusted-set.ts epochKey).
 */
import { TufError } from './errors.js';

/** Highest version trusted so far, by mark (a role name, or a dialect's key for it). */
export type VersionFloor = ReadonlyMap<string, number>;

/**
 * Refuses `version` when it is below `floor`. `claim` is the refusal up to "older than", so it
 * can say which file named the version ("version 3 is", "names snapshot version 3,").
 */
export function notRolledBack(role: string, version: number, floor: number | undefined, claim = `version ${version} is`): void {
  if (floor !== undefined && version < floor) {
    throw new TufError('rollback', role, `${claim} older than version ${floor} already trusted`);
  }
}
