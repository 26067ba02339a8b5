/**
 * Where a repository load runs. On the thread that answers admissions while it stays small
 * (a byte budget per load: a few hundred KB of metadata verify in milliseconds there); past
 * the budget, in a worker thread with a memory limit, so a large or hostile file is parsed
 * and verified while other admissions keep being answered. A worker that exceeds its memory
 * or time is discarded and replaced; the load fails with that reason. The main thread
 * decides every fetch (connections, tokens, per-server limits); for an HTTP source the GETs
 * of a worker's load run in that worker, so a large body is never received, decrypted or
 * collected on the main thread; the worker keeps the bytes it received.
 */
import { Worker } from 'node:worker_threads';
import { GetFailure } from '../notary/http-get.js';
import { FetchError, type MetadataRequest, type MetadataSource, type RemoteGet } from '../notary/source.js';
import { repositoryFromWire, type RootPin, type TrustedRepository, type VersionFloor } from '../tuf/index.js';
import { errorFromWire, errorToWire, type FromWorker, type ToWorker } from './load-protocol.js';

export interface LoadWorkersOptions {
  /** Worker threads (loads at once off the main thread). */
  size?: number;
  /** V8 old-generation limit of each worker (MB): the memory one load may use. */
  maxOldGenerationSizeMb?: number;
  maxYoungGenerationSizeMb?: number;
  /** A load running longer than this in a worker is stopped with its worker. */
  jobTimeoutMs?: number;
  /**
   * Start the workers now and replace a lost one at once (default true), so that a load
   * does not wait for a thread to start and load its modules (tens of milliseconds).
   */
  keepWarm?: boolean;
}

export { DEFAULT_WORKER_MEMORY_MB } from '../notary/server-limits.js';
import { DEFAULT_WORKER_MEMORY_MB } from '../notary/server-limits.js';
const DEFAULT_JOB_TIMEOUT_MS = 60_000;

/** A load that could not finish in a worker: out of memory, out of time, or the worker died. */
export class WorkerLoadError extends Error {
  override readonly name = 'WorkerLoadError';
  constructor(
    readonly code: 'too-large' | 'timeout' | 'error',
    message: string,
  ) {
    super(message);
  }
}

export interface WorkerLoad {
  pin: RootPin;
  now: Date;
  floor: VersionFloor;
}

interface Job {
  id: number;
  source: MetadataSource;
  load: WorkerLoad;
  prefetched: Map<string, Uint8Array>;
  resolve: (r: TrustedRepository) => void;
  reject: (e: unknown) => void;
}

type RemoteAnswer = Awaited<ReturnType<RemoteGet>>;

interface Slot {
  worker: Worker;
  job?: Job;
  /** GETs the worker runs for its job, by id. */
  gets: Map<number, { resolve: (r: RemoteAnswer) => void; reject: (e: unknown) => void }>;
  timer?: NodeJS.Timeout;
  /** Why the worker is going away, for the job's error. */
  death?: WorkerLoadError;
  /** It started: a worker that cannot even start is not replaced at once, or it would be again and again. */
  online?: boolean;
}

let nextJob = 0;
let nextGet = 0;

export class LoadWorkers {
  readonly size: number;
  readonly maxOldGenerationSizeMb: number;
  private readonly maxYoungGenerationSizeMb: number;
  private readonly jobTimeoutMs: number;
  private readonly keepWarm: boolean;
  private readonly slots: Slot[] = [];
  /** Waiting jobs per trust server, served round-robin so one server cannot hold every worker. */
  private readonly queues = new Map<string, Job[]>();
  private closed = false;
  /** Workers discarded for exceeding their memory budget (for tests and metrics). */
  outOfMemory = 0;

  constructor(opts: LoadWorkersOptions = {}) {
    this.size = opts.size ?? 1;
    this.maxOldGenerationSizeMb = opts.maxOldGenerationSizeMb ?? DEFAULT_WORKER_MEMORY_MB;
    this.maxYoungGenerationSizeMb = opts.maxYoungGenerationSizeMb ?? 8;
    this.jobTimeoutMs = opts.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
    this.keepWarm = opts.keepWarm ?? true;
    this.fill();
  }

  /** Worker threads running now, busy or idle (for tests and metrics). */
  get threads(): number {
    return this.slots.length;
  }

  /** With keepWarm, every worker that is missing is started now. */
  private fill(): void {
    if (!this.keepWarm || this.closed) return;
    while (this.slots.length < this.size) this.spawn();
  }

