/**
 * Names of metadata files as notary-server 0.7.0 serves them, shared by every source so
 * that a directory bundle and a server use the same file names. Everything that ends up
 * in a URL path or a file path is checked here first: a GUN or role name that could
 * climb out of `/v2/<gun>/_trust/tuf/` or out of a bundle directory is refused.
 */
import type { MetadataRequest } from './source.js';

const BASE_ROLES = new Set(['root', 'timestamp', 'snapshot', 'targets']);
// notary's data.IsDelegation: "targets/" prefix, [-a-z0-9_/], path.Clean-clean, < 256 chars.
// Dots are excluded, so a role name can never contain "..", nor be confused with the
// "<role>.<hash>.json" / "<version>.<role>.json" forms.
const DELEGATION = /^targets(?:\/[-a-z0-9_]+)+$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
// Docker repository names (with a registry host and port) need no more than these.
const GUN_CHARS = /^[A-Za-z0-9._:/-]+$/;
const MAX_GUN_LENGTH = 1024;

/** Thrown for requests or configuration that can never name a valid metadata file. */
export class InvalidNameError extends TypeError {
  override readonly name = 'InvalidNameError';
}

export function isValidRole(role: string): boolean {
  return BASE_ROLES.has(role) || (role.length < 256 && DELEGATION.test(role));
}

/**
 * Checks a GUN for use inside a URL path. The official client puts it there unescaped
 * (`/v2/localhost:5000/demo/app/_trust/...`), so anything that a server or proxy could
 * read as path navigation, a query, a fragment or an escape is refused rather than encoded.
 */
export function validateGun(gun: unknown): string {
  if (typeof gun !== 'string' || gun.length === 0) throw new InvalidNameError('GUN must be a non-empty string');
  const shown = JSON.stringify(gun.length > 80 ? `${gun.slice(0, 80)}...` : gun);
  if (gun.length > MAX_GUN_LENGTH) throw new InvalidNameError(`GUN ${shown} is longer than ${MAX_GUN_LENGTH} characters`);
  if (gun.includes('..')) throw new InvalidNameError(`GUN ${shown} contains ".."`);
  const bad = [...gun].find((c) => !GUN_CHARS.test(c));
  if (bad !== undefined) {
    const code = bad.codePointAt(0) ?? 0;
    const what = code < 0x20 || code === 0x7f ? 'a control character' : /\s/.test(bad) ? 'whitespace' : JSON.stringify(bad);
    throw new InvalidNameError(`GUN ${shown} contains ${what}; allowed are letters, digits and . _ : / -`);
  }
  if (gun.startsWith('/') || gun.endsWith('/') || gun.includes('//')) {
    throw new InvalidNameError(`GUN ${shown} has an empty path segment`);
  }
  if (gun.split('/').some((seg) => seg === '.')) throw new InvalidNameError(`GUN ${shown} contains a "." path segment`);
  return gun;
}

function checkRequest(req: MetadataRequest): void {
  if (typeof req.role !== 'string' || !isValidRole(req.role)) {
    throw new InvalidNameError(
      `invalid role name ${JSON.stringify(req.role)}: expected root, timestamp, snapshot, targets or targets/<name> ([-a-z0-9_] segments)`,
    );
  }
  if (!Number.isSafeInteger(req.maxBytes) || req.maxBytes < 0) {
    throw new InvalidNameError(`${req.role}: maxBytes must be a non-negative integer, got ${String(req.maxBytes)}`);
  }
  if (req.version !== undefined && req.sha256Hex !== undefined) {
    throw new InvalidNameError(`${req.role}: a request names either a version or a hash, not both`);
  }
  if (req.version !== undefined && (!Number.isSafeInteger(req.version) || req.version < 1)) {
    throw new InvalidNameError(`${req.role}: version must be a positive integer, got ${String(req.version)}`);
  }
  if (req.sha256Hex !== undefined && (typeof req.sha256Hex !== 'string' || !SHA256_HEX.test(req.sha256Hex))) {
    throw new InvalidNameError(`${req.role}: sha256Hex must be 64 lowercase hex digits, got ${JSON.stringify(req.sha256Hex)}`);
  }
}

/**
 * The file name relative to `_trust/tuf/` (or a bundle directory): `root.json`,
 * `3.root.json`, `snapshot.<sha256>.json`, `targets/releases.<sha256>.json`.
 * Throws InvalidNameError for anything that is not a well-formed request.
 */
export function metadataFileName(req: MetadataRequest): string {
  checkRequest(req);
  // notary-server routes "<version>.<role>.json" with the whole role after the version,
  // also for delegations ("2.targets/releases.json").
  if (req.version !== undefined) return `${req.version}.${req.role}.json`;
  if (req.sha256Hex !== undefined) return `${req.role}.${req.sha256Hex}.json`;
  return `${req.role}.json`;
}

