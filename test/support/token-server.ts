// Stand-in for a docker/distribution token service (the thing Docker Hub runs at
// auth.docker.io), so notary-server's token auth can be exercised locally.
//
// GET /token?service=S&scope=repository:<name>:<actions>[&scope=...]
//   no Authorization          -> anonymous token, only "pull" is ever granted
//   Basic user:secret (known) -> every requested action is granted
//   Basic with bad credentials-> 401
// The token is a JWT signed ES256 whose x5c header carries the signing certificate; the
// server trusts it because that certificate is its `rootcertbundle`.
//
// Run as a process (hack/notary-stack.sh does):
//   node dist/test/support/token-server.js --port P --tls-cert F --tls-key F
//     --sign-cert F --sign-key F --issuer I --service S --users user:secret[,u2:s2]
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface TokenServerOptions {
  /** 0 picks a free port. */
  port: number;
  tlsCertPem: string;
  tlsKeyPem: string;
  signCertPem: string;
  signKeyPem: string;
  issuer: string;
  service: string;
  /** user name -> password; these users get every action they ask for. */
  users: Record<string, string>;
  /** Token lifetime in seconds (default 300). */
  ttlSeconds?: number;
}

export interface TokenServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Parses a docker/distribution scope. The name may itself hold colons (a GUN like
 * 127.0.0.1:5000/demo/app), so the type ends at the first colon and the actions start
 * after the last one.
 */
export function parseScope(scope: string): AccessEntry | null {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first + 1) return null;
  const actions = scope.slice(last + 1).split(',').filter((a) => a.length > 0);
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export function makeToken(
  signKey: KeyObject,
  signCert: X509Certificate,
  claims: Record<string, unknown>,
): string {
  const header = { typ: 'JWT', alg: 'ES256', x5c: [signCert.raw.toString('base64')] };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // JOSE wants r||s, not the DER that node:crypto produces by default.
  const sig = sign('sha256', Buffer.from(input), { key: signKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

type AuthResult = { kind: 'anonymous' } | { kind: 'user'; name: string } | { kind: 'denied' };

function authenticate(req: IncomingMessage, users: Record<string, string>): AuthResult {
  const header = req.headers.authorization;
  if (header === undefined || header === '') return { kind: 'anonymous' };
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header.trim());
  if (!m || m[1] === undefined) return { kind: 'denied' };
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { kind: 'denied' };
  const name = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (!Object.hasOwn(users, name) || users[name] !== password) return { kind: 'denied' };
  return { kind: 'user', name };
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const signKey = createPrivateKey(opts.signKeyPem);
  const signCert = new X509Certificate(opts.signCertPem);
  if (signKey.asymmetricKeyType !== 'ec') throw new Error('token signing key must be an EC P-256 key (ES256)');
  const ttl = opts.ttlSeconds ?? 300;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://token.invalid');
    if (req.method !== 'GET') return sendJson(res, 405, { errors: [{ code: 'UNSUPPORTED' }] });
    if (url.pathname === '/health') return sendJson(res, 200, {});
    if (url.pathname !== '/token') return sendJson(res, 404, { errors: [{ code: 'NOT_FOUND' }] });

    const service = url.searchParams.get('service');
    if (service !== null && service !== opts.service) {
      return sendJson(res, 400, { errors: [{ code: 'INVALID_SERVICE', message: `unknown service ${service}` }] });
    }
    const who = authenticate(req, opts.users);
    if (who.kind === 'denied') {
      return sendJson(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }, {
        'WWW-Authenticate': 'Basic realm="trustgate-test"',
      });
    }
    const access: AccessEntry[] = [];
    for (const raw of url.searchParams.getAll('scope')) {
      for (const one of raw.split(' ')) {
        if (one === '') continue;
        const entry = parseScope(one);
        if (!entry) return sendJson(res, 400, { errors: [{ code: 'INVALID_SCOPE', message: one }] });
        const granted = who.kind === 'user' ? entry.actions : entry.actions.filter((a) => a === 'pull');
        access.push({ type: entry.type, name: entry.name, actions: granted });
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const token = makeToken(signKey, signCert, {
      iss: opts.issuer,
      sub: who.kind === 'user' ? who.name : '',
      aud: opts.service,
      exp: now + ttl,
      // A little slack for clock differences between this process and the server.
      nbf: now - 10,
      iat: now,
      jti: randomBytes(16).toString('hex'),
      access,
    });
    sendJson(res, 200, {
      token,
      access_token: token,
      expires_in: ttl,
      issued_at: new Date(now * 1000).toISOString(),
    });
  };

  const server: Server = createServer({ cert: opts.tlsCertPem, key: opts.tlsKeyPem }, (req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      sendJson(res, 500, { errors: [{ code: 'INTERNAL', message: String(err) }] });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/token`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === undefined || !k.startsWith('--') || v === undefined) throw new Error(`bad argument near ${k ?? '<end>'}`);
    out.set(k.slice(2), v);
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const need = (k: string): string => {
    const v = args.get(k);
    if (v === undefined || v === '') throw new Error(`missing --${k}`);
    return v;
  };
  const users: Record<string, string> = {};
  for (const pair of (args.get('users') ?? '').split(',')) {
    const colon = pair.indexOf(':');
    if (colon > 0) users[pair.slice(0, colon)] = pair.slice(colon + 1);
  }
  const port = Number(need('port'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port ${args.get('port')}`);
  const srv = await startTokenServer({
    port,
    tlsCertPem: readFileSync(need('tls-cert'), 'utf8'),
    tlsKeyPem: readFileSync(need('tls-key'), 'utf8'),
    signCertPem: readFileSync(need('sign-cert'), 'utf8'),
    signKeyPem: readFileSync(need('sign-key'), 'utf8'),
    issuer: need('issuer'),
    service: need('service'),
    users,
  });
  console.log(JSON.stringify({ msg: 'token server listening', url: srv.url }));
  const stop = (): void => {
    void srv.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(`token server: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
