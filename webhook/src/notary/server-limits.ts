/**
 * How much of this process one trust server may take: loads at once (more wait their turn),
 * bytes fetched and still held by unfinished loads, and the largest metadata file. Trust
 * servers named by namespaced policies (any team may name any server) get their own, lower
 * limits, counted apart from the same server's loads for cluster policies; a total over all
 * servers bounds what many hostile servers can hold together.
 */
import { FetchError, type HeldBytes, type MetadataRequest, type MetadataSource } from './source.js';

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
   * Runs one repository load once the server has a free slot. `load` gets a source that
   * applies the scope's file cap and counts every byte it returns against the server and the
   * total until the load ends.
   */
  async runLoad<T>(scope: PolicyScope, source: MetadataSource, load: (limited: MetadataSource) => Promise<T>): Promise<T> {
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
    const refuse = (req: MetadataRequest, n: number): FetchError | undefined => {
      if (s.bytes + n > limits.maxBytesInFlight) {
        return new FetchError('too-large', source.server, req.role, `loads from this trust server for ${scope} policies would hold more than ${mib(limits.maxBytesInFlight)} at once (${FLAG[scope].maxBytesInFlight})`);
      }
      if (this.totalBytes + n > this.maxTotalBytesInFlight) {
        return new FetchError('too-large', source.server, req.role, `loads from all trust servers would hold more than ${mib(this.maxTotalBytesInFlight)} at once (--max-total-mib-in-flight)`);
      }
      return undefined;
    };
    // A file larger than a budget it counts against could never be held: refused before a
    // byte is read (by Content-Length, or while reading), like one above the file cap.
    const capOf = (req: MetadataRequest) => Math.min(req.maxBytes, limits.maxMetadataBytes, limits.maxBytesInFlight, this.maxTotalBytesInFlight);
    const overCap = (req: MetadataRequest, cap: number): FetchError | undefined =>
      cap === limits.maxMetadataBytes
        ? new FetchError('too-large', source.server, req.role, `larger than the ${mib(cap)} limit for metadata files from trust servers of ${scope} policies (${FLAG[scope].maxMetadataBytes})`)
        : refuse(req, req.maxBytes);
    // A length the signed metadata declares: above a cap, or not fitting what is free right now.
    const refusal = (req: MetadataRequest): FetchError | undefined => {
      if (req.sha256Hex === undefined) return undefined;
      const cap = capOf(req);
      return cap < req.maxBytes ? overCap(req, cap) : refuse(req, req.maxBytes);
    };
    // Bytes held here or in a verification worker count alike: both are this process's memory.
    const counted = async <B extends { length: number }>(req: MetadataRequest, get: (capped: MetadataRequest) => Promise<B>): Promise<B> => {
      const early = refusal(req);
      if (early) throw early;
      const cap = capOf(req);
      let bytes: B;
      try {
        bytes = await get(cap === req.maxBytes ? req : { ...req, maxBytes: cap });
      } catch (e) {
        if (cap < req.maxBytes && e instanceof FetchError && e.kind === 'too-large') throw overCap(req, cap) ?? e;
        throw e;
      }
      const over = refuse(req, bytes.length);
      if (over) throw over;
      s.bytes += bytes.length;
      this.totalBytes += bytes.length;
      held += bytes.length;
      return bytes;
    };
    const fetchHeld = source.fetchHeld?.bind(source);
    const limited: MetadataSource = {
      server: source.server,
      gun: source.gun,
      fetch: (req, signal) => counted(req, (capped) => source.fetch(capped, signal)),
      ...(fetchHeld ? { fetchHeld: (req, via, signal): Promise<HeldBytes> => counted(req, (capped) => fetchHeld(capped, via, signal)) } : {}),
    };
    try {
      return await load(limited);
    } finally {
      s.bytes -= held;
      this.totalBytes -= held;
      const next = s.waiting.shift();
      if (next) next();
      else if (--s.active === 0) this.servers.delete(key);
    }
  }
}

function mib(bytes: number): string {
  const m = bytes / MiB;
  return Number.isInteger(m) ? `${m} MiB` : `${bytes} bytes`;
}
