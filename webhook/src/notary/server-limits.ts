/**
 * How much of this process one trust server may take: loads at once (more wait their turn),
 * bytes fetched and still held by unfinished loads, and the largest metadata file. Trust
 * servers named by namespaced policies (any team may name any server) get their own, lower
 * limits, counted apart from the same server's loads for cluster policies; a total over all
 * servers bounds what many hostile servers can hold together. Both protocols load through
 * here: Notary repositories (verify/engine.ts) and TUF 1.0 repositories, whose lazy
 * delegated-role loads count as loads too (verify/tuf-trust.ts).
 */
import { FetchError, type HeldBytes, type MetadataRequest, type RemoteGet } from './source.js';

/** What runLoad needs of a request; Notary's MetadataRequest and TUF 1.0's SpecFileRequest both are one. */
export interface LimitedRequest {
  role: string;
  maxBytes: number;
  /**
   * `maxBytes` is the length that signed, already trusted metadata declares for the file
   * (TUF 1.0: the timestamp's for the snapshot, the snapshot's for a targets role). A
   * declared length is exact (tuf/declared-file.ts), so one above a cap is refused without a
   * request: no file that could verify would fit.
   */
  declared?: boolean;
  /** Notary: a hash-addressed file, whose length the snapshot declares (declared, as above). */
  sha256Hex?: string;
}

/** What runLoad needs of a source; Notary's MetadataSource and TUF 1.0's SpecSource both are one. */
export interface LimitedSource<R extends LimitedRequest> {
  /** The trust server: limits are kept per scope and server, and refusals name it. */
  readonly server: string;
  fetch(req: R, signal?: AbortSignal): Promise<Uint8Array>;
}

export type PolicyScope = 'cluster' | 'namespaced';

export interface ServerLimits {
  /** Repository loads from one trust server at once; further loads queue. */
  maxConcurrentLoads: number;
  /** Bytes fetched from one trust server and held by loads that have not finished. */
  maxBytesInFlight: number;
  /** Largest snapshot, targets or delegation file accepted (root and timestamp keep their smaller caps). */
  maxMetadataBytes: number;
}

const MiB = 1024 * 1024;

// With the chart's 256Mi: ~90 MB for the process and its caches, at most 48 MiB of metadata
// held (a file counts from download to the end of its load, plus garbage not yet collected),
// and one 64 MB worker heap. A file must fit every budget it counts against, so the caps
// never exceed them.
export const DEFAULT_SERVER_LIMITS: Readonly<Record<PolicyScope, Readonly<ServerLimits>>> = {
  cluster: { maxConcurrentLoads: 16, maxBytesInFlight: 48 * MiB, maxMetadataBytes: 32 * MiB },
  namespaced: { maxConcurrentLoads: 2, maxBytesInFlight: 16 * MiB, maxMetadataBytes: 8 * MiB },
};
/** V8 old-generation limit (MB) of a verification worker (verify/load-workers.ts): the memory one load may use. */
export const DEFAULT_WORKER_MEMORY_MB = 64;

export const DEFAULT_TOTAL_BYTES_IN_FLIGHT = 48 * MiB;

/** The flag that sets each limit, named in refusals so an admin knows what to change. */
const FLAG: Record<PolicyScope, Record<keyof ServerLimits, string>> = {
  cluster: {
    maxConcurrentLoads: '--cluster-server-max-loads',
    maxBytesInFlight: '--cluster-server-max-mib-in-flight',
    maxMetadataBytes: '--cluster-server-max-metadata-mib',
  },
  namespaced: {
    maxConcurrentLoads: '--namespaced-server-max-loads',
    maxBytesInFlight: '--namespaced-server-max-mib-in-flight',
    maxMetadataBytes: '--namespaced-server-max-metadata-mib',
  },
};

export interface TrustServerLimitsOptions {
  cluster?: Partial<ServerLimits>;
  namespaced?: Partial<ServerLimits>;
  /** Bytes held by all unfinished loads together. */
  maxTotalBytesInFlight?: number;
}

