/**
 * Docker/Notary token auth: parse the Bearer challenge of a 401, get a token from the
 * realm, remember it until shortly before it expires. Credentials only ever go to the
 * token service, never to the notary server, and never in clear text to another host.
 */
import { createHash } from 'node:crypto';
import { raceAbort } from '../common/abort.js';
import type { FetchErrorKind } from './source.js';
import { GetFailure, type GetRequest, type GetResponse } from './http-get.js';

export interface Challenge {
  /** Lower-cased auth scheme, e.g. "bearer". */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Map<string, string>;
}

export interface BearerChallenge {
  realm: string;
  service?: string;
  scope?: string;
  /** error= of a challenge sent back for a rejected token (invalid_token, insufficient_scope). */
  error?: string;
  errorDescription?: string;
}

export interface Credentials {
  username: string;
  password: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)/;

/**
 * RFC 7235 challenges from one or more WWW-Authenticate values: several challenges may
 * share a line, separated by commas, and quoted values may contain commas and escapes.
 * Malformed input yields the challenges parsed before the damage, never an exception.
 */
export function parseChallenges(values: readonly string[]): Challenge[] {
  const out: Challenge[] = [];
  for (const s of values) {
    let i = 0;
    let current: Challenge | undefined;
    const skipSpace = () => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    };
    const token = () => {
      const start = i;
      while (i < s.length && TCHAR.test(s[i]!)) i++;
      return s.slice(start, i);
    };
    const quoted = (): string | undefined => {
      i++; // opening quote
      let v = '';
      while (i < s.length) {
        const c = s[i++]!;
        if (c === '"') return v;
        if (c === '\\') {
          if (i >= s.length) return undefined;
          v += s[i++];
        } else v += c;
      }
      return undefined; // unterminated
    };
    for (;;) {
      skipSpace();
      while (s[i] === ',') {
        i++;
        skipSpace();
      }
      if (i >= s.length) break;
      const name = token();
      if (!name) break;
      skipSpace();
      if (current && s[i] === '=' && s[i + 1] !== '=') {
        i++;
        skipSpace();
        const value = s[i] === '"' ? quoted() : token();
        if (value === undefined) break;
        const key = name.toLowerCase();
        // First occurrence wins: a repeated realm must not redirect us.
        if (!current.params.has(key)) current.params.set(key, value);
        skipSpace();
        if (i < s.length && s[i] !== ',') break;
        continue;
      }
      current = { scheme: name.toLowerCase(), params: new Map() };
      out.push(current);
      // "Basic dXNlcg==": a token68 after the scheme carries nothing we use; skip it.
      const t68 = TOKEN68.exec(s.slice(i));
      if (t68) i += t68[0].length;
    }
  }
  return out;
}

export function bearerChallenge(values: readonly string[]): BearerChallenge | undefined {
  const c = parseChallenges(values).find((ch) => ch.scheme === 'bearer' && ch.params.get('realm'));
  if (!c) return undefined;
  const p = c.params;
  return {
    realm: p.get('realm')!,
    ...(p.has('service') ? { service: p.get('service')! } : {}),
    ...(p.has('scope') ? { scope: p.get('scope')! } : {}),
    ...(p.has('error') ? { error: p.get('error')! } : {}),
    ...(p.has('error_description') ? { errorDescription: p.get('error_description')! } : {}),
  };
}

/** A failure of the token dance; HttpSource turns it into a FetchError for the role. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly kind: FetchErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface IssuedToken {
  token: string;
  /** Lifetime in seconds as the service stated it (default 60). */
  expiresIn: number;
}

const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
const DEFAULT_EXPIRES_IN = 60;
// RFC 6750 b64token: anything else could not be sent in a header safely.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Where the token request goes, or why it must not. The realm comes from the server's
 * answer, so it is treated as untrusted: https only, unless the notary URL itself is
 * plain http, and credentials never travel over http to a host other than the notary's.
 */
export function tokenUrl(ch: BearerChallenge, notaryUrl: URL, credentials?: Credentials): URL {
  let realm: URL;
  try {
    realm = new URL(ch.realm);
  } catch {
    throw new TokenError('auth', `token realm ${JSON.stringify(ch.realm)} is not a URL`);
  }
  if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
    throw new TokenError('auth', `token realm ${realm.href} is not http(s)`);
  }
  if (realm.username || realm.password) throw new TokenError('auth', `token realm ${realm.origin} carries credentials in its URL`);
  if (realm.protocol === 'http:') {
    if (notaryUrl.protocol !== 'http:') {
      throw new TokenError('auth', `token realm ${realm.href} is plain http while the notary server is https; refusing to downgrade`);
    }
    if (credentials && realm.host !== notaryUrl.host) {
      throw new TokenError('auth', `token realm ${realm.href} is plain http on another host; refusing to send credentials there`);
    }
  }
  realm.hash = '';
  if (ch.service !== undefined) realm.searchParams.append('service', ch.service);
  if (ch.scope !== undefined) realm.searchParams.append('scope', ch.scope);
  if (credentials) realm.searchParams.append('account', credentials.username);
  return realm;
}

export type Getter = (req: Omit<GetRequest, 'agent' | 'ca'>) => Promise<GetResponse>;

