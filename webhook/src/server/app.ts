// The HTTP surface: two admission endpoints, health, readiness and metrics. Transport-level
// problems (wrong content type, bad JSON, a body too large, a review without a uid) are
// HTTP errors with a reason; the API server then applies the webhook's failurePolicy.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { AdmissionHandler } from '../admission/handler.js';
import { ReviewError } from '../admission/review.js';
import { silentLogger, type Logger } from '../admission/types.js';
import type { Metrics } from './metrics.js';

/** Object plus oldObject of the largest object etcd stores (1.5 MiB) fits. */
export const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;

export interface AppOptions {
  handlers: { mutate: AdmissionHandler; validate: AdmissionHandler };
  /** True once policies are loaded; /readyz reports it. */
  ready: () => boolean;
  log?: Logger;
  metrics?: Metrics;
  bodyLimitBytes?: number;
}

/** application/json with any parameters (charset), as the API server sends it. */
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;

const KNOWN_PATHS = new Set(['/mutate', '/validate', '/healthz', '/readyz', '/metrics']);

export function createApp(opts: AppOptions): express.Express {
  const log = opts.log ?? silentLogger;
  const limit = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    res.on('finish', () => opts.metrics?.httpRequest(KNOWN_PATHS.has(req.path) ? req.path : 'other', res.statusCode));
    next();
  });

  const json = express.json({ limit, strict: true, type: () => true });
  const requireJson = (req: Request, res: Response, next: NextFunction) => {
    const type = req.headers['content-type'];
    if (type === undefined || !JSON_TYPE.test(type)) {
      return void fail(res, 415, `Content-Type must be application/json, got ${type ?? 'none'}`);
    }
    next();
  };

  for (const [path, handler] of [['/mutate', opts.handlers.mutate], ['/validate', opts.handlers.validate]] as const) {
    app.post(path, requireJson, json, async (req: Request, res: Response) => {
      if (req.body === undefined) return void fail(res, 400, 'empty body: expected an AdmissionReview');
      // The API server gives up at its timeoutSeconds and closes the connection; stop working then.
      const controller = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) controller.abort(new Error('client went away'));
      });
      try {
        const out = await handler(req.body, controller.signal, budgetFor(req.query['timeout']));
        res.status(200).json(out);
      } catch (e) {
        if (e instanceof ReviewError) return void fail(res, 400, e.message);
        log.error('admission handler failed', { path, error: (e as Error)?.stack ?? String(e) });
        fail(res, 500, 'internal error while reviewing the request');
      }
    });
  }

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });

  app.get('/readyz', (_req, res) => {
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
    fail(res, 404, `no route for ${req.method} ${req.path}`);
  });

  // Body-parser errors carry an HTTP status and a type; anything else is ours.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string; message?: string; limit?: number };
    if (e.type === 'entity.parse.failed') return void fail(res, 400, `malformed JSON: ${e.message}`);
    if (e.type === 'entity.too.large') return void fail(res, 413, `request body larger than ${limit} bytes`);
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return void fail(res, 415, e.message ?? 'unsupported encoding');
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return void fail(res, e.status, e.message ?? 'bad request');
    log.error('request failed', { path: req.path, error: (err as Error)?.stack ?? String(err) });
    fail(res, 500, 'internal error');
  });

  return app;
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

function fail(res: Response, code: number, reason: string): void {
  if (res.headersSent) return;
  res.status(code).json({ error: reason });
}