interface ServerState {
  active: number;
  bytes: number;
  waiting: (() => void)[];
}

export class TrustServerLimits {
  readonly limits: Record<PolicyScope, ServerLimits>;
  readonly maxTotalBytesInFlight: number;
  private readonly servers = new Map<string, ServerState>();
  private totalBytes = 0;

  constructor(opts: TrustServerLimitsOptions = {}) {
    this.limits = {
      cluster: { ...DEFAULT_SERVER_LIMITS.cluster, ...opts.cluster },
      namespaced: { ...DEFAULT_SERVER_LIMITS.namespaced, ...opts.namespaced },
    };
    this.maxTotalBytesInFlight = opts.maxTotalBytesInFlight ?? DEFAULT_TOTAL_BYTES_IN_FLIGHT;
  }

  /**
   * No limits beyond the caps of tuf/ itself: for the CLI, which verifies one image for the
   * person running it and has no other admissions to protect.
   */
  static none(): TrustServerLimits {
    const open: ServerLimits = { maxConcurrentLoads: Number.MAX_SAFE_INTEGER, maxBytesInFlight: Number.MAX_SAFE_INTEGER, maxMetadataBytes: Number.MAX_SAFE_INTEGER };
    return new TrustServerLimits({ cluster: open, namespaced: open, maxTotalBytesInFlight: Number.MAX_SAFE_INTEGER });
  }

  /** Loads running now and waiting, per scope and server (for tests and metrics). */
  state(scope: PolicyScope, server: string): { active: number; waiting: number; bytes: number } {
    const s = this.servers.get(`${scope}|${server}`);
    return { active: s?.active ?? 0, waiting: s?.waiting.length ?? 0, bytes: s?.bytes ?? 0 };
  }

