/**
 * MetadataSource for a notary-server (Notary v1 HTTP API): GET
 * `{url}/v2/{gun}/_trust/tuf/{file}` with the same file names as the official client,
 * a byte cap enforced while reading, one deadline per fetch (token dance included), and
 * Docker token auth. Bytes are returned untouched; tuf/ decides what they are worth.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { FetchError, type HeldBytes, type MetadataRequest, type MetadataSource, type RemoteGet } from './source.js';
import { metadataFileName, validateGun } from './paths.js';
import { startDeadline, type Deadline } from '../common/abort.js';
import { GetFailure, httpGet, presentedCertificate, type GetRequest, type GetResponse } from './http-get.js';
import { bearerChallenge, requestToken, TokenCache, TokenError, type BearerChallenge, type Credentials } from './token-auth.js';

export interface HttpSourceOptions {
  /** Notary server base URL, e.g. https://notary.example.com:4443 (http:// only if written so). */
  url: string;
  gun: string;
  /** PEM bundle of the CAs to trust instead of the system roots (also used for the token realm). */
  caBundle?: string;
  /** Sent (Basic) only to the token service named by a Bearer challenge. */
  credentials?: Credentials;
  /** Total time for one fetch, token request and retry included. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** Connection pool to use; by default each source has its own keep-alive agent. */
  agent?: http.Agent;
  /** Token cache to share between sources; by default each source has its own. */
  tokenCache?: TokenCache;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
const MAX_SOCKETS = 16;
const IDLE_SOCKET_MS = 30_000;

export class HttpSource implements MetadataSource {
  readonly server: string;
  readonly gun: string;
  private readonly base: URL;
  private readonly ca: string | undefined;
  private readonly credentials: Credentials | undefined;
  private readonly timeoutMs: number;
  private readonly agent: http.Agent;
  private readonly ownAgent: boolean;
  private readonly tokens: TokenCache;
  /** The last Bearer challenge seen, so later fetches can send a cached token up front. */
  private challenge: BearerChallenge | undefined;

