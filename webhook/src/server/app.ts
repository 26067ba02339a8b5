// The HTTP surface: the admission endpoints (Pods and workloads; trustgate's own policies),
// health, readiness and metrics. Transport-level
// problems (wrong content type, bad JSON, a body too large, a review without a uid) are
// HTTP errors with a reason; the API server then applies the webhook's failurePolicy.
//
// The admission endpoints carry every pod the cluster creates, so they skip express: its
// router and response helpers cost more server CPU than verifying a warm Pod does (the
// benchmark's bare express baseline spends ~2/3 of its time there). They still read the
// body with express's own JSON parser; the rare routes go through express.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { AdmissionHandler } from '../admission/handler.js';
import { createPolicyHandler } from '../admission/policy-handler.js';
import { ReviewError } from '../admission/review.js';
import { silentLogger, type Logger } from '../admission/types.js';
import type { Metrics } from './metrics.js';

/** Object plus oldObject of the largest object etcd stores (1.5 MiB) fits. */
export const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;

export interface AppOptions {
  handlers: { mutate: AdmissionHandler; validate: AdmissionHandler };
  /** True once policies are loaded; /readyz reports it. */
  ready: () => boolean;
  /**
   * True once the replica is shutting down: /readyz fails so it leaves the Service, and
   * admission answers ask the client to close the connection, so the API server's next
   * call opens one to a replica that stays.
   */
  draining?: () => boolean;
  log?: Logger;
  metrics?: Metrics;
  bodyLimitBytes?: number;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** application/json with any parameters (charset), as the API server sends it. */
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;

/** Where the chart's policy webhook (TrustPolicy, ClusterTrustPolicy) sends its reviews. */
export const POLICY_WEBHOOK_PATH = '/validate-policy';

const KNOWN_PATHS = new Set(['/mutate', '/validate', POLICY_WEBHOOK_PATH, '/healthz', '/readyz', '/metrics']);

type BodyError = { status?: number; type?: string; message?: string };

export function createApp(opts: AppOptions): RequestListener {
  const log = opts.log ?? silentLogger;
  const limit = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const metrics = opts.metrics;
  const parseJson = express.json({ limit, strict: true, type: () => true }) as unknown as (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
  const admission = new Map<string, AdmissionHandler>([
    ['/mutate', opts.handlers.mutate],
    ['/validate', opts.handlers.validate],
    // Needs nothing but the CRDs, so every server has it and no caller can forget it.
    [POLICY_WEBHOOK_PATH, createPolicyHandler({ log, ...(metrics ? { metrics } : {}) })],
  ]);
  const rest = otherRoutes(opts, log);

  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const handler = req.method === 'POST' ? admission.get(path) : undefined;
    if (!handler) return void rest(req, res);

    const answer = (code: number, value: unknown) => {
      if (opts.draining?.() === true) res.setHeader('Connection', 'close');
      send(res, code, value);
      metrics?.httpRequest(path, res.statusCode);
    };
    // The API server applies the failurePolicy to a refused call and says little about why: the reason is logged here.
    const refuse = (code: number, reason: string) => {
      log.warn('request refused', { path, code, reason, contentType: req.headers['content-type'], contentLength: req.headers['content-length'] });
      answer(code, { error: reason });
    };
    const type = req.headers['content-type'];
    if (type === undefined || !JSON_TYPE.test(type)) {
      // Read off the body, so the connection can carry the next request.
      req.resume();
      return refuse(415, `Content-Type must be application/json, got ${type ?? 'none'}`);
    }
    parseJson(req, res, (err) => {
      if (err !== undefined) {
        const refused = bodyRefusal(err as BodyError, limit);
        if (refused) return refuse(refused.code, refused.reason);
        log.error('request failed', { path, error: (err as Error)?.stack ?? String(err) });
        return answer(500, { error: 'internal error' });
      }
      const body = (req as IncomingMessage & { body?: unknown }).body;
      if (body === undefined) return refuse(400, 'empty body: expected an AdmissionReview');
      const timeout = q < 0 ? undefined : new URLSearchParams(url.slice(q + 1)).get('timeout');
      handler(body, connectionClosed(req.socket), budgetFor(timeout ?? undefined)).then(
        (out) => answer(200, out),
        (e: unknown) => {
          if (e instanceof ReviewError) return refuse(400, e.message);
          log.error('admission handler failed', { path, error: (e as Error)?.stack ?? String(e) });
          answer(500, { error: 'internal error while reviewing the request' });
        },
      );
    });
  };
}

const closedSignals = new WeakMap<Socket, AbortSignal>();

/**
 * Aborts when the connection closes. The API server gives up on a webhook call (its
 * timeoutSeconds) by closing the connection, and HTTP/1.1 carries one call at a time, so
 * one signal per connection serves all its calls; one per call would cost more than a
 * warm verification.
 */
function connectionClosed(socket: Socket): AbortSignal {
  let signal = closedSignals.get(socket);
  if (!signal) {
    const controller = new AbortController();
    socket.once('close', () => controller.abort(new Error('client went away')));
    signal = controller.signal;
    closedSignals.set(socket, signal);
  }
  return signal;
}

/** Health, readiness, metrics and the 404s: express, since nothing here is hot. */
function otherRoutes(opts: AppOptions, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    res.on('finish', () => opts.metrics?.httpRequest(KNOWN_PATHS.has(req.path) ? req.path : 'other', res.statusCode));
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });

  app.get('/readyz', (_req, res) => {
    if (opts.draining?.() === true) {
      res.status(503).type('text/plain').send('not ready: shutting down\n');
      return;
    }
    let ready = false;
    try {
      ready = opts.ready() === true;
    } catch (e) {
      log.warn('readiness check failed', { error: (e as Error).message });
    }
    res.status(ready ? 200 : 503).type('text/plain').send(ready ? 'ok\n' : 'not ready: policies not loaded\n');
  });

  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4; charset=utf-8').send(opts.metrics?.render() ?? '');
  });

  app.use((req: Request, res: Response) => {
    send(res, 404, { error: `no route for ${req.method} ${req.path}` });
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    log.error('request failed', { path: req.path, error: (err as Error)?.stack ?? String(err) });
    send(res, 500, { error: 'internal error' });
  });
  return app;
}

