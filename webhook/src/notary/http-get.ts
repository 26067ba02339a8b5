/**
 * A single HTTP(S) GET with a byte cap enforced while reading and a stop signal that
 * tears the socket down. No redirects, no decompression, no retries: callers decide what
 * a status means. Failures are reported as GetFailure kinds, which the sources turn into
 * FetchErrors with their own context.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';

export interface GetRequest {
  url: URL;
  headers?: Record<string, string>;
  agent?: http.Agent;
  /** PEM CA bundle; replaces the system roots when given. */
  ca?: string;
  /** Aborts the request and closes the socket when it fires. */
  signal: AbortSignal;
  /** Why `signal` fired, for the error message. */
  abortReason?: () => string;
  /** Cap for a 200 body. */
  maxBytes: number;
  /** Cap for other bodies (error details); past it the body is dropped, not an error. */
  maxErrorBytes?: number;
}

export interface GetResponse {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  /** Every WWW-Authenticate header line, unjoined. */
  challenges: string[];
  /** The body of a 200; for other statuses at most maxErrorBytes of it (empty if longer). */
  body: Uint8Array;
}

export type GetFailureKind = 'too-large' | 'aborted' | 'unreachable' | 'tls' | 'protocol';

export class GetFailure extends Error {
  override readonly name = 'GetFailure';
  constructor(
    readonly kind: GetFailureKind,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_MAX_ERROR_BYTES = 8 * 1024;

export function httpGet(req: GetRequest): Promise<GetResponse> {
  return new Promise<GetResponse>((resolve, reject) => {
    const abortText = () => req.abortReason?.() || 'aborted';
    if (req.signal.aborted) {
      reject(new GetFailure('aborted', abortText()));
      return;
    }
    const isHttps = req.url.protocol === 'https:';
    const options: https.RequestOptions = {
      method: 'GET',
      headers: { 'User-Agent': 'trustgate', Accept: '*/*', 'Accept-Encoding': 'identity', ...req.headers },
      ...(req.agent ? { agent: req.agent } : {}),
      ...(isHttps && req.ca !== undefined ? { ca: req.ca } : {}),
    };
    const request = (isHttps ? https : http).request(req.url, options);
    let settled = false;
    const finish = (err: GetFailure | undefined, res?: GetResponse) => {
      if (settled) return;
      settled = true;
      req.signal.removeEventListener('abort', onAbort);
      if (err) {
        // The socket may be mid-body; it must not go back to the keep-alive pool.
        request.destroy();
        reject(err);
      } else {
        resolve(res!);
      }
    };
    const onAbort = () => finish(new GetFailure('aborted', abortText()));
    req.signal.addEventListener('abort', onAbort, { once: true });

    request.on('error', (e) => finish(classify(e)));
    request.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const ok = status === 200;
      const cap = ok ? req.maxBytes : (req.maxErrorBytes ?? DEFAULT_MAX_ERROR_BYTES);
      const head = {
        status,
        statusMessage: res.statusMessage ?? '',
        headers: res.headers,
        challenges: res.headersDistinct['www-authenticate'] ?? [],
      };
      const encoding = res.headers['content-encoding'];
      if (ok && encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        // The bytes are hashed and verified as-is; a transformed body would only fail later, less clearly.
        finish(new GetFailure('protocol', `unexpected Content-Encoding ${JSON.stringify(encoding)}`));
        return;
      }
      const declared = res.headers['content-length'];
      if (declared !== undefined && Number(declared) > cap) {
        if (ok) finish(new GetFailure('too-large', `Content-Length ${declared} exceeds the limit of ${cap} bytes`));
        else finishWithout(res, head);
        return;
      }
      // One buffer, copied into: socket chunks are views of larger allocations, and keeping
      // them until a concat held several times the body (200 MB for a 63 MiB file).
      let body = Buffer.allocUnsafe(Math.min(declared !== undefined ? Number(declared) || 0 : 64 * 1024, cap));
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        if (received + chunk.length > cap) {
          received += chunk.length;
          if (ok) finish(new GetFailure('too-large', `more than ${cap} bytes (the limit) sent`));
          else finishWithout(res, head);
          return;
        }
        if (received + chunk.length > body.length) {
          const grown = Buffer.allocUnsafe(Math.min(cap, Math.max(2 * body.length, received + chunk.length)));
          body.copy(grown, 0, 0, received);
          body = grown;
        }
        chunk.copy(body, received);
        received += chunk.length;
      });
      res.on('end', () => {
        if (!settled) finish(undefined, { ...head, body: new Uint8Array(body.buffer, body.byteOffset, received) });
      });
      res.on('error', (e) => finish(classify(e)));
      res.on('close', () => {
        if (!res.complete) finish(new GetFailure('unreachable', `connection closed after ${received} bytes, before the response was complete`));
      });
    });
    request.end();

