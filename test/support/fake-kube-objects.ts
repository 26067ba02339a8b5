// A stand-in kube-apiserver for the objects self-managed TLS touches: Secrets and the
// admissionregistration.k8s.io/v1 webhook configurations. It speaks the wire protocol
// @kubernetes/client-node uses, and copies what the real server does with writes:
//
//   GET    /api/v1/namespaces/{ns}/secrets/{name}
//   POST   /api/v1/namespaces/{ns}/secrets                        201; 409 AlreadyExists
//   PUT    /api/v1/namespaces/{ns}/secrets/{name}                 409 Conflict on a stale resourceVersion
//   GET|PUT /apis/admissionregistration.k8s.io/v1/{mutating,validating}webhookconfigurations/{name}
//
// - resourceVersion is one counter for every object; each write bumps it. A PUT with a
//   resourceVersion other than the stored one is refused with 409 Conflict; a PUT without
//   one is an unconditional update (both as for Secrets and webhook configurations).
// - A PUT whose body names another object is 400 BadRequest; to a missing object, 404.
//   A POST carrying a resourceVersion is 400 BadRequest.
// - Secret data must be base64; anything else is 400 (the real server fails to decode it).
// - Errors are metav1.Status objects.
// - An optional authorizer copies RBAC: each request is checked against rules of
//   {verbs, resource, resourceNames?}; create is never allowed by resourceNames (as in RBAC,
//   where the name is not known when create is authorized). Refusals are 403 Forbidden.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export type Resource = 'secrets' | 'mutatingwebhookconfigurations' | 'validatingwebhookconfigurations';

export interface Rule {
  verbs: string[];
  resource: Resource;
  resourceNames?: string[];
}

export interface Recorded {
  method: string;
  path: string;
  body: string;
  status?: number;
}

interface Stored {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion: string };
  [k: string]: unknown;
}

