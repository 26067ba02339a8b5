/**
 * Keeps the PolicyStore equal to the TrustPolicy and ClusterTrustPolicy objects in the
 * cluster: list, then watch from the list's resourceVersion, applying every event as
 * it arrives, so a policy change takes effect without a restart.
 *
 * Why not client-node's ListWatch/makeInformer (1.4): read in cache.js/watch.js, it
 *  - reconnects at once, with no backoff, whenever a watch ends cleanly, and not at all
 *    after an error other than 410 (it only calls the error handlers);
 *  - reports the abort of its own stop() as an error, and starts a watch anyway when
 *    stop() lands while its list is in flight (the watch then leaks);
 *  - cannot be told to relist (resync), never asks for bookmarks or a server timeout,
 *    and sets no deadline, so a silently dead connection is never noticed.
 * So this module runs its own list/watch loop, still on client-node: `Watch` for the
 * stream (auth, TLS, line framing) and `CustomObjectsApi` for the list. It handles the
 * same protocol cases as client-go's reflector: 410 Gone as an HTTP status or as an
 * ERROR event means relist; a clean end of the stream means re-watch from the last
 * resourceVersion seen (events are replayed, nothing is lost); errors back off.
 *
 * Failing closed: an object that does not validate is logged, reported in its status,
 * and replaces its previous version in the store as an invalid policy, which denies what
 * it would cover (its images, or its whole scope when they cannot be read) until it is
 * fixed. Dropping it instead would hand its images to a broader valid policy, so a typo
 * would quietly lower enforcement; keeping the older version would enforce something the
 * author believes is gone. The policy webhook (/validate-policy) refuses most such objects
 * at the door; this covers the ones that get past it (webhook down, failurePolicy Ignore).
 */
