// A stand-in kube-apiserver for the two trustgate custom resources, speaking the same
// wire protocol as the real one so @kubernetes/client-node talks to it unmodified:
//
//   GET   /apis/trustgate.dev/v1alpha1/trustpolicies                        list, all namespaces
//   GET   /apis/trustgate.dev/v1alpha1/namespaces/{ns}/trustpolicies        list, one namespace
//   GET   /apis/trustgate.dev/v1alpha1/clustertrustpolicies                 list
//   ...?watch=true&resourceVersion=N[&allowWatchBookmarks=true][&timeoutSeconds=S]
//         200 + newline-delimited {type, object} events, replaying every change after N
//         from the retained history, then live ones.
//   GET   .../{name}                                                        one object
//   PATCH .../{name}/status    (application/merge-patch+json)               status subresource
//
// What a real apiserver does and this one copies:
// - resourceVersion is one counter shared by every resource (etcd's revision); a list
//   carries the current value, each object the value of its last write.
// - A watch from a resourceVersion older than the retained history fails with 410
//   Gone: by default as a 200 response holding one ERROR event whose Status has code 410
//   and reason Expired (what the watch cache does), or, with goneAs: 'status', as an HTTP
//   410 Status (what some servers and proxies do). Clients must handle both.
// - A watch with no resourceVersion (or "0") first sends a synthetic ADDED per object.
// - The status subresource changes nothing but .status, does not bump
//   metadata.generation, and emits MODIFIED with a new resourceVersion only when the
//   status really changed; a spec change bumps generation.
// - Errors are metav1.Status objects.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export const GROUP = 'trustgate.dev';
export const VERSION = 'v1alpha1';
const API_VERSION = `${GROUP}/${VERSION}`;

export type Plural = 'trustpolicies' | 'clustertrustpolicies';

interface ResourceInfo {
  kind: string;
  listKind: string;
  namespaced: boolean;
}

const RESOURCES: Record<Plural, ResourceInfo> = {
  trustpolicies: { kind: 'TrustPolicy', listKind: 'TrustPolicyList', namespaced: true },
  clustertrustpolicies: { kind: 'ClusterTrustPolicy', listKind: 'ClusterTrustPolicyList', namespaced: false },
};

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    generation: number;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: unknown;
  status?: Record<string, unknown>;
}

/** What a test hands in: name, namespace (namespaced kinds only) and the spec. */
export interface ObjectInput {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  watch: boolean;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  rv: number;
  plural: Plural;
  type: EventType;
  object: KubeObject;
}

interface Watcher {
  plural: Plural;
  namespace: string | undefined;
  bookmarks: boolean;
  res: ServerResponse;
  timer: NodeJS.Timeout | undefined;
}

interface Injected {
  match: (r: RecordedRequest) => boolean;
  status: number;
  remaining: number;
  /** 'event': a watch answered 200 with one ERROR event carrying the Status, then closed. */
  as: 'status' | 'event';
}

interface Held {
  match: (r: RecordedRequest) => boolean;
  waiting: Array<() => void>;
  released: boolean;
}

export interface FakeApiServerOptions {
  /** Bearer token the server demands (default: a random one, put into kubeConfig()). */
  token?: string;
  /** How a too-old watch resourceVersion is refused (default 'event'). */
  goneAs?: 'event' | 'status';
  /**
   * Checks a status the status subresource is about to store, as the API server checks it
   * against the CRD schema; problems make the PATCH fail with 422 Invalid.
   */
  validateStatus?: (plural: Plural, status: unknown) => string[];
}

const clone = <T>(v: T): T => structuredClone(v);

