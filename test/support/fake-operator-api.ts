// A stand-in kube-apiserver for what the audit, leader election and Events use, speaking the
// wire protocol @kubernetes/client-node speaks to the real one:
//
//   GET    /api/v1/pods?limit=N&continue=T                        list, all namespaces, paged
//   GET    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}
//   POST   /apis/coordination.k8s.io/v1/namespaces/{ns}/leases   409 AlreadyExists if present
//   PUT    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}
//   POST   /apis/events.k8s.io/v1/namespaces/{ns}/events
//   PATCH  /apis/events.k8s.io/v1/namespaces/{ns}/events/{name}   application/json-patch+json
//   GET    /apis/wgpolicyk8s.io/v1alpha2                          discovery: 404 unless the CRD is installed
//   GET/POST/PUT/DELETE /apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports[/{name}]
//
// What a real API server does and this one copies: one resourceVersion counter for every
// write; a PUT whose metadata.resourceVersion is not the stored one fails 409 Conflict (a
// PUT without one is refused 422 here: client-go always sends it for Leases); POST of an
// existing name fails 409 AlreadyExists; errors are metav1.Status; resources of a group
// that is not installed answer 404 like any unknown path. Anything else is passed to
// `fallback` (the FakeApiServer of the policy CRDs) so one kubeconfig reaches both.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  body: string;
  status: number;
}

const REASONS: Record<number, string> = { 400: 'BadRequest', 404: 'NotFound', 405: 'MethodNotAllowed', 409: 'Conflict', 415: 'UnsupportedMediaType', 422: 'Invalid', 500: 'InternalError' };

export class FakeOperatorApi {
  readonly requests: Recorded[] = [];
  /** Whether the wgpolicyk8s.io PolicyReport CRD is installed. */
  policyReportsInstalled = false;
  private readonly store = new Map<string, Obj>();
  private readonly server: Server;
  private rv = 5000;
  private port = 0;
  /** Requests to fail once with a status, for conflict and outage tests. */
  private readonly failures: Array<{ match: (method: string, path: string) => boolean; code: number }> = [];

  private constructor(private readonly fallback?: string) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(opts: { fallback?: string } = {}): Promise<FakeOperatorApi> {
    const f = new FakeOperatorApi(opts.fallback);
    await new Promise<void>((resolve) => f.server.listen(0, '127.0.0.1', () => resolve()));
    f.port = (f.server.address() as AddressInfo).port;
    return f;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** Adds a Pod as the API server would store it. */
  addPod(pod: { name: string; namespace: string; containers: Array<{ name: string; image: string }>; phase?: string; initContainers?: Array<{ name: string; image: string }> }): Obj {
    const obj: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, namespace: pod.namespace, uid: randomUUID(), resourceVersion: String(++this.rv), creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { containers: pod.containers, ...(pod.initContainers ? { initContainers: pod.initContainers } : {}) },
      status: { phase: pod.phase ?? 'Running' },
    };
    this.store.set(`pods/${pod.namespace}/${pod.name}`, obj);
    return structuredClone(obj);
  }

  /** Stored objects of a resource (leases, events, policyreports, pods), optionally in one namespace. */
  list(resource: string, namespace?: string): Obj[] {
    return [...this.store.entries()].filter(([k]) => k.startsWith(`${resource}/${namespace !== undefined ? `${namespace}/` : ''}`)).map(([, v]) => structuredClone(v));
  }

  get(resource: string, namespace: string, name: string): Obj | undefined {
    const o = this.store.get(`${resource}/${namespace}/${name}`);
    return o ? structuredClone(o) : undefined;
  }

  /** Writes an object directly, as another client would (bumps resourceVersion). */
  put(resource: string, namespace: string, obj: Obj): Obj {
    const stored = structuredClone(obj);
    stored.metadata = { ...stored.metadata, namespace, resourceVersion: String(++this.rv), uid: stored.metadata?.uid ?? randomUUID() };
    this.store.set(`${resource}/${namespace}/${stored.metadata.name}`, stored);
    return structuredClone(stored);
  }