/** Body-parser errors carry an HTTP status and a type: the client's mistake, said back. Anything else is ours (500). */
function bodyRefusal(e: BodyError, limit: number): { code: number; reason: string } | undefined {
  if (e.type === 'entity.parse.failed') return { code: 400, reason: `malformed JSON: ${e.message}` };
  if (e.type === 'entity.too.large') return { code: 413, reason: `request body larger than ${limit} bytes` };
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return { code: 415, reason: e.message ?? 'unsupported encoding' };
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return { code: e.status, reason: e.message ?? 'bad request' };
  return undefined;
}

/** Never throws: it runs in promise callbacks, where a throw would take the process down. */
function send(res: ServerResponse, code: number, value: unknown): void {
  if (res.headersSent || res.destroyed) return;
  let body: string;
  try {
    body = JSON.stringify(value);
  } catch {
    code = 500;
    body = '{"error":"internal error: the answer could not be serialised"}';
  }
  res.writeHead(code, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The API server appends ?timeout=<its timeoutSeconds> (a Go duration) to webhook calls.
 * Answering inside it, with room for the trip back, beats a configured deadline that an
 * admin's shorter timeoutSeconds would make moot (the call would just fail).
 */
export function budgetFor(timeout: unknown): { deadlineMs?: number } {
  if (typeof timeout !== 'string') return {};
  const ms = parseGoDuration(timeout);
  if (ms === undefined || ms <= 0) return {};
  return { deadlineMs: Math.max(1, ms - Math.min(1000, ms * 0.2)) };
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, 'µs': 1e-3, ns: 1e-6 };

export function parseGoDuration(s: string): number | undefined {
  if (!/^(?:\d+(?:\.\d+)?(?:h|m|s|ms|us|µs|ns))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}