const KINDS: Record<Resource, { apiVersion: string; kind: string }> = {
  secrets: { apiVersion: 'v1', kind: 'Secret' },
  mutatingwebhookconfigurations: { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
  validatingwebhookconfigurations: { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration' },
};

const REASONS: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed', 409: 'Conflict' };

export class FakeKubeObjects {
  readonly requests: Recorded[] = [];
  readonly token = randomUUID();
  /** RBAC rules for the client; undefined allows everything. */
  rules: Rule[] | undefined;
  /**
   * Where requests for other resources go (e.g. a FakeApiServer serving the policy CRDs), so
   * one kubeconfig reaches both, as one API server would serve them.
   */
  fallback: { url: string; token: string } | undefined;
  private readonly objects = new Map<string, Stored>();
  private rv = 5000;
  private port = 0;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private barrier: { match: (r: Recorded) => boolean; count: number; waiting: Array<() => void> } | undefined;
  /** Called once, after a matching request is recorded and before it is served (another writer sneaking in). */
  private interleave: { match: (r: Recorded) => boolean; run: () => void } | undefined;

  private constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(): Promise<FakeKubeObjects> {
    const f = new FakeKubeObjects();
    await new Promise<void>((resolve) => f.server.listen(0, '127.0.0.1', resolve));
    f.port = (f.server.address() as AddressInfo).port;
    return f;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'trustgate', token: this.token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'trustgate' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** Creates or overwrites an object as an admin would (kubectl apply); returns it. */
  put(resource: Resource, obj: { metadata: { name: string; namespace?: string } } & Record<string, unknown>): Stored {
    const stored = { ...structuredClone(obj), ...KINDS[resource] } as Stored;
    stored.metadata = { uid: randomUUID(), ...stored.metadata, resourceVersion: String(++this.rv) };
    this.objects.set(this.key(resource, obj.metadata.name, obj.metadata.namespace), stored);
    return structuredClone(stored);
  }

  get(resource: Resource, name: string, namespace?: string): Stored | undefined {
    const o = this.objects.get(this.key(resource, name, namespace));
    return o ? structuredClone(o) : undefined;
  }

  delete(resource: Resource, name: string, namespace?: string): void {
    this.objects.delete(this.key(resource, name, namespace));
  }

  /** Holds requests `match` accepts until `count` of them are waiting, then serves them all (a race, made certain). */
  gather(match: (r: Recorded) => boolean, count: number): void {
    this.barrier = { match, count, waiting: [] };
  }

  /** Runs `run` once, just before the first request `match` accepts is served. */
  before(match: (r: Recorded) => boolean, run: () => void): void {
    this.interleave = { match, run };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private key(resource: Resource, name: string, namespace: string | undefined): string {
    return `${resource}/${namespace ?? ''}/${name}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Recorded = { method: req.method ?? 'GET', path: new URL(req.url ?? '/', 'http://x').pathname, body: Buffer.concat(chunks).toString('utf8') };
      this.requests.push(rec);
      const serve = () => {
        if (this.interleave?.match(rec)) {
          const run = this.interleave.run;
          this.interleave = undefined;
          run();
        }
        rec.status = this.route(req, rec, res);
      };
      const b = this.barrier;
      if (b && b.match(rec)) {
        b.waiting.push(serve);
        if (b.waiting.length >= b.count) {
          this.barrier = undefined;
          for (const w of b.waiting) w();
        }
        return;
      }
      serve();
    });
  }

  private route(req: IncomingMessage, r: Recorded, res: ServerResponse): number {
    if (req.headers['authorization'] !== `Bearer ${this.token}`) return this.fail(res, 401, 'Unauthorized');
    const own = /^\/api\/v1\/namespaces\/[^/]+\/secrets(\/|$)|^\/apis\/admissionregistration\.k8s\.io\//.test(r.path);
    if (!own && this.fallback) return this.forward(req, r, res, this.fallback);
    let m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(r.path);
    let resource: Resource;
    let namespace: string | undefined;
    let name: string | undefined;
    if (m) {
      resource = 'secrets';
      namespace = decodeURIComponent(m[1]!);
      name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } else if ((m = /^\/apis\/admissionregistration\.k8s\.io\/v1\/(mutatingwebhookconfigurations|validatingwebhookconfigurations)(?:\/([^/]+))?$/.exec(r.path))) {
      resource = m[1] as Resource;
      name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } else {
      return this.fail(res, 404, 'the server could not find the requested resource');
    }
    const verb = r.method === 'GET' ? (name ? 'get' : 'list') : r.method === 'POST' ? 'create' : r.method === 'PUT' ? 'update' : r.method === 'PATCH' ? 'patch' : r.method === 'DELETE' ? 'delete' : '';
    if (!this.allowed(verb, resource, name)) {
      return this.fail(res, 403, `${resource} "${name ?? ''}" is forbidden: User "system:serviceaccount:trustgate:trustgate" cannot ${verb} resource "${resource}"${namespace ? ` in the namespace "${namespace}"` : ''}`);
    }
    const kind = KINDS[resource];
    if (verb === 'get') {
      const o = this.objects.get(this.key(resource, name!, namespace));
      return o ? this.json(res, 200, o) : this.fail(res, 404, `${resource} "${name}" not found`);
    }
    if (verb !== 'create' && verb !== 'update') return this.fail(res, 405, `${r.method} is not served by this fake`);
    let body: Stored;
    try {
      body = JSON.parse(r.body) as Stored;
    } catch {
      return this.fail(res, 400, 'the body is not JSON');
    }
    if (body.kind !== kind.kind || body.apiVersion !== kind.apiVersion) return this.fail(res, 400, `expected ${kind.apiVersion} ${kind.kind}, got ${body.apiVersion} ${body.kind}`);
    if (resource === 'secrets') {
      for (const [k, v] of Object.entries((body['data'] ?? {}) as Record<string, unknown>)) {
        if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) return this.fail(res, 400, `Secret in version "v1" cannot be handled: data[${k}] is not base64`);
      }
    }
    const objName = body.metadata?.name;
    if (verb === 'create') {
      if (!objName) return this.fail(res, 400, 'metadata.name is required');
      if (body.metadata.resourceVersion) return this.fail(res, 400, 'resourceVersion should not be set on objects to be created');
      const key = this.key(resource, objName, namespace);
      if (this.objects.has(key)) return this.fail(res, 409, `${resource} "${objName}" already exists`, 'AlreadyExists');
      const stored = { ...body, metadata: { ...body.metadata, namespace, uid: randomUUID(), resourceVersion: String(++this.rv), creationTimestamp: new Date().toISOString() } } as Stored;
      if (namespace === undefined) delete stored.metadata.namespace;
      this.objects.set(key, stored);
      return this.json(res, 201, stored);
    }
    if (objName !== name) return this.fail(res, 400, `the name of the object (${objName}) does not match the name on the URL (${name})`);
    const key = this.key(resource, name!, namespace);
    const old = this.objects.get(key);
    if (!old) return this.fail(res, 404, `${resource} "${name}" not found`);
    const given = body.metadata.resourceVersion;
    if (given !== undefined && given !== '' && given !== old.metadata.resourceVersion) {
      return this.fail(res, 409, `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    const stored = { ...body, metadata: { ...body.metadata, uid: old.metadata['uid'], namespace, resourceVersion: String(++this.rv) } } as Stored;
    if (namespace === undefined) delete stored.metadata.namespace;
    this.objects.set(key, stored);
    return this.json(res, 200, stored);
  }

  private forward(req: IncomingMessage, r: Recorded, res: ServerResponse, to: { url: string; token: string }): number {
    const target = new URL(req.url ?? '/', to.url);
    const out = httpRequest(target, { method: r.method, headers: { ...req.headers, host: target.host, authorization: `Bearer ${to.token}` } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      // A watch answers headers first and events later: pass the headers on at once.
      res.flushHeaders();
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    res.on('close', () => out.destroy());
    out.end(r.body);
    return 0;
  }

  private allowed(verb: string, resource: Resource, name: string | undefined): boolean {
    if (!this.rules) return true;
    return this.rules.some(
      (rule) =>
        rule.resource === resource &&
        rule.verbs.includes(verb) &&
        (rule.resourceNames === undefined || rule.resourceNames.length === 0 || (verb !== 'create' && name !== undefined && rule.resourceNames.includes(name))),
    );
  }

  private json(res: ServerResponse, code: number, body: unknown): number {
    res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    return code;
  }

  private fail(res: ServerResponse, code: number, message: string, reason?: string): number {
    return this.json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: reason ?? REASONS[code] ?? 'Unknown', code });
  }
}