  failNext(match: (method: string, path: string) => boolean, code: number): void {
    this.failures.push({ match, code });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const rec: Recorded = { method, path, query: Object.fromEntries(url.searchParams), contentType: req.headers['content-type'], body, status: 0 };
    const send = (code: number, value: unknown) => {
      rec.status = code;
      const text = JSON.stringify(value);
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(text);
    };
    const fail = (code: number, message: string, reason = REASONS[code] ?? 'Unknown') => send(code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

    const route = parse(path, this.policyReportsInstalled);
    if (!route) {
      if (this.fallback) return this.proxy(req, res, body);
      this.requests.push(rec);
      return fail(404, `the server could not find the requested resource`);
    }
    this.requests.push(rec);
    const injected = this.failures.findIndex((f) => f.match(method, path));
    if (injected >= 0) {
      const [f] = this.failures.splice(injected, 1);
      return fail(f!.code, `injected failure ${f!.code}`);
    }
    if (route.discovery) {
      if (method !== 'GET') return fail(405, 'method not allowed');
      return send(200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'wgpolicyk8s.io/v1alpha2', resources: [{ name: 'policyreports', namespaced: true, kind: 'PolicyReport', verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] }] });
    }
    const { resource, namespace, name } = route;
    const key = `${resource}/${namespace}/${name}`;
    try {
      if (method === 'GET' && name === undefined) {
        const all = this.list(resource, namespace).sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
        const limit = Number(url.searchParams.get('limit') ?? '0');
        const start = Number(url.searchParams.get('continue') ?? '0');
        const page = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
        const next = limit > 0 && start + limit < all.length ? String(start + limit) : undefined;
        return send(200, { kind: `${kindOf(resource)}List`, apiVersion: apiVersionOf(resource), metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) }, items: page });
      }
      if (method === 'GET') {
        const o = this.store.get(key);
        return o ? send(200, o) : fail(404, `${resource} "${name}" not found`);
      }
      if (method === 'POST') {
        if (req.headers['content-type']?.split(';')[0] !== 'application/json') return fail(415, 'expected application/json');
        const obj = JSON.parse(body) as Obj;
        const objName = obj.metadata?.name;
        if (!objName) return fail(422, 'metadata.name: Required value');
        if (obj.metadata.namespace && obj.metadata.namespace !== namespace) return fail(400, 'the namespace of the object does not match the namespace on the request');
        if (this.store.has(`${resource}/${namespace}/${objName}`)) return fail(409, `${resource} "${objName}" already exists`, 'AlreadyExists');
        const problem = validate(resource, obj);
        if (problem) return fail(422, problem);
        obj.metadata = { ...obj.metadata, namespace, uid: randomUUID(), resourceVersion: String(++this.rv), creationTimestamp: new Date().toISOString() };
        this.store.set(`${resource}/${namespace}/${objName}`, obj);
        return send(201, obj);
      }
      if (method === 'PUT') {
        const old = this.store.get(key);
        if (!old) return fail(404, `${resource} "${name}" not found`);
        const obj = JSON.parse(body) as Obj;
        if (obj.metadata?.name !== name) return fail(400, 'the name of the object does not match the name on the URL');
        if (!obj.metadata?.resourceVersion) return fail(422, 'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update');
        if (obj.metadata.resourceVersion !== old.metadata.resourceVersion) {
          return fail(409, `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        const problem = validate(resource, obj);
        if (problem) return fail(422, problem);
        obj.metadata = { ...obj.metadata, namespace, uid: old.metadata.uid, creationTimestamp: old.metadata.creationTimestamp, resourceVersion: String(++this.rv) };
        this.store.set(key, obj);
        return send(200, obj);
      }
      if (method === 'PATCH') {
        const old = this.store.get(key);
        if (!old) return fail(404, `${resource} "${name}" not found`);
        if (req.headers['content-type'] !== 'application/json-patch+json') return fail(415, `unsupported patch type ${req.headers['content-type']}`);
        const obj = applyJsonPatch(structuredClone(old), JSON.parse(body) as Obj[]);
        obj.metadata.resourceVersion = String(++this.rv);
        this.store.set(key, obj);
        return send(200, obj);
      }
      if (method === 'DELETE') {
        const old = this.store.get(key);
        if (!old) return fail(404, `${resource} "${name}" not found`);
        this.store.delete(key);
        return send(200, { kind: 'Status', apiVersion: 'v1', status: 'Success', code: 200 });
      }
      return fail(405, 'method not allowed');
    } catch (e) {
      return fail(400, (e as Error).message);
    }
  }

  private proxy(req: IncomingMessage, res: ServerResponse, body: string): void {
    const target = new URL(req.url ?? '/', this.fallback);
    const out = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    res.on('close', () => out.destroy());
    out.end(body);
  }
}

type Route = { discovery: true; resource?: undefined; namespace?: undefined; name?: undefined } | { discovery?: false; resource: string; namespace: string | undefined; name: string | undefined };

function parse(path: string, reportsInstalled: boolean): Route | undefined {
  if (path === '/api/v1/pods') return { resource: 'pods', namespace: undefined, name: undefined };
  if (reportsInstalled && path === '/apis/wgpolicyk8s.io/v1alpha2') return { discovery: true };
  const m = /^\/apis\/(coordination\.k8s\.io\/v1|events\.k8s\.io\/v1|wgpolicyk8s\.io\/v1alpha2)\/namespaces\/([^/]+)\/(leases|events|policyreports)(?:\/([^/]+))?$/.exec(path);
  if (!m) return undefined;
  const [, gv, namespace, resource, name] = m;
  const owner = { leases: 'coordination.k8s.io/v1', events: 'events.k8s.io/v1', policyreports: 'wgpolicyk8s.io/v1alpha2' }[resource as 'leases'];
  if (owner !== gv) return undefined;
  if (resource === 'policyreports' && !reportsInstalled) return undefined;
  return { resource: resource!, namespace, name };
}

function kindOf(resource: string): string {
  return { pods: 'Pod', leases: 'Lease', events: 'Event', policyreports: 'PolicyReport' }[resource] ?? resource;
}

function apiVersionOf(resource: string): string {
  return { pods: 'v1', leases: 'coordination.k8s.io/v1', events: 'events.k8s.io/v1', policyreports: 'wgpolicyk8s.io/v1alpha2' }[resource] ?? 'v1';
}

/** The fields the API server requires of the objects trustgate writes. */
function validate(resource: string, o: Obj): string | undefined {
  if (resource === 'events') {
    for (const f of ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason', 'type', 'regarding']) if (!o[f]) return `${f}: Required value`;
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(o.eventTime)) return `eventTime: Invalid value: ${o.eventTime}: must be a MicroTime`;
    if (!['Normal', 'Warning'].includes(o.type)) return `type: Unsupported value: ${o.type}`;
    if (typeof o.note === 'string' && Buffer.byteLength(o.note) > 1024) return 'note: Too long: may not be longer than 1kB';
  }
  if (resource === 'leases' && o.spec?.renewTime !== undefined && !/\.\d{6}Z$/.test(o.spec.renewTime)) return 'spec.renewTime: must be a MicroTime';
  if (resource === 'policyreports') {
    for (const r of o.results ?? []) if (!['pass', 'fail', 'warn', 'error', 'skip'].includes(r.result)) return `results.result: Unsupported value: ${r.result}`;
  }
  return undefined;
}

function applyJsonPatch(doc: Obj, ops: Obj[]): Obj {
  for (const op of ops) {
    const parts = String(op.path).split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let at: Obj = doc;
    for (const p of parts) {
      if (at[p] === undefined) throw new Error(`path ${op.path} does not exist`);
      at = at[p];
    }
    if (op.op === 'add' || op.op === 'replace') at[last] = op.value;
    else if (op.op === 'remove') delete at[last];
    else throw new Error(`unsupported op ${op.op}`);
  }
  return doc;
}
