// The throughput baseline: a bare express HTTPS server that parses the same AdmissionReview
// as the webhook (same body parser, same limit, same TLS settings and certificate) and
// answers a fixed allow. Whatever the webhook is slower than this is trustgate's own cost.
//
//   node baseline-server.js CERT KEY   -> prints "baseline serving on port N"
import express from 'express';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { TLS_SETTINGS } from '../../webhook/src/server/tls.js';
import { DEFAULT_BODY_LIMIT } from '../../webhook/src/server/app.js';

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) throw new Error('usage: baseline-server.js CERT KEY');

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.post('/mutate', express.json({ limit: DEFAULT_BODY_LIMIT, strict: true, type: () => true }), (req, res) => {
  const uid = (req.body as { request?: { uid?: unknown } })?.request?.uid;
  res.status(200).json({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } });
});

const server = createServer({ ...TLS_SETTINGS, cert: readFileSync(certFile), key: readFileSync(keyFile) }, app);
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`baseline serving on port ${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