import { CustomObjectsApi, Observable, Watch, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';
import { isInvalidPolicy, readPolicy, type InvalidPolicy, type PolicyKind, type TrustPolicy } from './model.js';
import { KUBERNETES_SOURCE, type PolicyStore } from './store.js';
import { PLURALS, POLICY_GROUP, POLICY_VERSION, type LoadOutcome, type LoadProblem, type StatusWriter } from './status-writer.js';

export interface BackoffOptions {
  /** First delay after a failure (default 500 ms). */
  initialMs?: number;
  /** Ceiling (default 30 s). */
  maxMs?: number;
}

export interface KubernetesPolicySourceOptions {
  kubeConfig: KubeConfig;
  store: PolicyStore;
  log?: (event: object) => void;
  statusWriter?: StatusWriter;
  backoff?: BackoffOptions;
  /** Full relist this often, to repair anything a watch might have missed (default 10 min; 0 = never). */
  resyncMs?: number;
  /**
   * Server-side watch timeout; each watch asks for a random value between this and
   * twice this, as client-go does, so replicas do not reconnect in lockstep (default 300 s).
   */
  watchTimeoutSeconds?: number;
  /** A list request's deadline (default 30 s). */
  listTimeoutMs?: number;
}

interface KubeObjectLike {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: {
    name?: unknown;
    namespace?: unknown;
    uid?: unknown;
    resourceVersion?: unknown;
    generation?: unknown;
    labels?: unknown;
    annotations?: unknown;
  };
  spec?: unknown;
  status?: { conditions?: unknown };
}

type WatchEnd = { events: number; lastedMs: number } & (
  | { kind: 'closed' }
  | { kind: 'gone' }
  | { kind: 'error'; error: unknown }
  | { kind: 'interrupted' }
);

/** A watch that ends sooner than this, having delivered nothing, did not really work. */
const SHORT_WATCH_MS = 1000;

const KINDS: PolicyKind[] = ['ClusterTrustPolicy', 'TrustPolicy'];

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

function statusCode(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

export class KubernetesPolicySource {
  private readonly store: PolicyStore;
  private readonly log: (event: object) => void;
  private readonly statusWriter: StatusWriter | undefined;
  private readonly api: CustomObjectsApi;
  private readonly watcher: Watch;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly resyncMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly listTimeoutMs: number;
  /** Policies per kind, valid and invalid, keyed namespace/name: what this source has put in the store. */
  private readonly loaded: Record<PolicyKind, Map<string, TrustPolicy | InvalidPolicy>> = {
    TrustPolicy: new Map(),
    ClusterTrustPolicy: new Map(),
  };
  /** What each object last parsed was and what came of it, so writes that touch only status are not re-applied. */
  private readonly fingerprints: Record<PolicyKind, Map<string, { print: string; outcome: LoadOutcome }>> = {
    TrustPolicy: new Map(),
    ClusterTrustPolicy: new Map(),
  };
  private readonly synced = new Set<PolicyKind>();
  private lifetime: AbortController | undefined;
  private loops: Promise<void>[] = [];
  private readyWaiters: Array<() => void> = [];
  private isReady = false;

  constructor(opts: KubernetesPolicySourceOptions) {
    this.store = opts.store;
    this.log = opts.log ?? (() => {});
    this.statusWriter = opts.statusWriter;
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(opts.kubeConfig);
    this.initialMs = opts.backoff?.initialMs ?? 500;
    this.maxMs = opts.backoff?.maxMs ?? 30_000;
    this.resyncMs = opts.resyncMs ?? 600_000;
    this.watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 300;
    this.listTimeoutMs = opts.listTimeoutMs ?? 30_000;
  }

  /** True once both kinds have been listed and applied. */
  get ready(): boolean {
    return this.isReady;
  }

  /**
   * Starts listing and watching both kinds. Resolves once both initial lists are in the
   * store (and store.markReady() has been called), or when stop() comes first. Failures
   * are retried with backoff for as long as the source runs, so this may wait for as
   * long as the API server is unreachable: callers that must not block keep the promise
   * and report not-ready meanwhile.
   */
  start(): Promise<void> {
    if (this.lifetime && !this.lifetime.signal.aborted) return this.whenReady();
    const lifetime = new AbortController();
    this.lifetime = lifetime;
    this.loops = KINDS.map((kind) => this.run(kind, lifetime.signal));
    return this.whenReady();
  }

  /** Stops every request and timer this source started; the store keeps what it has. */
  stop(): void {
    this.lifetime?.abort();
    for (const w of this.readyWaiters) w();
    this.readyWaiters = [];
  }

  /** Resolves when the loops have wound down after stop() (for tests and orderly shutdown). */
  async stopped(): Promise<void> {
    await Promise.all(this.loops);
  }

  private whenReady(): Promise<void> {
    if (this.isReady || this.lifetime?.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private path(kind: PolicyKind): string {
    return `/apis/${POLICY_GROUP}/${POLICY_VERSION}/${PLURALS[kind]}`;
  }

  /** One kind's reflector: list, watch, repeat, until stopped. */
  private async run(kind: PolicyKind, stop: AbortSignal): Promise<void> {
    let resourceVersion = '';
    let failures = 0;
    let nextResync = this.resyncMs > 0 ? Date.now() + this.resyncMs : Infinity;
    const backoff = async (): Promise<void> => {
      failures += 1;
      const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(failures - 1, 30));
      // Jitter so that webhook replicas do not hammer a recovering API server together.
      await sleep(base * (0.8 + Math.random() * 0.4), stop);
    };
    while (!stop.aborted) {
      if (!resourceVersion) {
        try {
          resourceVersion = await this.list(kind, stop);
          failures = 0;
          nextResync = this.resyncMs > 0 ? Date.now() + this.resyncMs : Infinity;
        } catch (err) {
          if (stop.aborted) break;
          this.log({ level: 'error', event: 'policy-list-failed', kind, code: statusCode(err), error: errorText(err) });
          await backoff();
          continue;
        }
      }
      const end = await this.watchOnce(kind, resourceVersion, stop, nextResync, (rv) => {
        resourceVersion = rv;
      });
      if (stop.aborted) break;
      const useless = end.events === 0 && end.lastedMs < SHORT_WATCH_MS;
      if (!useless) failures = 0;
      switch (end.kind) {
        case 'gone':
          this.log({ level: 'info', event: 'policy-watch-expired', kind, resourceVersion });
          resourceVersion = '';
          // Gone straight after a fresh list means the server cannot serve a watch at all
          // right now; relisting in a tight loop would only add to its load.
          if (useless) await backoff();
          break;
        case 'interrupted':
          // Resync due (or our own watchdog fired): relist from scratch.
          resourceVersion = '';
          break;
        case 'closed':
          // The server ends watches routinely (timeoutSeconds); re-watch from where we
          // are. One that ends at once with nothing in it counts as a failure, so a
          // server (or proxy) that closes every stream immediately cannot spin us.
          if (useless) await backoff();
          break;
        case 'error':
          this.log({ level: 'warn', event: 'policy-watch-failed', kind, code: statusCode(end.error), error: errorText(end.error) });
          if (statusCode(end.error) === 410) {
            resourceVersion = '';
          } else {
            await backoff();
          }
          break;
      }
    }
  }

  /** Lists one kind, replaces its policies in the store, returns the list's resourceVersion. */
  private async list(kind: PolicyKind, stop: AbortSignal): Promise<string> {
    const signal = AbortSignal.any([stop, AbortSignal.timeout(this.listTimeoutMs)]);
    const options: ConfigurationOptions = {
      middleware: [
        {
          pre: (ctx) => {
            ctx.setSignal(signal);
            return new Observable(Promise.resolve(ctx));
          },
          post: (res) => new Observable(Promise.resolve(res)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
    const list = (await this.api.listClusterCustomObject(
      { group: POLICY_GROUP, version: POLICY_VERSION, plural: PLURALS[kind] },
      options,
    )) as { metadata?: { resourceVersion?: unknown }; items?: unknown };
    if (stop.aborted) throw new Error('stopped');
    const rv = str(list?.metadata?.resourceVersion);
    if (!rv || !Array.isArray(list.items)) {
      throw new Error(`list of ${PLURALS[kind]} has no resourceVersion or items`);
    }
    const next = new Map<string, TrustPolicy | InvalidPolicy>();
    const prints = new Map<string, { print: string; outcome: LoadOutcome }>();
    const reports: Array<[KubeObjectLike, LoadOutcome]> = [];
    for (const item of list.items as KubeObjectLike[]) {
      const key = this.key(item);
      const parsed = this.parse(kind, item);
      if (key) prints.set(key, { print: this.fingerprint(item), outcome: parsed.outcome });
      if (key) next.set(key, parsed.held);
      reports.push([item, parsed.outcome]);
    }
    this.loaded[kind] = next;
    this.fingerprints[kind] = prints;
    // The list is the whole truth for this kind: objects deleted while we were not
    // watching disappear here. Both kinds go in together because the store replaces
    // everything this source ever gave it.
    this.store.replaceSource(KUBERNETES_SOURCE, [...this.loaded.ClusterTrustPolicy.values(), ...this.loaded.TrustPolicy.values()]);
    const invalid = [...next.values()].filter(isInvalidPolicy).length;
    this.log({ level: 'info', event: 'policy-list-applied', kind, resourceVersion: rv, objects: list.items.length, loaded: next.size - invalid, invalid });
    for (const [item, outcome] of reports) this.report(kind, item, outcome);
    this.markSynced(kind);
    return rv;
  }

  private markSynced(kind: PolicyKind): void {
    if (this.synced.has(kind)) return;
    this.synced.add(kind);
    if (this.isReady || !KINDS.every((k) => this.synced.has(k))) return;
    this.isReady = true;
    this.store.markReady();
    this.log({ level: 'info', event: 'policies-ready' });
    for (const w of this.readyWaiters) w();
    this.readyWaiters = [];
  }

  /**
   * One watch stream. Resolves when it ends, for whatever reason; never rejects.
   * `advance` receives every resourceVersion the stream moves us to (events, bookmarks).
   */
  private watchOnce(
    kind: PolicyKind,
    resourceVersion: string,
    stop: AbortSignal,
    resyncAt: number,
    advance: (rv: string) => void,
  ): Promise<WatchEnd> {
    const timeoutSeconds = Math.round(this.watchTimeoutSeconds * (1 + Math.random()));
    const started = Date.now();
    type End = { kind: 'closed' } | { kind: 'gone' } | { kind: 'error'; error: unknown } | { kind: 'interrupted' };
    return new Promise<WatchEnd>((resolve) => {
      if (stop.aborted) return resolve({ kind: 'interrupted', events: 0, lastedMs: 0 });
      let events = 0;
      let ended = false;
      let controller: AbortController | undefined;
      const finish = (end: End): void => {
        if (ended) return;
        ended = true;
        clearTimeout(resync);
        clearTimeout(watchdog);
        stop.removeEventListener('abort', onStop);
        controller?.abort();
        resolve({ ...end, events, lastedMs: Date.now() - started });
      };
      const onStop = (): void => finish({ kind: 'interrupted' });
      stop.addEventListener('abort', onStop);
      const resync = setTimeout(() => finish({ kind: 'interrupted' }), Math.max(0, resyncAt - Date.now()));
      // The server should have closed the stream by now; if not, the connection is
      // probably dead without either side having noticed, so start over.
      const watchdog = setTimeout(() => {
        this.log({ level: 'warn', event: 'policy-watch-stalled', kind, timeoutSeconds });
        finish({ kind: 'interrupted' });
      }, (timeoutSeconds + 30) * 1000);
      if (!Number.isFinite(resyncAt)) clearTimeout(resync);

      const onEvent = (type: string, obj: unknown): void => {
        if (ended) return;
        // Watch swallows exceptions thrown here; catch them so they are at least logged.
        try {
          if (type === 'ERROR') {
            const status = obj as { code?: unknown; reason?: unknown; message?: unknown } | null;
            if (status?.code === 410) return finish({ kind: 'gone' });
            return finish({ kind: 'error', error: Object.assign(new Error(String(status?.message ?? 'watch error')), { code: status?.code }) });
          }
          events += 1;
          const o = obj as KubeObjectLike;
          if (type === 'ADDED' || type === 'MODIFIED') this.applyObject(kind, o);
          else if (type === 'DELETED') this.deleteObject(kind, o);
          else if (type !== 'BOOKMARK') return;
          const rv = str(o?.metadata?.resourceVersion);
          if (rv) advance(rv);
        } catch (err) {
          this.log({ level: 'error', event: 'policy-event-failed', kind, type, error: errorText(err) });
        }
      };
      this.watcher
        .watch(
          this.path(kind),
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
          onEvent,
          (err: unknown) => finish(err ? { kind: 'error', error: err } : { kind: 'closed' }),
        )
        .then((c) => {
          controller = c;
          // stop() may have come while the request was connecting.
          if (ended) c.abort();
        })
        .catch((err: unknown) => finish({ kind: 'error', error: err }));
    });
  }

  private key(o: KubeObjectLike): string | undefined {
    const name = str(o?.metadata?.name);
    return name ? `${str(o.metadata?.namespace) ?? ''}/${name}` : undefined;
  }

  private fingerprint(o: KubeObjectLike): string {
    const m = o.metadata ?? {};
    return JSON.stringify([m.uid, m.labels, m.annotations, o.spec]);
  }

  private parse(kind: PolicyKind, o: KubeObjectLike): { held: TrustPolicy | InvalidPolicy; outcome: LoadOutcome } {
    const held = readPolicy(o, KUBERNETES_SOURCE, kind);
    if (!isInvalidPolicy(held)) return { held, outcome: { loaded: true } };
    const problems: LoadProblem[] = held.problems;
    const covers = held.images ?? `every image in ${held.kind === 'TrustPolicy' && held.namespace ? `namespace ${held.namespace}` : 'the cluster'}`;
    this.log({ level: 'error', event: 'policy-invalid', kind, namespace: str(o?.metadata?.namespace), name: str(o?.metadata?.name), problems, effect: 'fails what it covers', covers, mode: held.mode });
    return { held, outcome: { loaded: false, problems } };
  }

  private applyObject(kind: PolicyKind, o: KubeObjectLike): void {
    const key = this.key(o);
    if (!key) {
      this.log({ level: 'warn', event: 'policy-event-ignored', kind, reason: 'object has no name' });
      return;
    }
    const print = this.fingerprint(o);
    const seen = this.fingerprints[kind].get(key);
    if (seen && seen.print === print) {
      // A status-only write (often our own): the store already reflects this object.
      this.report(kind, o, seen.outcome);
      return;
    }
    const parsed = this.parse(kind, o);
    this.fingerprints[kind].set(key, { print, outcome: parsed.outcome });
    this.loaded[kind].set(key, parsed.held);
    this.store.upsert(parsed.held);
    if (!isInvalidPolicy(parsed.held)) {
      this.log({ level: 'info', event: 'policy-loaded', kind, namespace: str(o.metadata?.namespace), name: str(o.metadata?.name), generation: o.metadata?.generation });
    }
    this.report(kind, o, parsed.outcome);
  }

  private deleteObject(kind: PolicyKind, o: KubeObjectLike): void {
    const key = this.key(o);
    if (!key) return;
    this.fingerprints[kind].delete(key);
    this.forget(kind, o, key);
    const name = str(o.metadata?.name);
    const namespace = kind === 'TrustPolicy' ? str(o.metadata?.namespace) : undefined;
    if (name) this.statusWriter?.forget?.({ kind, name, ...(namespace ? { namespace } : {}) });
  }

  private forget(kind: PolicyKind, o: KubeObjectLike, key: string): void {
    const had = this.loaded[kind].delete(key);
    const namespace = kind === 'TrustPolicy' ? str(o.metadata?.namespace) : undefined;
    // Removing what is not there is harmless, and covers a store changed behind our back.
    this.store.remove(kind, namespace, str(o.metadata?.name) ?? '');
    if (had) this.log({ level: 'info', event: 'policy-removed', kind, namespace, name: str(o.metadata?.name) });
  }

  private report(kind: PolicyKind, o: KubeObjectLike, outcome: LoadOutcome): void {
    if (!this.statusWriter) return;
    const name = str(o?.metadata?.name);
    if (!name) return;
    const generation = o.metadata?.generation;
    void this.statusWriter.report(
      {
        kind,
        name,
        ...(kind === 'TrustPolicy' && str(o.metadata?.namespace) ? { namespace: str(o.metadata?.namespace) } : {}),
        ...(str(o.metadata?.uid) ? { uid: str(o.metadata?.uid) } : {}),
        ...(typeof generation === 'number' ? { generation } : {}),
        ...(str(o.metadata?.resourceVersion) ? { resourceVersion: str(o.metadata?.resourceVersion) } : {}),
        conditions: o.status?.conditions,
      },
      outcome,
    );
  }
}