/** One token request. `get` carries the transport (agent, CA) of the notary source. */
export async function requestToken(
  ch: BearerChallenge,
  notaryUrl: URL,
  credentials: Credentials | undefined,
  get: Getter,
  signal: AbortSignal,
  abortReason: () => string,
): Promise<IssuedToken> {
  const url = tokenUrl(ch, notaryUrl, credentials);
  const where = `token service ${url.origin}${url.pathname}`;
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (credentials) {
    headers.Authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
  }
  let res: GetResponse;
  try {
    res = await get({ url, headers, signal, abortReason, maxBytes: MAX_TOKEN_RESPONSE_BYTES });
  } catch (e) {
    if (e instanceof GetFailure) {
      const kind: FetchErrorKind = e.kind === 'aborted' ? 'timeout' : e.kind === 'tls' || e.kind === 'unreachable' ? e.kind : 'auth';
      throw new TokenError(kind, `${where}: ${e.message}`);
    }
    throw e;
  }
  if (res.status === 401 || res.status === 403) {
    throw new TokenError('auth', `${where} refused ${credentials ? `the credentials of ${JSON.stringify(credentials.username)}` : 'an anonymous token'} (HTTP ${res.status})`, res.status);
  }
  if (res.status !== 200) {
    throw new TokenError('http', `${where} answered HTTP ${res.status} ${res.statusMessage}`.trimEnd(), res.status);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(res.body).toString('utf8'));
  } catch {
    throw new TokenError('auth', `${where} sent a response that is not JSON`);
  }
  const obj = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  const token = [obj.token, obj.access_token].find((t): t is string => typeof t === 'string' && t.length > 0);
  if (token === undefined) throw new TokenError('auth', `${where} sent no "token" or "access_token"`);
  if (!B64TOKEN.test(token)) throw new TokenError('auth', `${where} sent a token with characters not allowed in a Bearer header`);
  const e = obj.expires_in;
  const expiresIn = typeof e === 'number' && Number.isFinite(e) && e > 0 ? e : DEFAULT_EXPIRES_IN;
  return { token, expiresIn };
}

export interface TokenCacheOptions {
  /** Clock in ms; tests pin it. */
  now?: () => number;
  /** Tokens are reused for at most this long whatever the service says (default 1 h). */
  maxLifetimeMs?: number;
}

interface Entry {
  token: string;
  until: number;
}

interface Pending {
  promise: Promise<IssuedToken>;
  controller: AbortController;
  waiters: number;
}

/**
 * Tokens per (realm, service, scope, credentials), reused until shortly before they
 * expire. Concurrent requests for the same key share one token request (the updater
 * fetches many files at once); that request is cancelled only when every waiter has
 * given up, and each waiter still stops at its own deadline.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Pending>();
  private readonly now: () => number;
  private readonly maxLifetimeMs: number;

  constructor(opts: TokenCacheOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxLifetimeMs = opts.maxLifetimeMs ?? 60 * 60 * 1000;
  }

  static key(ch: BearerChallenge, credentials?: Credentials): string {
    // The password is part of the key (hashed) so that a shared cache never hands a
    // token obtained with one secret to a source configured with another.
    const who = credentials
      ? `${credentials.username}\u0000${createHash('sha256').update(credentials.password, 'utf8').digest('hex')}`
      : '';
    return JSON.stringify([ch.realm, ch.service ?? null, ch.scope ?? null, who]);
  }

  get(key: string): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() >= e.until) {
      this.entries.delete(key);
      return undefined;
    }
    return e.token;
  }

  /** Forget a token the server rejected (only if it is still the cached one). */
  drop(key: string, token: string): void {
    if (this.entries.get(key)?.token === token) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * A cached token, or a new one from `issue`. `issue` gets a signal that fires when all
   * waiters have left; the caller's `signal` only ends this caller's wait.
   */
  async obtain(key: string, issue: (signal: AbortSignal) => Promise<IssuedToken>, signal: AbortSignal, abortReason: () => string): Promise<string> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    let p = this.pending.get(key);
    if (!p) {
      const controller = new AbortController();
      const started = this.now();
      const promise = issue(controller.signal).then((t) => {
        this.store(key, t, started);
        return t;
      });
      const entry: Pending = { promise, controller, waiters: 0 };
      p = entry;
      this.pending.set(key, entry);
      const clear = () => {
        if (this.pending.get(key) === entry) this.pending.delete(key);
      };
      promise.then(clear, clear);
    }
    const shared = p;
    shared.waiters++;
    try {
      return (await raceAbort(shared.promise, signal, () => new TokenError('timeout', `token request: ${abortReason() || 'aborted'}`))).token;
    } catch (e) {
      // `issue` is the caller's: whatever it throws reaches our callers as an Error.
      throw e instanceof Error ? e : new Error(String(e));
    } finally {
      shared.waiters--;
      if (shared.waiters === 0) shared.controller.abort();
    }
  }

  private store(key: string, t: IssuedToken, started: number): void {
    const lifetime = Math.min(t.expiresIn * 1000, this.maxLifetimeMs);
    // Stop using a token a little before the service would refuse it: the smaller of
    // 10 s and half its lifetime, counted from when it was requested.
    const margin = Math.min(10_000, lifetime / 2);
    this.entries.set(key, { token: t.token, until: started + lifetime - margin });
  }
}
