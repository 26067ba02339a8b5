/**
 * Verified repositories kept between admissions. One refresh at a time per repository
 * (concurrent admissions share it); refreshed in the background once older than the
 * refresh interval; served through a trust-server outage only while every role is
 * unexpired and, if the policy says so, not older than its max age. Bounded (LRU).
 */
import type { TrustedRepository } from '../tuf/index.js';

export interface CachedRepository {
  repo: TrustedRepository;
  /** When a refresh from the trust server last succeeded (ms since epoch). */
  verifiedAt: number;
  hit: boolean;
  /** Set when the latest refresh failed and the cached data is served anyway. */
  refreshError?: unknown;
}

interface Entry {
  repo?: TrustedRepository;
  verifiedAt: number;
  refreshing?: Promise<TrustedRepository>;
  lastError?: unknown;
}

export interface CacheOptions {
  refreshIntervalMs?: number;
  maxEntries?: number;
  clock?: () => Date;
}

export type Loader = (previous: TrustedRepository | undefined) => Promise<TrustedRepository>;

export class RepositoryCache {
  private readonly entries = new Map<string, Entry>();
  readonly refreshIntervalMs: number;
  readonly maxEntries: number;
  private readonly clock: () => Date;

  constructor(opts: CacheOptions = {}) {
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 60_000;
    this.maxEntries = opts.maxEntries ?? 2000;
    this.clock = opts.clock ?? (() => new Date());
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * @param maxAgeMs the policy's freshness bound: cached data older than this (since the
   *   last successful refresh) is not served, even if unexpired.
   */
  async get(key: string, load: Loader, maxAgeMs?: number): Promise<CachedRepository> {
    const entry = this.touch(key);
    const now = this.clock().getTime();
    if (entry.repo && usable(entry, now, maxAgeMs)) {
      if (now - entry.verifiedAt >= this.refreshIntervalMs) void this.refresh(entry, load).catch(() => undefined);
      const cached: CachedRepository = { repo: entry.repo, verifiedAt: entry.verifiedAt, hit: true };
      return entry.lastError === undefined ? cached : { ...cached, refreshError: entry.lastError };
    }
    try {
      const repo = await this.refresh(entry, load);
      return { repo, verifiedAt: entry.verifiedAt, hit: false };
    } catch (e) {
      // The trust server failed; still-valid verified data may carry on, nothing older.
      const later = this.clock().getTime();
      if (entry.repo && usable(entry, later, maxAgeMs)) {
        return { repo: entry.repo, verifiedAt: entry.verifiedAt, hit: true, refreshError: e };
      }
      throw e;
    }
  }

  private refresh(entry: Entry, load: Loader): Promise<TrustedRepository> {
    entry.refreshing ??= load(entry.repo)
      .then((repo) => {
        entry.repo = repo;
        entry.verifiedAt = this.clock().getTime();
        entry.lastError = undefined;
        return repo;
      })
      .catch((e: unknown) => {
        entry.lastError = e;
        throw e;
      })
      .finally(() => {
        entry.refreshing = undefined;
      });
    return entry.refreshing;
  }

  private touch(key: string): Entry {
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      entry = { verifiedAt: 0 };
    }
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return entry;
  }
}

function usable(entry: Entry, now: number, maxAgeMs: number | undefined): boolean {
  if (!entry.repo || entry.repo.expires.getTime() <= now) return false;
  return maxAgeMs === undefined || now - entry.verifiedAt <= maxAgeMs;
}