    // An error body too long to keep: report the status without it and drop the connection.
    function finishWithout(res: http.IncomingMessage, head: Omit<GetResponse, 'body'>) {
      if (settled) return;
      settled = true;
      req.signal.removeEventListener('abort', onAbort);
      res.destroy();
      request.destroy();
      resolve({ ...head, body: new Uint8Array(0) });
    }
  });
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  ECONNABORTED: 'connection aborted',
  EADDRNOTAVAIL: 'address not available',
};

// OpenSSL's X509_V_ERR_* names as Node reports them in err.code.
const CERT_CODE = /^(?:ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|INVALID_CA$|PATH_LENGTH_EXCEEDED$|INVALID_PURPOSE$|HOSTNAME_MISMATCH$|ERROR_IN_CERT_)/;

// The certificate checks people meet, in words; others keep OpenSSL's own message.
const CERT_WORDS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'is not issued by a CA trusted here',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'is not issued by a CA trusted here',
  UNABLE_TO_GET_ISSUER_CERT: 'is not issued by a CA trusted here',
  SELF_SIGNED_CERT_IN_CHAIN: 'chains to a self-signed CA not trusted here',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'is self-signed and not trusted here',
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'is not issued for this host name',
  CERT_SIGNATURE_FAILURE: 'has a signature that does not verify',
};

/**
 * Which certificate a server presents ("CN=notary.example.com (issued by CN=Example CA)"),
 * for the message after a failed handshake: Node drops the peer certificate with the
 * rejected socket, so this looks again without verifying. Nothing read here is trusted or
 * used beyond the message; undefined when the server cannot be asked within `timeoutMs`.
 */
export function presentedCertificate(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socket = tls.connect({
      host,
      port: Number(url.port || 443),
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
      // Only to read the certificate for the message; the connection carries no request.
      rejectUnauthorized: false,
    });
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      socket.destroy();
      resolve(v);
    };
    const stop = () => done(undefined);
    const timer = setTimeout(stop, timeoutMs);
    signal?.addEventListener('abort', stop, { once: true });
    socket.once('error', () => done(undefined));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const name = (n: object | undefined) => (n ? Object.entries(n).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '?');
      done(cert && cert.subject ? `${name(cert.subject)} (issued by ${name(cert.issuer)})` : undefined);
    });
  });
}

/** Node/OpenSSL error -> kind plus a sentence keeping the library's own reason. */
export function classify(e: unknown, certificate?: string): GetFailure {
  const err = e as NodeJS.ErrnoException & { reason?: string; library?: string };
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = err instanceof Error ? err.message : String(e);
  // EPROTO carries OpenSSL handshake failures (wrong version number: not a TLS port, alerts).
  if (CERT_CODE.test(code) || err?.library === 'SSL routines' || code === 'EPROTO' || /SSL routines/.test(message)) {
    const words = CERT_WORDS[code];
    if (words) return new GetFailure('tls', `TLS failure: the server's certificate ${certificate ? `${certificate} ` : ''}${words}`);
    return new GetFailure('tls', `TLS failure: ${message}${code ? ` (${code})` : ''}${certificate ? `; the server presented ${certificate}` : ''}`);
  }
  if (code.startsWith('HPE_')) return new GetFailure('protocol', `malformed HTTP response: ${message} (${code})`);
  const friendly = NETWORK_CODES[code];
  if (friendly) return new GetFailure('unreachable', `${friendly}: ${message}`);
  return new GetFailure('unreachable', `request failed: ${message}${code ? ` (${code})` : ''}`);
}