  /** Load and verify a repository in a worker; `prefetched` answers fetches already made. */
  load(source: MetadataSource, load: WorkerLoad, prefetched = new Map<string, Uint8Array>()): Promise<TrustedRepository> {
    if (this.closed) return Promise.reject(new WorkerLoadError('error', 'verification workers are shut down'));
    return new Promise((resolve, reject) => {
      const job: Job = { id: ++nextJob, source, load, prefetched, resolve, reject };
      const q = this.queues.get(source.server);
      if (q) q.push(job);
      else this.queues.set(source.server, [job]);
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queues.values()) for (const j of q) j.reject(new WorkerLoadError('error', 'verification workers are shut down'));
    this.queues.clear();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }

  private dispatch(): void {
    for (;;) {
      const job = this.nextJob();
      if (!job) return;
      let slot = this.slots.find((s) => !s.job && !s.death);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) {
        // No free worker: put the job back at the head of its server's queue.
        const q = this.queues.get(job.source.server);
        if (q) q.unshift(job);
        else this.queues.set(job.source.server, [job]);
        return;
      }
      this.start(slot, job);
    }
  }

  private nextJob(): Job | undefined {
    const first = this.queues.entries().next();
    if (first.done) return undefined;
    const [server, q] = first.value;
    const job = q.shift()!;
    // Round-robin: the server goes to the back of the line.
    this.queues.delete(server);
    if (q.length) this.queues.set(server, q);
    return job;
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.maxOldGenerationSizeMb, maxYoungGenerationSizeMb: this.maxYoungGenerationSizeMb, stackSizeMb: 4 },
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { worker, gets: new Map() };
    this.slots.push(slot);
    worker.once('online', () => (slot.online = true));
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    worker.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        this.outOfMemory++;
        slot.death ??= new WorkerLoadError('too-large', `verifying this trust data needed more than the ${this.maxOldGenerationSizeMb} MB memory budget of a verification worker (--worker-memory-mb); the worker was discarded`);
      } else {
        slot.death ??= new WorkerLoadError('error', `the verification worker failed: ${e.message}`);
      }
    });
    worker.on('exit', () => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      if (slot.timer) clearTimeout(slot.timer);
      const job = slot.job;
      slot.job = undefined;
      const death = slot.death ?? new WorkerLoadError('error', 'the verification worker stopped');
      this.dropGets(slot, death);
      if (job) job.reject(death);
      if (!this.closed) {
        if (slot.online) this.fill();
        this.dispatch();
      }
    });
    // After the listeners: adding a 'message' listener refs the worker's port again. An idle
    // worker must not keep the process alive; a running load refs it (start/finish).
    worker.unref();
    return slot;
  }

  private start(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    slot.timer = setTimeout(() => {
      slot.death = new WorkerLoadError('timeout', `verification took longer than ${this.jobTimeoutMs / 1000} s in a worker; the worker was stopped`);
      void slot.worker.terminate();
    }, this.jobTimeoutMs);
    slot.timer.unref();
    const msg: ToWorker = {
      type: 'load',
      job: job.id,
      gun: job.source.gun,
      server: job.source.server,
      pin: { keys: job.load.pin.keys, threshold: job.load.pin.threshold },
      now: job.load.now,
      floor: new Map(job.load.floor),
    };
    slot.worker.postMessage(msg);
  }

  private finish(slot: Slot): Job | undefined {
    const job = slot.job;
    slot.job = undefined;
    // The worker forgets the GETs of a finished job; whoever still waits for one gets an error.
    this.dropGets(slot, new WorkerLoadError('error', 'the load this fetch was for has finished'));
    if (slot.timer) clearTimeout(slot.timer);
    slot.worker.unref();
    job?.prefetched.clear();
    this.dispatch();
    return job;
  }

  private dropGets(slot: Slot, why: Error): void {
    const gets = [...slot.gets.values()];
    slot.gets.clear();
    for (const g of gets) g.reject(why);
  }

  /** GETs run by the worker of `slot`; the body of a 200 stays there. */
  private remoteGet(slot: Slot): RemoteGet {
    return (req, signal, abortReason) =>
      new Promise<RemoteAnswer>((resolve, reject) => {
        if (signal.aborted) {
          reject(new GetFailure('aborted', abortReason()));
          return;
        }
        const gid = ++nextGet;
        const onAbort = () => {
          if (!slot.gets.delete(gid)) return;
          slot.worker.postMessage({ type: 'get-abort', gid } satisfies ToWorker);
          reject(new GetFailure('aborted', abortReason()));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const settle = () => signal.removeEventListener('abort', onAbort);
        slot.gets.set(gid, {
          resolve: (r) => {
            settle();
            resolve(r);
          },
          reject: (e) => {
            settle();
            reject(e);
          },
        });
        slot.worker.postMessage({ type: 'get', gid, req } satisfies ToWorker);
      });
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type === 'got' || m.type === 'get-failed') {
      const g = slot.gets.get(m.gid);
      slot.gets.delete(m.gid);
      if (!g) return;
      if (m.type === 'get-failed') g.reject(new GetFailure(m.kind, m.message));
      else g.resolve({ ...m.res, ...(m.res.status === 200 ? { held: { held: m.gid, length: m.res.length } } : {}) });
      return;
    }
    const job = slot.job;
    if (!job || m.job !== job.id) return;
    if (m.type === 'fetch') {
      this.fetchFor(slot, job, m.fid, m.req);
      return;
    }
    this.finish(slot);
    if (m.type === 'failed') {
      job.reject(errorFromWire(m.error));
      return;
    }
    try {
      job.resolve(repositoryFromWire(m.wire));
    } catch (e) {
      job.reject(e);
    }
  }

  private fetchFor(slot: Slot, job: Job, fid: number, req: MetadataRequest): void {
    const key = prefetchKey(req);
    const early = job.prefetched.get(key);
    job.prefetched.delete(key);
    if (!early && job.source.fetchHeld) {
      job.source.fetchHeld(req, this.remoteGet(slot)).then(
        (h) => {
          if (slot.job === job) slot.worker.postMessage({ type: 'fetched-held', fid, held: h.held } satisfies ToWorker);
        },
        (e: unknown) => {
          if (slot.job === job) slot.worker.postMessage({ type: 'fetch-failed', fid, error: errorToWire(e) } satisfies ToWorker);
        },
      );
      return;
    }
    const bytes = early ? Promise.resolve(early) : job.source.fetch(req);
    bytes.then(
      (b) => {
        if (slot.job !== job) return;
        const reply: ToWorker = { type: 'fetched', fid, bytes: b };
        // Hand the buffer over instead of copying it when it is wholly this file's.
        const whole = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer;
        try {
          slot.worker.postMessage(reply, whole ? [b.buffer as ArrayBuffer] : []);
        } catch {
          slot.worker.postMessage(reply);
        }
      },
      (e: unknown) => {
        if (slot.job !== job) return;
        slot.worker.postMessage({ type: 'fetch-failed', fid, error: errorToWire(e) } satisfies ToWorker);
      },
    );
  }
}