function statusBody(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

function pluralOf(o: KubeObject): Plural {
  return o.kind === RESOURCES.trustpolicies.kind ? 'trustpolicies' : 'clustertrustpolicies';
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly token: string;
  /** How a too-old watch resourceVersion is refused; may be switched mid-test. */
  goneAs: 'event' | 'status';
  private readonly validateStatus: FakeApiServerOptions['validateStatus'];
  /** Fires 'tick' after anything observable changed: a request, a commit, a closed connection. */
  private readonly ticks = new EventEmitter();
  private readonly held: Held[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly objects = new Map<string, KubeObject>();
  private history: HistoryEntry[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly injected: Injected[] = [];
  private readonly requestListeners = new Set<(r: RecordedRequest) => void>();
  private rv = 1000;
  /** Oldest resourceVersion a watch may still start from. */
  private compactedRv = 1000;
  private port = 0;

  private constructor(opts: FakeApiServerOptions) {
    this.token = opts.token ?? randomUUID();
    this.goneAs = opts.goneAs ?? 'event';
    this.validateStatus = opts.validateStatus;
    this.ticks.setMaxListeners(0);
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => {
        this.sockets.delete(s);
        this.tick();
      });
    });
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const f = new FakeApiServer(opts);
    await new Promise<void>((resolve, reject) => {
      f.server.once('error', reject);
      f.server.listen(0, '127.0.0.1', () => resolve());
    });
    f.port = (f.server.address() as AddressInfo).port;
    return f;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** TCP connections currently open to the server (a stopped client must leave none). */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Watch streams currently open, optionally for one resource. */
  openWatches(plural?: Plural): number {
    let n = 0;
    for (const w of this.watchers) if (!plural || w.plural === plural) n++;
    return n;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** A kubeconfig for this server, as a user of client-node would load one. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: this.token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
      currentContext: 'fake',
    });
    return kc;
  }

  // ---- object changes, as kubectl would make them ----

  create(plural: Plural, input: ObjectInput): KubeObject {
    const info = RESOURCES[plural];
    const ns = info.namespaced ? input.metadata.namespace ?? 'default' : undefined;
    const key = this.key(plural, input.metadata.name, ns);
    if (this.objects.has(key)) throw new Error(`fake apiserver: ${key} already exists`);
    const obj: KubeObject = {
      apiVersion: API_VERSION,
      kind: info.kind,
      metadata: {
        name: input.metadata.name,
        ...(ns !== undefined ? { namespace: ns } : {}),
        uid: randomUUID(),
        resourceVersion: '',
        generation: 1,
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        ...(input.metadata.labels ? { labels: clone(input.metadata.labels) } : {}),
      },
      spec: clone(input.spec),
    };
    this.commit(plural, 'ADDED', key, obj);
    return clone(obj);
  }

  /** Replaces spec (and labels); bumps generation when the spec changed. */
  update(plural: Plural, input: ObjectInput): KubeObject {
    const ns = RESOURCES[plural].namespaced ? input.metadata.namespace ?? 'default' : undefined;
    const key = this.key(plural, input.metadata.name, ns);
    const old = this.objects.get(key);
    if (!old) throw new Error(`fake apiserver: ${key} not found`);
    const obj = clone(old);
    if (!sameJson(old.spec, input.spec)) obj.metadata.generation += 1;
    obj.spec = clone(input.spec);
    if (input.metadata.labels) obj.metadata.labels = clone(input.metadata.labels);
    this.commit(plural, 'MODIFIED', key, obj);
    return clone(obj);
  }

  delete(plural: Plural, name: string, namespace?: string): void {
    const key = this.key(plural, name, RESOURCES[plural].namespaced ? namespace ?? 'default' : undefined);
    const old = this.objects.get(key);
    if (!old) throw new Error(`fake apiserver: ${key} not found`);
    this.commit(plural, 'DELETED', key, clone(old));
  }

  /**
   * Removes an object without emitting an event or recording history: an event a client
   * missed. Only a relist can notice.
   */
  deleteSilently(plural: Plural, name: string, namespace?: string): void {
    const key = this.key(plural, name, RESOURCES[plural].namespaced ? namespace ?? 'default' : undefined);
    if (!this.objects.delete(key)) throw new Error(`fake apiserver: ${key} not found`);
    this.rv += 1;
  }

  get(plural: Plural, name: string, namespace?: string): KubeObject | undefined {
    const o = this.objects.get(this.key(plural, name, RESOURCES[plural].namespaced ? namespace ?? 'default' : undefined));
    return o ? clone(o) : undefined;
  }

  // ---- faults ----

  /** Cuts every open watch stream: destroy = connection lost; otherwise a clean end (server timeout). */
  dropWatches(how: 'destroy' | 'end' = 'destroy'): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) {
      this.closeWatcher(w);
      if (how === 'destroy') w.res.destroy();
      else w.res.end();
    }
    return n;
  }

  /** Forgets the change history, so a watch from any earlier resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /**
   * Answers the next `times` requests that `match` accepts with an error Status: as the
   * HTTP response, or (as: 'event', for watches) as an ERROR event in a 200 stream that
   * then ends, which is how a watch that fails after it started looks.
   */
  failNext(match: (r: RecordedRequest) => boolean, status: number, times = 1, as: 'status' | 'event' = 'status'): void {
    this.injected.push({ match, status, remaining: times, as });
  }

  /** Drops every pending failNext. */
  clearFailures(): void {
    this.injected.length = 0;
  }

  /**
   * Leaves requests that `match` accepts unanswered (recorded, but not served) until the
   * returned function is called; a slow or stuck API server.
   */
  hold(match: (r: RecordedRequest) => boolean): () => void {
    const h: Held = { match, waiting: [], released: false };
    this.held.push(h);
    return () => {
      h.released = true;
      this.held.splice(this.held.indexOf(h), 1);
      for (const w of h.waiting.splice(0)) w();
    };
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watcher that asked for them. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      this.send(w, 'BOOKMARK', {
        apiVersion: API_VERSION,
        kind: RESOURCES[w.plural].kind,
        metadata: { resourceVersion: String(this.rv) },
      });
    }
  }

  // ---- observing the client ----

  /** Resolves with the first recorded request (past or future) that `pred` accepts. */
  waitForRequest(pred: (r: RecordedRequest) => boolean, timeoutMs = 5000, after = 0): Promise<RecordedRequest> {
    const seen = this.requests.slice(after).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requestListeners.delete(listener);
        reject(new Error(`fake apiserver: no matching request within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (r: RecordedRequest): void => {
        if (!pred(r)) return;
        clearTimeout(timer);
        this.requestListeners.delete(listener);
        resolve(r);
      };
      this.requestListeners.add(listener);
    });
  }

  /** Resolves once `cond()` holds; re-checked after every request, commit and closed connection. */
  waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.ticks.off('tick', check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.ticks.off('tick', check);
        reject(new Error(`fake apiserver: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.ticks.on('tick', check);
    });
  }

  /** Resolves with the stored object once `pred` accepts it (checked after every commit). */
  async waitForObject(plural: Plural, name: string, namespace: string | undefined, pred: (o: KubeObject) => boolean, what: string, timeoutMs = 5000): Promise<KubeObject> {
    let found: KubeObject | undefined;
    await this.waitFor(() => {
      const o = this.get(plural, name, namespace);
      if (o && pred(o)) found = o;
      return found !== undefined;
    }, what, timeoutMs);
    return found!;
  }

  async close(): Promise<void> {
    for (const w of [...this.watchers]) {
      this.closeWatcher(w);
      w.res.destroy();
    }
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- internals ----

  private tick(): void {
    this.ticks.emit('tick');
  }

  private key(plural: Plural, name: string, ns: string | undefined): string {
    return `${plural}/${ns ?? ''}/${name}`;
  }

  private commit(plural: Plural, type: EventType, key: string, obj: KubeObject): void {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    if (type === 'DELETED') this.objects.delete(key);
    else this.objects.set(key, clone(obj));
    const entry: HistoryEntry = { rv: this.rv, plural, type, object: clone(obj) };
    this.history.push(entry);
    for (const w of this.watchers) if (this.matches(w, entry)) this.send(w, type, entry.object);
    this.tick();
  }

  private matches(w: { plural: Plural; namespace: string | undefined }, e: { plural: Plural; object: KubeObject }): boolean {
    return e.plural === w.plural && (w.namespace === undefined || e.object.metadata.namespace === w.namespace);
  }

  private send(w: Watcher, type: string, object: unknown): void {
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private closeWatcher(w: Watcher): void {
    if (w.timer) clearTimeout(w.timer);
    if (this.watchers.delete(w)) this.tick();
  }

  private fail(res: ServerResponse, code: number, message: string): void {
    const body = JSON.stringify(statusBody(code, REASONS[code] ?? 'Unknown', message));
    res.writeHead(code, { 'Content-Type': 'application/json' }).end(body);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const query = Object.fromEntries(url.searchParams.entries());
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query,
        headers: { ...req.headers },
        body: Buffer.concat(chunks).toString('utf8'),
        watch: query['watch'] === 'true' || query['watch'] === '1',
      };
      this.requests.push(rec);
      for (const l of [...this.requestListeners]) l(rec);
      const serve = (): void => {
        if (res.destroyed) return;
        try {
          this.route(rec, res);
        } catch (err) {
          this.fail(res, 500, `fake apiserver: ${(err as Error).message}`);
        }
      };
      const h = this.held.find((x) => !x.released && x.match(rec));
      if (h) h.waiting.push(serve);
      else serve();
      this.tick();
    });
  }

  private route(r: RecordedRequest, res: ServerResponse): void {
    if (r.headers['authorization'] !== `Bearer ${this.token}`) return this.fail(res, 401, 'Unauthorized');
    const inj = this.injected.find((i) => i.remaining > 0 && i.match(r));
    if (inj) {
      inj.remaining -= 1;
      if (inj.as === 'event' && r.watch) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ERROR', object: statusBody(inj.status, REASONS[inj.status] ?? 'Unknown', 'injected failure') })}\n`);
        return;
      }
      return this.fail(res, inj.status, 'injected failure');
    }
    const prefix = `/apis/${GROUP}/${VERSION}/`;
    if (!r.path.startsWith(prefix)) return this.fail(res, 404, 'the server could not find the requested resource');
    const parts = r.path.slice(prefix.length).split('/').filter((p) => p.length > 0).map(decodeURIComponent);
    let namespace: string | undefined;
    if (parts[0] === 'namespaces' && parts.length >= 3) {
      namespace = parts[1];
      parts.splice(0, 2);
    }
    const plural = parts[0] as Plural | undefined;
    const info = plural ? RESOURCES[plural] : undefined;
    if (!plural || !info || (namespace !== undefined && !info.namespaced)) {
      return this.fail(res, 404, 'the server could not find the requested resource');
    }
    const name = parts[1];
    const sub = parts[2];
    if (parts.length > 3 || (sub !== undefined && sub !== 'status')) return this.fail(res, 404, 'the server could not find the requested resource');
    if (name === undefined) {
      if (r.method !== 'GET') return this.fail(res, 405, `method ${r.method} not allowed on a collection here`);
      return r.watch ? this.watch(r, res, plural, namespace) : this.list(res, plural, namespace);
    }
    if (info.namespaced && namespace === undefined) return this.fail(res, 404, 'the server could not find the requested resource');
    const key = this.key(plural, name, namespace);
    const obj = this.objects.get(key);
    if (!obj) return this.fail(res, 404, `${plural}.${GROUP} "${name}" not found`);
    if (r.method === 'GET') return this.json(res, 200, obj);
    if (r.method === 'PATCH' && sub === 'status') return this.patchStatus(r, res, plural, key, obj);
    return this.fail(res, 405, `method ${r.method} not allowed here`);
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  }

  private list(res: ServerResponse, plural: Plural, namespace: string | undefined): void {
    const items = [...this.objects.values()]
      .filter((o) => this.matches({ plural, namespace }, { plural: pluralOf(o), object: o }))
      .sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
    this.json(res, 200, {
      apiVersion: API_VERSION,
      kind: RESOURCES[plural].listKind,
      metadata: { resourceVersion: String(this.rv) },
      items,
    });
  }

  private watch(r: RecordedRequest, res: ServerResponse, plural: Plural, namespace: string | undefined): void {
    const rvParam = r.query['resourceVersion'] ?? '';
    const fromScratch = rvParam === '' || rvParam === '0';
    const from = fromScratch ? this.rv : Number(rvParam);
    if (!fromScratch && !/^\d+$/.test(rvParam)) return this.fail(res, 400, `invalid resource version: ${rvParam}`);
    const tooOld = !fromScratch && from < this.compactedRv;
    if (tooOld && this.goneAs === 'status') {
      return this.fail(res, 410, `too old resource version: ${from} (${this.rv})`);
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    if (tooOld) {
      res.write(`${JSON.stringify({ type: 'ERROR', object: statusBody(410, 'Expired', `too old resource version: ${from} (${this.rv})`) })}\n`);
      res.end();
      return;
    }
    const w: Watcher = { plural, namespace, bookmarks: r.query['allowWatchBookmarks'] === 'true', res, timer: undefined };
    this.watchers.add(w);
    res.on('close', () => this.closeWatcher(w));
    const timeout = Number(r.query['timeoutSeconds'] ?? '0');
    if (timeout > 0) {
      w.timer = setTimeout(() => {
        this.closeWatcher(w);
        res.end();
      }, timeout * 1000);
    }
    if (fromScratch) {
      for (const o of this.objects.values()) if (this.matches(w, { plural: pluralOf(o), object: o })) this.send(w, 'ADDED', o);
    } else {
      for (const e of this.history) if (e.rv > from && this.matches(w, e)) this.send(w, e.type, e.object);
    }
    // Headers alone tell the client the watch is established.
    res.flushHeaders();
  }

  private patchStatus(r: RecordedRequest, res: ServerResponse, plural: Plural, key: string, obj: KubeObject): void {
    const ctype = String(r.headers['content-type'] ?? '').split(';')[0]?.trim();
    if (ctype !== 'application/merge-patch+json') {
      return this.fail(res, 415, `the fake apiserver takes only application/merge-patch+json on status, got ${ctype}`);
    }
    let patch: unknown;
    try {
      patch = JSON.parse(r.body);
    } catch {
      return this.fail(res, 400, 'patch body is not JSON');
    }
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return this.fail(res, 400, 'patch must be a JSON object');
    const p = patch as { metadata?: { resourceVersion?: string }; status?: unknown };
    if (p.metadata?.resourceVersion !== undefined && p.metadata.resourceVersion !== obj.metadata.resourceVersion) {
      return this.fail(res, 409, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    if (!('status' in p)) return this.json(res, 200, obj);
    const status = mergePatch(obj.status ?? {}, p.status) as Record<string, unknown>;
    const problems = this.validateStatus?.(plural, status) ?? [];
    if (problems.length > 0) {
      return this.fail(res, 422, `${RESOURCES[plural].kind}.${GROUP} "${obj.metadata.name}" is invalid: ${problems.join(', ')}`);
    }
    if (sameJson(status, obj.status ?? {})) return this.json(res, 200, obj);
    const next = clone(obj);
    next.status = status;
    this.commit(plural, 'MODIFIED', key, next);
    this.json(res, 200, this.objects.get(key));
  }
}
