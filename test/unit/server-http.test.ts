// The webhook end to end over HTTPS with a self-signed certificate: admission endpoints,
// transport errors, health, readiness and metrics.
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { startServer, type RunningServer } from '../../webhook/src/server/start.js';
import { budgetFor, parseGoDuration } from '../../webhook/src/server/app.js';
import { call, postJson } from '../fixtures/admission/https-client.js';
import { applyPatch, captureLogger, decodePatch, failed, failure, fixture, fixtureText, never, signed, TableVerifier } from '../fixtures/admission/support.js';

const SLOW = 'registry.example.com/slow/app:1';

describe('server: HTTPS end to end (self-signed)', function () {
  let server: RunningServer;
  let ca: Buffer;
  let ready = false;
  const metrics = new Metrics();
  const log = captureLogger();
  const verifier = new TableVerifier({ 'busybox:1.36': failed('busybox:1.36', failure('enforce', 'tag "1.36" is not signed')), [SLOW]: () => never() });

  before(async () => {
    server = await startServer({
      port: 0,
      host: '127.0.0.1',
      handlers: {
        mutate: createAdmissionHandler({ verifier, mutate: true, log, metrics }),
        validate: createAdmissionHandler({ verifier, mutate: false, log, metrics }),
      },
      ready: () => ready,
      log,
      metrics,
    });
    ca = readFileSync(server.certFile);
  });

  after(async () => {
    await server?.close();
  });

  it('serves a self-signed certificate for localhost and 127.0.0.1 that it reports', async () => {
    expect(server.selfSigned).to.equal(true);
    const cert = new X509Certificate(ca);
    expect(cert.subjectAltName).to.contain('DNS:localhost').and.contain('IP Address:127.0.0.1');
    expect(cert.fingerprint256).to.equal(server.fingerprint());
    // The client checks the chain against the printed certificate: no rejectUnauthorized tricks.
    const r = await call({ port: server.port, path: '/healthz', ca });
    expect(r.status).to.equal(200);
    expect(r.fingerprint).to.equal(server.fingerprint());
    expect(log.lines.some((l) => l.msg === 'generated a self-signed serving certificate' && l.fields['fingerprint'] === server.fingerprint())).to.equal(true);
  });

  it('POST /mutate answers a Pod CREATE with a patch that pins its images', async () => {
    const review = fixture('pod-create.json');
    const r = await call({ port: server.port, path: '/mutate', method: 'POST', body: fixtureText('pod-create.json'), headers: { 'content-type': 'application/json' }, ca });
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.match(/^application\/json/);
    const out = JSON.parse(r.body);
    expect(out).to.include({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(out.response.uid).to.equal(review.request.uid);
    expect(out.response.allowed).to.equal(true);
    const pod = applyPatch(review.request.object, decodePatch(out.response.patch));
    expect(pod.spec.containers[0].image).to.equal(signed('registry.example.com/payments/api:1.4.2').pinned);
  });

  it('POST /validate denies an unsigned debug container with 403 inside a 200 response', async () => {
    const r = await postJson(server.port, '/validate', fixture('pod-ephemeralcontainers.json'), { ca });
    expect(r.status).to.equal(200);
    const out = JSON.parse(r.body);
    expect(out.response.allowed).to.equal(false);
    expect(out.response.status.code).to.equal(403);
    expect(out.response.status.message).to.contain('ephemeralContainer "debugger-8xk2p" image "busybox:1.36"');
  });

  it("answers inside the API server's ?timeout= even when the configured deadline is longer", async () => {
    const review = fixture('pod-create-dryrun.json');
    review.request.object.spec.containers[0].image = SLOW;
    const r = await postJson(server.port, '/validate?timeout=100ms', review, { ca });
    expect(r.status).to.equal(200);
    const out = JSON.parse(r.body);
    expect(out.response.allowed).to.equal(false);
    expect(out.response.status.message).to.equal(`container "worker" image "${SLOW}": verification did not finish within 0.08s`);
  });

  it('stops verifying when the API server closes the connection (it gave up)', async () => {
    const review = fixture('pod-create-dryrun.json');
    review.request.uid = 'gone-0001';
    review.request.object.spec.containers[0].image = SLOW;
    const text = JSON.stringify(review);
    const before = verifier.calls.length;
    const req = request({
      host: '127.0.0.1',
      port: server.port,
      path: '/validate',
      method: 'POST',
      ca,
      servername: 'localhost',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) },
    });
    req.on('error', () => {});
    req.end(text);
    const slow = await until(() => verifier.calls.slice(before).find((c) => c.image === SLOW));
    expect(slow.signal.aborted).to.equal(false);
    req.destroy();
    await until(() => slow.signal.aborted || undefined);
    expect(String(slow.signal.reason)).to.contain('cancelled');
    // The admission is logged as denied, the process keeps serving.
    const line = await until(() => log.lines.find((l) => l.msg === 'admission' && l.fields['uid'] === 'gone-0001'));
    expect(line.fields['result']).to.equal('denied');
    expect(String(line.fields['message'])).to.contain('the request was cancelled before verification finished');
    expect((await call({ port: server.port, path: '/healthz', ca })).status).to.equal(200);
  });

  it('reads Go durations as the API server writes them', () => {
    expect(parseGoDuration('10s')).to.equal(10_000);
    expect(parseGoDuration('1m30s')).to.equal(90_000);
    expect(parseGoDuration('250ms')).to.equal(250);
    expect(parseGoDuration('10')).to.equal(undefined);
    expect(parseGoDuration('-1s')).to.equal(undefined);
    expect(budgetFor('10s')).to.deep.equal({ deadlineMs: 9000 });
    expect(budgetFor(['10s', '1s'])).to.deep.equal({});
  });

  it('answers malformed JSON with 400 and the parse error', async () => {
    const r = await postJson(server.port, '/mutate', '{"apiVersion": "admission.k8s.io/v1", ', { ca });
    expect(r.status).to.equal(400);
    expect(JSON.parse(r.body).error).to.match(/^malformed JSON: /);
  });

  it('answers JSON that is not an object or list with 400', async () => {
    const r = await postJson(server.port, '/mutate', '"AdmissionReview"', { ca });
    expect(r.status).to.equal(400);
    expect(JSON.parse(r.body).error).to.match(/malformed JSON/);
  });

  it('answers a review without uid with 400 and the reason', async () => {
    const review = fixture('pod-create.json');
    delete review.request.uid;
    const r = await postJson(server.port, '/validate', review, { ca });
    expect(r.status).to.equal(400);
    expect(JSON.parse(r.body).error).to.equal('request.uid must be a non-empty string, got nothing');
  });

  it('answers a wrong content type with 415', async () => {
    const r = await call({ port: server.port, path: '/mutate', method: 'POST', body: fixtureText('pod-create.json'), headers: { 'content-type': 'text/plain' }, ca });
    expect(r.status).to.equal(415);
    expect(JSON.parse(r.body).error).to.equal('Content-Type must be application/json, got text/plain');
  });

  it('answers a body over 3 MiB with 413 without parsing it', async () => {
    const review = fixture('pod-create.json');
    review.request.object.metadata.annotations.padding = 'x'.repeat(3 * 1024 * 1024);
    const r = await postJson(server.port, '/mutate', review, { ca });
    expect(r.status).to.equal(413);
    expect(JSON.parse(r.body).error).to.equal(`request body larger than ${3 * 1024 * 1024} bytes`);
  });

  it('accepts a review just under the limit (object + oldObject of a big Pod)', async () => {
    const review = fixture('pod-update.json');
    review.request.oldObject.metadata.annotations.padding = 'x'.repeat(1400 * 1024);
    review.request.object.metadata.annotations.padding = 'x'.repeat(1400 * 1024);
    const r = await postJson(server.port, '/validate', review, { ca });
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body).response.uid).to.equal(review.request.uid);
  });

  it('answers unknown paths and methods with 404', async () => {
    expect((await call({ port: server.port, path: '/nope', ca })).status).to.equal(404);
    expect((await call({ port: server.port, path: '/mutate', ca })).status).to.equal(404);
  });

  it('/healthz is 200 while the process lives; /readyz follows ready()', async () => {
    expect((await call({ port: server.port, path: '/healthz', ca })).status).to.equal(200);
    ready = false;
    const notReady = await call({ port: server.port, path: '/readyz', ca });
    expect(notReady.status).to.equal(503);
    expect(notReady.body).to.contain('not ready');
    ready = true;
    expect((await call({ port: server.port, path: '/readyz', ca })).status).to.equal(200);
  });

  it('/metrics shows admissions, verification durations and the engine counters in Prometheus text', async () => {
    metrics.cacheHit();
    metrics.cacheHit();
    metrics.cacheMiss();
    metrics.trustServerError('https://notary.example.com:4443', 'timeout');
    const r = await call({ port: server.port, path: '/metrics', ca });
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
    const lines = r.body.split('\n');
    expect(lines).to.include('trustgate_admissions_total{operation="CREATE",result="allowed",mode="none",webhook="mutate"} 1');
    expect(lines).to.include('trustgate_admissions_total{operation="UPDATE",result="denied",mode="enforce",webhook="validate"} 1');
    expect(lines).to.include('trustgate_admissions_total{operation="unknown",result="invalid",mode="none",webhook="validate"} 1');
    expect(lines).to.include('# TYPE trustgate_verification_duration_seconds histogram');
    // pod-create: 3 images; ephemeral: 1 new image; the slow one twice; the big update: 1 new image.
    expect(lines).to.include('trustgate_verification_duration_seconds_count 7');
    expect(lines).to.include('trustgate_verification_duration_seconds_bucket{le="+Inf"} 7');
    expect(lines).to.include('trustgate_cache_hits_total 2');
    expect(lines).to.include('trustgate_cache_misses_total 1');
    expect(lines).to.include('trustgate_trust_server_errors_total{server="https://notary.example.com:4443",kind="timeout"} 1');
    expect(lines).to.include('trustgate_http_requests_total{path="/mutate",code="413"} 1');
    // Every kind of answer is counted, the served ones and the refused ones alike.
    // Process memory as scraped now: a positive number of bytes under the usual names.
    for (const name of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes']) {
      expect(lines).to.include(`# TYPE ${name} gauge`);
      const value = lines.find((l) => l.startsWith(`${name} `));
      expect(Number(value?.split(' ')[1]), name).to.be.greaterThan(0);
    }
    const http = lines.filter((l) => l.startsWith('trustgate_http_requests_total{'));
    for (const [path, code] of [['/mutate', 200], ['/mutate', 400], ['/mutate', 415], ['other', 404], ['/mutate', 404], ['/healthz', 200]] as const) {
      expect(http.some((l) => l.startsWith(`trustgate_http_requests_total{path="${path}",code="${code}"} `)), `${path} ${code} in ${http.join('; ')}`).to.equal(true);
    }
    // The ?timeout= one and the one whose client went away.
    expect(lines).to.include('trustgate_admissions_total{operation="CREATE",result="denied",mode="enforce",webhook="validate"} 2');
  });

  it('close() frees the port and removes the generated key', async () => {
    const { certFile, keyFile, port } = server;
    await server.close();
    expect(existsSync(keyFile)).to.equal(false);
    expect(existsSync(certFile)).to.equal(false);
    const err = await call({ port, path: '/healthz' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect((err as NodeJS.ErrnoException | undefined)?.code).to.equal('ECONNREFUSED');
  });
});

