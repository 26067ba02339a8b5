/**
 * Expiry, the check against a freeze attack, for both dialects and every role: TUF 1.0
 * §5.3.10 (root), §5.4.4 (timestamp), §5.5.6 (snapshot), §5.6.5 (targets and delegations);
 * Notary checks the same in its client order (TUF 0.x layout, FORMAT.md). Metadata is
 * expired when its expiry is not after `now`. Trust data kept in a cache ages too, so
 * lookups check again with the caller's clock.
 */
import { TufError } from './errors.js';

export interface Expiring {
  readonly expires: Date;
  /** As the file wrote it, for messages. */
  readonly expiresText: string;
}

export function isExpired(m: Expiring, now: Date): boolean {
  return m.expires.getTime() <= now.getTime();
}

function expired(role: string, m: Expiring): TufError {
  return new TufError('expired', role, `expired at ${m.expiresText}`);
}

/** The refusal for an expired role, or undefined while it is fresh (for callers that skip rather than throw). */
export function expiryRefusal(role: string, m: Expiring, now: Date): TufError | undefined {
  return isExpired(m, now) ? expired(role, m) : undefined;
}

export function notExpired(role: string, m: Expiring, now: Date): void {
  if (isExpired(m, now)) throw expired(role, m);
}
