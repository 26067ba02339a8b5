/**
 * Verified repositories kept between admissions. One refresh at a time per repository
 * (concurrent admissions share it); refreshed once older than the refresh interval; served
 * through a slow or failing trust server only while every role is unexpired and, if the
 * policy says so, not older than its max age. Bounded (approximate LRU).
 *
 * A repository with nothing usable whose load failed is remembered apart (bounded too), so
 * that admissions during its backoff get the same reason at once instead of fetching and
 * parsing a hostile or broken repository again each time; the backoff doubles per failure
 * up to a cap and a success forgets it.
 */
import type { TrustedRepository } from '../tuf/index.js';

/** What the cache needs of verified trust data (Notary's TrustedRepository, TUF 1.0's SpecRepository). */
export interface Expiring {
  /** The earliest expiry of what the data was verified with: past it, nothing is served. */
  readonly expires: Date;
}

export interface CachedRepository<R extends Expiring = TrustedRepository> {
  repo: R;
  /** When a refresh from the trust server last succeeded (ms since epoch). */
  verifiedAt: number;
  hit: boolean;
  /** Set when the latest refresh failed and the cached data is served anyway. */
  refreshError?: unknown;
}

interface Entry<R extends Expiring> {
  repo?: R;
  verifiedAt: number;
  refreshing?: Promise<R>;
  /** When the last refresh failed (ms), so an outage is not waited on by every admission. */
  failedAt?: number;
  /** The LRU clock (count of insertions) when this entry last moved to the young end. */
  usedAt: number;
}

export interface CacheOptions {
  refreshIntervalMs?: number;
  maxEntries?: number;
  /** While the trust server is failing, how often an admission may wait for another try. */
  retryMs?: number;
  /**
   * How long an admission waits on a due refresh before answering from still-valid verified
   * data (the refresh carries on): a stalled trust server must not hold admissions to the deadline.
   */
  refreshWaitMs?: number;
  /**
   * How long a repository with nothing usable is not tried again after its first failed load
   * (default: the retry period or the refresh interval, whichever is shorter); doubled per
   * further failure up to maxBackoffMs.
   */
  failureBackoffMs?: number;
  /** Longest wait between two tries of a repository whose loads keep failing. */
  maxBackoffMs?: number;
  /** How many failed repositories are remembered (oldest forgotten first). */
  maxFailures?: number;
  clock?: () => Date;
}

interface Failure {
  error: unknown;
  /** No new load before this time (ms since epoch). */
  retryAt: number;
  /** Consecutive failures: the backoff doubles with each. */
  count: number;
}

export type Loader<R extends Expiring = TrustedRepository> = (previous: R | undefined) => Promise<R>;

export class RepositoryCache<R extends Expiring = TrustedRepository> {
  private readonly entries = new Map<string, Entry<R>>();
  private readonly failures = new Map<string, Failure>();
  private uses = 0;
  readonly refreshIntervalMs: number;
  readonly maxEntries: number;
  readonly retryMs: number;
  readonly refreshWaitMs: number;
  readonly failureBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxFailures: number;
  private readonly clock: () => Date;
  private readonly evicted = new Set<(key: string) => void>();

  constructor(opts: CacheOptions = {}) {
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 60_000;
    this.maxEntries = opts.maxEntries ?? 2000;
    this.retryMs = opts.retryMs ?? 10_000;
    this.refreshWaitMs = opts.refreshWaitMs ?? 1000;
    this.failureBackoffMs = opts.failureBackoffMs ?? Math.min(this.retryMs, this.refreshIntervalMs);
    this.maxBackoffMs = Math.max(this.failureBackoffMs, opts.maxBackoffMs ?? 300_000);
    this.maxFailures = opts.maxFailures ?? 4096;
    this.clock = opts.clock ?? (() => new Date());
  }

  get size(): number {
    return this.entries.size;
  }

  /** Calls `listener` with the key of each entry the size bound pushes out, so what is derived from it (gauges) stays bounded too. */
  onEvict(listener: (key: string) => void): void {
    this.evicted.add(listener);
  }

  /**
   * The warm path without a promise: verified data still inside the refresh interval (and
   * the policy's max age), or undefined when `get` has to decide.
   */
  peek(key: string, maxAgeMs?: number): CachedRepository<R> | undefined {
    const entry = this.entries.get(key);
    if (!entry?.repo) return undefined;
    const now = this.clock().getTime();
    if (now - entry.verifiedAt >= this.refreshIntervalMs || !usable(entry, now, maxAgeMs)) return undefined;
    this.promote(key, entry);
    return { repo: entry.repo, verifiedAt: entry.verifiedAt, hit: true };
  }