describe('server: handler failures', () => {
  it('answers 500 without details when a handler throws something unexpected, and logs it', async () => {
    const log = captureLogger();
    const boom = async () => {
      throw new TypeError('secret internals');
    };
    const server = await startServer({ port: 0, host: '127.0.0.1', handlers: { mutate: boom, validate: boom }, ready: () => true, log });
    try {
      const r = await postJson(server.port, '/validate', fixture('pod-create.json'));
      expect(r.status).to.equal(500);
      expect(r.body).not.to.contain('secret internals');
      expect(log.lines.some((l) => l.level === 'error' && String(l.fields['error']).includes('secret internals'))).to.equal(true);
    } finally {
      await server.close();
    }
  });

  it('answers 500 when the answer cannot be serialised, and keeps serving', async () => {
    const odd = async () => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'x', allowed: true, big: 1n } }) as never;
    const server = await startServer({ port: 0, host: '127.0.0.1', handlers: { mutate: odd, validate: odd }, ready: () => true });
    try {
      const r = await postJson(server.port, '/mutate', fixture('pod-create.json'));
      expect(r.status).to.equal(500);
      expect(JSON.parse(r.body).error).to.match(/could not be serialised/);
      expect((await call({ port: server.port, path: '/healthz' })).status).to.equal(200);
    } finally {
      await server.close();
    }
  });
});

async function until<T>(probe: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