  /**
   * Runs one repository load once the server has a free slot. `load` gets the source with a
   * fetch that applies the scope's file cap and counts every byte it returns against the
   * server and the total until the load ends. The limited source is the given one with only
   * `fetch` replaced (other fields, such as a Notary source's `gun`, read through), and it
   * serves only while the load runs: fetches still in flight when it ends are aborted, since
   * nothing would count the bytes they hold.
   */
  async runLoad<R extends LimitedRequest, S extends LimitedSource<R>, T>(scope: PolicyScope, source: S, load: (limited: S) => Promise<T>): Promise<T> {
    const key = `${scope}|${source.server}`;
    const limits = this.limits[scope];
    let state = this.servers.get(key);
    if (!state) {
      state = { active: 0, bytes: 0, waiting: [] };
      this.servers.set(key, state);
    }
    const s = state;
    // A finished load hands its slot straight to the next in line, so none is taken twice.
    if (s.active >= limits.maxConcurrentLoads) await new Promise<void>((resolve) => s.waiting.push(resolve));
    else s.active++;
    let held = 0;
    const ended = new AbortController();
    /** Why `n` more bytes cannot be held now (this server's budget, then the total), or undefined. */
    const overBudget = (n: number): string | undefined => {
      if (s.bytes + n > limits.maxBytesInFlight) return `loads from this trust server for ${scope} policies would hold more than ${mib(limits.maxBytesInFlight)} at once (${FLAG[scope].maxBytesInFlight})`;
      if (this.totalBytes + n > this.maxTotalBytesInFlight) return `loads from all trust servers would hold more than ${mib(this.maxTotalBytesInFlight)} at once (--max-total-mib-in-flight)`;
      return undefined;
    };
    const overFileCap = `larger than the ${mib(limits.maxMetadataBytes)} limit for metadata files from trust servers of ${scope} policies (${FLAG[scope].maxMetadataBytes})`;
    const tooLarge = (req: R, reason: string) => new FetchError('too-large', source.server, req.role, reason);
    // Bytes held here or in a verification worker (fetchHeld) count alike: both are this process's memory.
    const counted = async <B extends { length: number }>(req: R, signal: AbortSignal | undefined, get: (capped: R, signal: AbortSignal) => Promise<B>): Promise<B> => {
      if (ended.signal.aborted) throw new Error(`a fetch of ${req.role} from ${source.server} was started after its load ended`);
      // A file larger than a budget it counts against could never be held: refused before
      // a byte is read (by Content-Length, or while reading), like one above the file cap.
      const cap = Math.min(req.maxBytes, limits.maxMetadataBytes, limits.maxBytesInFlight, this.maxTotalBytesInFlight);
      if (req.declared === true || req.sha256Hex !== undefined) {
        // Not one request for a file that cannot fit: the attacker's server never sees it.
        if (req.maxBytes > cap) {
          const why = cap === limits.maxMetadataBytes ? overFileCap : overBudget(req.maxBytes)!;
          throw tooLarge(req, `the signed metadata declares ${req.maxBytes} bytes (${mib(req.maxBytes, true)}), ${why}`);
        }
        // A length that fits the caps but no longer fits what is free right now.
        const busy = overBudget(req.maxBytes);
        if (busy) throw tooLarge(req, busy);
      }
      // A declared length is exact, so it is reserved before the request: downloads running
      // side by side (a lookup's prefetched siblings, a Notary delegation wave) cannot
      // together overshoot the budget before any of them is counted.
      const reserved = req.declared === true || req.sha256Hex !== undefined ? req.maxBytes : 0;
      hold(reserved);
      let bytes: B;
      try {
        bytes = await get(cap === req.maxBytes ? req : { ...req, maxBytes: cap }, signal ? AbortSignal.any([signal, ended.signal]) : ended.signal);
      } catch (e) {
        if (!ended.signal.aborted) hold(-reserved);
        if (cap < req.maxBytes && e instanceof FetchError && e.kind === 'too-large') {
          if (cap === limits.maxMetadataBytes) throw tooLarge(req, overFileCap);
          const busy = overBudget(req.maxBytes);
          throw busy ? tooLarge(req, busy) : e;
        }
        throw e;
      }
      if (ended.signal.aborted) throw new Error(`a fetch of ${req.role} from ${source.server} finished after its load ended`);
      hold(-reserved);
      const over = overBudget(bytes.length);
      if (over) throw tooLarge(req, over);
      hold(bytes.length);
      return bytes;
    };
    /** Counts `n` bytes (negative: releases them) against the server, the total and this load. */
    const hold = (n: number): void => {
      s.bytes += n;
      this.totalBytes += n;
      held += n;
    };
    const props: PropertyDescriptorMap = { fetch: { value: (req: R, signal?: AbortSignal) => counted(req, signal, (capped, sig) => source.fetch(capped, sig)) } };
    // An HTTP Notary source can have a worker run its GETs (see MetadataSource.fetchHeld).
    const fetchHeld = (source as { fetchHeld?: (req: MetadataRequest, via: RemoteGet, signal?: AbortSignal) => Promise<HeldBytes> }).fetchHeld;
    if (fetchHeld) {
      props['fetchHeld'] = { value: (req: R & MetadataRequest, via: RemoteGet, signal?: AbortSignal) => counted(req, signal, (capped, sig) => fetchHeld.call(source, capped as R & MetadataRequest, via, sig)) };
    }
    const limited = Object.create(source, props) as S;
    try {
      return await load(limited);
    } finally {
      ended.abort();
      s.bytes -= held;
      this.totalBytes -= held;
      const next = s.waiting.shift();
      if (next) next();
      else if (--s.active === 0) this.servers.delete(key);
    }
  }
}

/** A limit in the unit of its flag; `approx`: any size, rounded (for what a server declares). */
function mib(bytes: number, approx = false): string {
  const m = bytes / MiB;
  if (approx) return `${m >= 10 ? Math.round(m) : m.toFixed(1)} MiB`;
  return Number.isInteger(m) ? `${m} MiB` : `${bytes} bytes`;
}