export function prefetchKey(req: MetadataRequest): string {
  return `${req.role}|${req.version ?? ''}|${req.sha256Hex ?? ''}`;
}

/** Raised on the main thread when a load passes its byte budget there: it moves to a worker. */
export class OverBudget extends Error {
  override readonly name = 'OverBudget';
}

/**
 * A source for a load on the main thread: once the load has fetched more than `maxBytes`,
 * no more bytes reach the verifier here; the bytes already fetched are kept for the worker.
 * A file that would take the load past its budget is not received here at all (the worker
 * fetches it): one whose length the signed metadata declares is not asked for, and one
 * asked for by name is read only up to what is left of the budget.
 */
export function budgetedSource(source: MetadataSource, maxBytes: number): { source: MetadataSource; fetched: Map<string, Uint8Array> } {
  const fetched = new Map<string, Uint8Array>();
  let spent = 0;
  return {
    fetched,
    source: {
      server: source.server,
      gun: source.gun,
      async fetch(req, signal) {
        if (spent > maxBytes) throw new OverBudget();
        const left = maxBytes - spent;
        // Not asked for here: the worker's fetch of it goes through the same limits, which
        // refuse a file above a cap without a request (TrustServerLimits' refusal).
        if (req.sha256Hex !== undefined && req.maxBytes > left) throw new OverBudget();
        let bytes: Uint8Array;
        if (req.maxBytes > left + 1) {
          // One byte more than is left: a file that long takes the load to the worker.
          try {
            bytes = await source.fetch({ ...req, maxBytes: left + 1 }, signal);
          } catch (e) {
            if (e instanceof FetchError && e.kind === 'too-large') throw new OverBudget();
            throw e;
          }
        } else {
          bytes = await source.fetch(req, signal);
        }
        spent += bytes.length;
        if (spent > maxBytes) {
          fetched.set(prefetchKey(req), bytes);
          throw new OverBudget();
        }
        fetched.set(prefetchKey(req), bytes);
        return bytes;
      },
    },
  };
}
