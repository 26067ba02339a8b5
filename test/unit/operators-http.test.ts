// The metrics port of its own (plain HTTP, GET /metrics only) through `runServe`, and the
// log line for every request the webhook refuses (400, 413, 415) with its reason.
import { expect } from 'chai';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runServe } from '../../webhook/src/cli/serve.js';
import { postJson, call } from '../fixtures/admission/https-client.js';
import { captureLogger, fixtureText, TableVerifier } from '../fixtures/admission/support.js';

function httpGet(port: number, path: string): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    })
      .on('error', reject)
      .end();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('operators: metrics port and refused requests', () => {
  const log = captureLogger();
  let handle: Awaited<ReturnType<typeof runServe>>;

  before(async () => {
    const port = await freePort();
    handle = await runServe(['--policy-dir', '/unused', '--port', '0', '--host', '127.0.0.1', '--metrics-port', String(port)], {
      createVerifier: () => ({ verifier: new TableVerifier(), ready: () => true }),
      log,
      print: () => {},
    });
    expect(handle.metricsPort).to.equal(port);
  });
  after(async () => {
    await handle?.close();
  });

  it('serves /metrics over plain HTTP on --metrics-port, with build info, and nothing else there', async () => {
    expect(handle.metricsPort).to.be.a('number');
    const r = await httpGet(handle.metricsPort!, '/metrics');
    expect(r.status).to.equal(200);
    expect(r.type).to.match(/^text\/plain; version=0\.0\.4/);
    expect(r.body).to.match(/\ntrustgate_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+[^"]*"\} 1\n/);
    expect((await httpGet(handle.metricsPort!, '/mutate')).status).to.equal(404);
  });

  it('logs each refused request at warn with its code and reason', async () => {
    const cert = handle.server.certFile;
    const { readFileSync } = await import('node:fs');
    const ca = readFileSync(cert);
    await call({ port: handle.port, path: '/mutate', method: 'POST', body: fixtureText('pod-create.json'), headers: { 'content-type': 'text/plain' }, ca });
    await postJson(handle.port, '/mutate', '{"apiVersion": ', { ca });
    await postJson(handle.port, '/validate', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }, { ca });
    const refused = log.lines.filter((l) => l.msg === 'request refused');
    expect(refused.map((l) => [l.level, l.fields['code']])).to.deep.equal([
      ['warn', 415],
      ['warn', 400],
      ['warn', 400],
    ]);
    expect(refused[0]!.fields['reason']).to.equal('Content-Type must be application/json, got text/plain');
    expect(refused[1]!.fields['reason']).to.match(/^malformed JSON: /);
    expect(refused[2]!.fields['reason']).to.match(/request\.uid/);
  });
});
