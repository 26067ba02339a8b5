/**
 * A TUF 1.0 repository served as static files (nginx, a CDN, an object store): GET
 * `{metadata base URL}/{file}`, a byte cap enforced while reading, one deadline per fetch,
 * no redirects. Bytes are returned untouched; tuf/tuf1 decides what they are worth.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { startDeadline } from '../common/abort.js';
import { GetFailure, httpGet } from '../notary/http-get.js';
import { FetchError, type SpecFileRequest, type SpecSource } from './source.js';

export interface SpecHttpSourceOptions {
  /** The repository's metadata base URL, e.g. https://tuf.example.com/metadata/. */
  url: string;
  /** PEM bundle of the CAs to trust instead of the system roots. */
  caBundle?: string;
  requestTimeoutMs?: number;
  agent?: http.Agent;
}

const DEFAULT_TIMEOUT_MS = 5000;

export class SpecHttpSource implements SpecSource {
  readonly server: string;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly ownAgent: boolean;

  constructor(private readonly opts: SpecHttpSourceOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new TypeError(`TUF metadata URL ${JSON.stringify(opts.url)} is not a valid URL`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError(`TUF metadata URL ${u.href} must be https:// (or explicitly http://)`);
    if (u.username || u.password || u.search || u.hash) throw new TypeError(`TUF metadata URL ${u.origin}${u.pathname} must not carry credentials, a query or a fragment`);
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    this.base = u;
    this.server = u.href;
    this.ownAgent = opts.agent === undefined;
    this.agent = opts.agent ?? (u.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 16 }) : new http.Agent({ keepAlive: true, maxSockets: 16 }));
  }

  urlFor(file: string): URL {
    const url = new URL(file, this.base);
    // Role names are quoted (file-names.ts); this guards the invariant that nothing leaves the base.
    if (url.origin !== this.base.origin || !url.pathname.startsWith(this.base.pathname) || url.pathname.slice(this.base.pathname.length).includes('/')) {
      throw new TypeError(`metadata file ${JSON.stringify(file)} would leave ${this.server}`);
    }
    return url;
  }

  async fetch(req: SpecFileRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const url = this.urlFor(req.file);
    const fail = (kind: FetchError['kind'], reason: string, status?: number) => new FetchError(kind, this.server, req.role, `${reason} (GET ${url.href})`, status);
    const deadline = startDeadline(this.opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS, signal);
    try {
      const res = await httpGet({ url, agent: this.agent, signal: deadline.signal, abortReason: deadline.reason, maxBytes: req.maxBytes, ...(this.opts.caBundle !== undefined ? { ca: this.opts.caBundle } : {}) });
      if (res.status === 200) return res.body;
      // Static servers answer 403 for files they will not show as often as 404.
      if (res.status === 404 || res.status === 403) throw fail('not-found', `HTTP ${res.status}: no ${req.file}`, res.status);
      throw fail('http', `HTTP ${res.status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`, res.status);
    } catch (e) {
      if (!(e instanceof GetFailure)) throw e;
      const kind = e.kind === 'aborted' ? 'timeout' : e.kind === 'protocol' ? 'http' : e.kind;
      throw fail(kind, e.message);
    } finally {
      deadline.dispose();
    }
  }

  close(): void {
    if (this.ownAgent) this.agent.destroy();
  }
}
