// The throughput baselines: HTTPS servers that parse the same AdmissionReview as the webhook
// (same TLS settings and certificate) and answer a fixed allow.
//
//   express (the baseline): express with the same JSON body parser and limit, so
//     whatever the webhook is slower than this is trustgate's own cost;
//   bare: node:https alone, reading the body and JSON.parse - the floor of any Node webhook
//     on this machine, for reading latency figures.
//
//   node baseline-server.js CERT KEY [express|bare]   -> prints "baseline serving on port N"
import express from 'express';
import { readFileSync } from 'node:fs';
import { createServer, type ServerOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TLS_SETTINGS } from '../../webhook/src/server/tls.js';
import { DEFAULT_BODY_LIMIT } from '../../webhook/src/server/app.js';

const [certFile, keyFile, kind = 'express'] = process.argv.slice(2);
if (!certFile || !keyFile || (kind !== 'express' && kind !== 'bare')) throw new Error('usage: baseline-server.js CERT KEY [express|bare]');

const allow = (uid: unknown) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } });

function expressApp() {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post('/mutate', express.json({ limit: DEFAULT_BODY_LIMIT, strict: true, type: () => true }), (req, res) => {
    res.status(200).json(allow((req.body as { request?: { uid?: unknown } })?.request?.uid));
  });
  return app;
}

function bare(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: { uid?: unknown } };
    const body = JSON.stringify(allow(review.request?.uid));
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
}

const options: ServerOptions = { ...TLS_SETTINGS, cert: readFileSync(certFile), key: readFileSync(keyFile) };
const server = createServer(options, kind === 'bare' ? bare : expressApp());
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`baseline serving on port ${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