  constructor(opts: HttpSourceOptions) {
    this.base = parseBaseUrl(opts.url);
    this.server = this.base.href.replace(/\/$/, '');
    this.gun = validateGun(opts.gun);
    if (opts.caBundle !== undefined) {
      if (this.base.protocol !== 'https:') throw new TypeError(`caBundle given for ${this.server}, which is not https`);
      checkCaBundle(opts.caBundle, this.server);
    }
    this.ca = opts.caBundle;
    if (opts.credentials !== undefined) {
      const { username, password } = opts.credentials;
      if (typeof username !== 'string' || typeof password !== 'string' || username.includes(':')) {
        throw new TypeError(`credentials for ${this.server} need a string username without ":" and a string password`);
      }
    }
    this.credentials = opts.credentials;
    const t = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isFinite(t) || t <= 0) throw new TypeError(`requestTimeoutMs must be a positive number, got ${String(t)}`);
    this.timeoutMs = t;
    this.ownAgent = opts.agent === undefined;
    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
    this.agent = opts.agent ?? (this.base.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions));
    this.tokens = opts.tokenCache ?? new TokenCache();
  }

  /** The URL a request maps to (exactly what fetch() GETs). */
  urlFor(req: MetadataRequest): URL {
    const file = metadataFileName(req);
    const path = `${this.base.pathname.replace(/\/$/, '')}/v2/${this.gun}/_trust/tuf/${file}`;
    const url = new URL(this.base.href);
    url.pathname = path;
    // GUN and role are validated to need no escaping; if URL parsing still changed the
    // path, something slipped through and nothing is sent.
    if (url.pathname !== path) throw new TypeError(`metadata path ${JSON.stringify(path)} would not be sent verbatim`);
    return url;
  }

  async fetch(req: MetadataRequest, signal?: AbortSignal): Promise<Uint8Array> {
    return (await this.fetchThrough(req, signal, (r) => this.transport(r))).body;
  }

  /** As fetch, with the metadata GETs run by `via` (token requests stay here): the body stays there. */
  async fetchHeld(req: MetadataRequest, via: RemoteGet, signal?: AbortSignal): Promise<HeldBytes> {
    const remote: Transport = (r) =>
      via({ url: r.url.href, headers: r.headers ?? {}, ...(this.ca !== undefined ? { ca: this.ca } : {}), maxBytes: r.maxBytes }, r.signal, r.abortReason ?? (() => 'aborted'));
    const res = await this.fetchThrough(req, signal, remote);
    if (!res.held) throw new FetchError('http', this.server, req.role, `HTTP 200 without the body held where it was received (GET ${this.urlFor(req).href})`);
    return res.held;
  }

  private async fetchThrough(req: MetadataRequest, signal: AbortSignal | undefined, transport: Transport): Promise<GetResponse & { held?: HeldBytes }> {
    const url = this.urlFor(req);
    const deadline = startDeadline(this.timeoutMs, signal);
    try {
      return await this.fetchWithAuth(req, url, deadline, transport);
    } finally {
      deadline.dispose();
    }
  }

  /** Closes idle pooled connections of the source's own agent. */
  close(): void {
    if (this.ownAgent) this.agent.destroy();
  }

  private async fetchWithAuth(req: MetadataRequest, url: URL, deadline: Deadline, transport: Transport): Promise<GetResponse & { held?: HeldBytes }> {
    const fail = (kind: FetchError['kind'], reason: string, status?: number) =>
      new FetchError(kind, this.server, req.role, `${reason} (GET ${url.href})`, status);

    let sentToken: { key: string; token: string } | undefined;
    if (this.challenge) {
      const key = TokenCache.key(this.challenge, this.credentials);
      const token = this.tokens.get(key);
      if (token !== undefined) sentToken = { key, token };
    }
    let res = await this.get(transport, url, req, deadline, fail, sentToken?.token);
    if (res.status === 401) {
      const ch = bearerChallenge(res.challenges);
      if (!ch) {
        throw fail('auth', `HTTP 401 without a Bearer challenge (WWW-Authenticate: ${JSON.stringify(res.challenges.join(', '))})`, 401);
      }
      if (sentToken) this.tokens.drop(sentToken.key, sentToken.token);
      this.challenge = ch;
      let token: string;
      try {
        token = await this.tokens.obtain(
          TokenCache.key(ch, this.credentials),
          (s) => requestToken(ch, this.base, this.credentials, (r) => this.transport(r), s, deadline.reason),
          deadline.signal,
          deadline.reason,
        );
      } catch (e) {
        if (e instanceof TokenError) throw fail(e.kind, e.message, e.status);
        throw e;
      }
      res = await this.get(transport, url, req, deadline, fail, token);
      if (res.status === 401 || res.status === 403) {
        this.tokens.drop(TokenCache.key(ch, this.credentials), token);
        const again = bearerChallenge(res.challenges);
        const why = again?.error ? `: ${again.error}${again.errorDescription ? ` (${again.errorDescription})` : ''}` : '';
        throw fail('auth', `HTTP ${res.status} with a token from ${ch.realm}${why}`, res.status);
      }
    }
    if (res.status !== 200) throw this.statusError(res, fail);
    return res;
  }

  /** Why a response other than 200 yields no metadata. */
  private statusError(res: GetResponse, fail: (kind: FetchError['kind'], reason: string, status?: number) => FetchError): FetchError {
    const s = res.status;
    const detail = errorDetail(res);
    if (s === 404) return fail('not-found', `HTTP 404: no such metadata for ${this.gun}${detail}`, s);
    if (s === 401 || s === 403) return fail('auth', `HTTP ${s}${detail}`, s);
    if (s >= 300 && s < 400) {
      const to = res.headers.location;
      return fail('http', `HTTP ${s} redirect${to ? ` to ${JSON.stringify(to)}` : ''} not followed`, s);
    }
    return fail('http', `HTTP ${s}${res.statusMessage ? ` ${res.statusMessage}` : ''}${detail}`, s);
  }

  private async get(
    transport: Transport,
    url: URL,
    req: MetadataRequest,
    deadline: Deadline,
    fail: (kind: FetchError['kind'], reason: string, status?: number) => FetchError,
    token?: string,
  ): Promise<GetResponse & { held?: HeldBytes }> {
    try {
      return await transport({
        url,
        headers: token !== undefined ? { Authorization: `Bearer ${token}` } : {},
        signal: deadline.signal,
        abortReason: deadline.reason,
        maxBytes: req.maxBytes,
      });
    } catch (e) {
      if (!(e instanceof GetFailure)) throw e;
      switch (e.kind) {
        case 'aborted':
          throw fail('timeout', e.message);
        case 'too-large':
          throw fail('too-large', e.message);
        case 'tls': {
          // Whether our own CA was in play decides the fix: a wrong bundle, or none given.
          const cert = deadline.signal.aborted ? undefined : await presentedCertificate(url, 1000, deadline.signal);
          const message = cert ? e.message.replace("the server's certificate ", `the server's certificate ${cert} `) : e.message;
          throw fail('tls', `${message} (${this.ca !== undefined ? 'checked against the caBundle given, which does not vouch for it' : 'no caBundle given, so only the system CAs were trusted: set spec.trustServer.caBundle to the CA that issued it'})`);
        }
        case 'protocol':
          throw fail('http', e.message);
        default:
          throw fail('unreachable', e.message);
      }
    }
  }

  private transport(r: TransportRequest): Promise<GetResponse> {
    // The token realm may be another scheme than the notary server; the pool only fits one.
    const agent = r.url.protocol === this.base.protocol ? this.agent : undefined;
    return httpGet({ ...r, ...(agent ? { agent } : {}), ...(this.ca !== undefined ? { ca: this.ca } : {}) });
  }
}

type TransportRequest = Omit<GetRequest, 'agent' | 'ca'>;
/** Where a metadata GET runs: here (http-get), or where its bytes are verified (fetchHeld). */
type Transport = (r: TransportRequest) => Promise<GetResponse & { held?: HeldBytes }>;

function parseBaseUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TypeError(`trust server URL ${JSON.stringify(raw)} is not a valid URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TypeError(`trust server URL ${u.href} must be https:// (or explicitly http://)`);
  if (u.username || u.password) throw new TypeError(`trust server URL ${u.origin} must not carry credentials; use the credentials option`);
  if (u.search || u.hash) throw new TypeError(`trust server URL ${u.href} must not have a query or fragment`);
  return u;
}

function checkCaBundle(pem: string, server: string): void {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TypeError(`caBundle for ${server} holds no PEM certificate`);
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new TypeError(`caBundle for ${server}: certificate ${i + 1} does not parse: ${(e as Error).message}`);
    }
  }
}

/** notary-server error bodies: {"errors":[{"code":"METADATA_NOT_FOUND","message":"..."}]}. */
function errorDetail(res: GetResponse): string {
  if (res.body.length === 0) return '';
  try {
    const doc = JSON.parse(Buffer.from(res.body).toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = doc.errors?.[0];
    if (first && (typeof first.code === 'string' || typeof first.message === 'string')) {
      return `: ${[first.code, first.message].filter((x) => typeof x === 'string').join(' ')}`;
    }
  } catch {
    // not JSON: fall through to a short printable excerpt
  }
  const text = Buffer.from(res.body.subarray(0, 200)).toString('utf8').replace(/[^\x20-\x7e]+/g, ' ').trim();
  return text ? `: ${text}` : '';
}