  /**
   * @param maxAgeMs the policy's freshness bound: cached data older than this (since the
   *   last successful refresh) is not served, even if unexpired.
   */
  async get(key: string, load: Loader<R>, maxAgeMs?: number): Promise<CachedRepository<R>> {
    // Within the refresh interval the verified data answers alone; after it, the caller waits
    // (up to refreshWaitMs) for the shared refresh, so a revoked or re-signed tag is seen
    // within one interval while the trust server answers.
    const warm = this.peek(key, maxAgeMs);
    if (warm) return warm;
    const now = this.clock().getTime();
    const failure = this.failures.get(key);
    const stored = this.entries.get(key);
    if (failure && now < failure.retryAt && !stored?.refreshing && !(stored?.repo && usable(stored, now, maxAgeMs))) {
      // Nothing usable and the last try failed: the same answer until the backoff ends.
      throw failure.error;
    }
    const entry = this.touch(key);
    if (entry.repo && usable(entry, now, maxAgeMs)) {
      // During an outage, retry in the background at most once per retry period.
      if (entry.failedAt !== undefined && now - entry.failedAt < this.retryMs) {
        if (!entry.refreshing) void this.refresh(key, entry, load).catch(() => undefined);
        return { repo: entry.repo, verifiedAt: entry.verifiedAt, hit: true, refreshError: 'trust server unavailable' };
      }
    }
    try {
      const refreshing = this.refresh(key, entry, load);
      const fallback = entry.repo;
      if (fallback) {
        const slow = await waitAtMost(refreshing, this.refreshWaitMs);
        if (slow && usable(entry, this.clock().getTime(), maxAgeMs)) {
          refreshing.catch(() => undefined);
          return { repo: fallback, verifiedAt: entry.verifiedAt, hit: true, refreshError: 'trust server slow to answer' };
        }
      }
      const repo = await refreshing;
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

  private refresh(key: string, entry: Entry<R>, load: Loader<R>): Promise<R> {
    entry.refreshing ??= load(entry.repo)
      .then((repo) => {
        entry.repo = repo;
        entry.verifiedAt = this.clock().getTime();
        entry.failedAt = undefined;
        this.failures.delete(key);
        return repo;
      })
      .catch((e: unknown) => {
        entry.failedAt = this.clock().getTime();
        this.rememberFailure(key, e, entry.failedAt);
        // Nothing verified to keep: a repository that was never loaded leaves no trace, so
        // a stream of unknown images cannot fill the cache with empty entries.
        if (!entry.repo && this.entries.get(key) === entry) this.entries.delete(key);
        throw e;
      })
      .finally(() => {
        entry.refreshing = undefined;
      });
    return entry.refreshing;
  }

  /** When a repository that failed may be tried again, if it is backing off (ms since epoch). */
  retryAt(key: string): number | undefined {
    return this.failures.get(key)?.retryAt;
  }

  private rememberFailure(key: string, error: unknown, at: number): void {
    const count = (this.failures.get(key)?.count ?? 0) + 1;
    const backoff = Math.min(this.maxBackoffMs, this.failureBackoffMs * 2 ** Math.min(count - 1, 20));
    this.failures.delete(key);
    this.failures.set(key, { error, retryAt: at + backoff, count });
    while (this.failures.size > this.maxFailures) this.failures.delete(this.failures.keys().next().value as string);
  }

  private touch(key: string): Entry<R> {
    const found = this.entries.get(key);
    if (found) {
      this.promote(key, found);
      return found;
    }
    const entry: Entry<R> = { verifiedAt: 0, usedAt: ++this.uses };
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      for (const l of this.evicted) l(oldest);
    }
    return entry;
  }

  /**
   * Move an entry to the young end of the LRU order, but only once it has drifted into the
   * older half: re-inserting on every hit costs more than the lookup it serves.
   */
  private promote(key: string, entry: Entry<R>): void {
    if (this.uses - entry.usedAt < this.maxEntries / 2) return;
    entry.usedAt = ++this.uses;
    this.entries.delete(key);
    this.entries.set(key, entry);
  }
}

/** Resolves true when `p` has not settled within `ms`; never rejects. */
function waitAtMost(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(true), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(false);
    };
    p.then(done, done);
  });
}

function usable(entry: Entry<Expiring>, now: number, maxAgeMs: number | undefined): boolean {
  if (!entry.repo || entry.repo.expires.getTime() <= now) return false;
  return maxAgeMs === undefined || now - entry.verifiedAt <= maxAgeMs;
}
