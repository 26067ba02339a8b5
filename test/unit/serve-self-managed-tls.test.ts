// `trustgate serve --kubernetes --tls-secret` as the chart runs it, as a real process: it
// creates the Secret, sets caBundle on both webhook configurations with nothing but the
// chart's RBAC, and serves a certificate that the caBundle verifies for the Service name.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { FakeKubeObjects, type Rule } from '../support/fake-kube-objects.js';

const MAIN = fileURLToPath(new URL('../../webhook/src/cli/main.js', import.meta.url));
const NS = 'trust-ops';
const SERVICE = `trustgate.${NS}.svc`;

const CHART_RULES: Rule[] = [
  { resource: 'secrets', verbs: ['create'] },
  { resource: 'secrets', verbs: ['get', 'update', 'patch'], resourceNames: ['trustgate-tls'] },
  { resource: 'mutatingwebhookconfigurations', verbs: ['get', 'update', 'patch'], resourceNames: ['trustgate'] },
  { resource: 'validatingwebhookconfigurations', verbs: ['get', 'update', 'patch'], resourceNames: ['trustgate'] },
];

function get(port: number, path: string, ca: string): Promise<{ status: number; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, servername: SERVICE, ca, rejectUnauthorized: true, agent: false }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serve --tls-secret (real process, self-managed TLS)', function () {
  this.timeout(30_000);
  let api: FakeApiServer;
  let kube: FakeKubeObjects;
  let dir: string;
  let proc: ChildProcess | undefined;

  before(async () => {
    api = await FakeApiServer.start();
    kube = await FakeKubeObjects.start();
    kube.fallback = { url: api.url, token: api.token };
    kube.rules = CHART_RULES;
    for (const r of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'] as const) {
      kube.put(r, {
        metadata: { name: 'trustgate' },
        webhooks: [{ name: `${r.slice(0, 6)}.trustgate.dev`, sideEffects: 'None', admissionReviewVersions: ['v1'], clientConfig: { service: { name: 'trustgate', namespace: NS, path: '/mutate' } } }],
      });
    }
    dir = mkdtempSync(join(tmpdir(), 'tg-selfmanaged-'));
    const cluster = kube.kubeConfig().getCurrentCluster()!;
    writeFileSync(
      join(dir, 'kubeconfig'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'fake', cluster: { server: cluster.server, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'trustgate', user: { token: kube.token } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'trustgate' } }],
        'current-context': 'fake',
      }),
    );
  });

  after(async () => {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    await kube.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the Secret, injects the caBundle into both configurations, serves the pair, drains and exits 0 on SIGTERM', async () => {
    proc = spawn(
      process.execPath,
      [MAIN, 'serve', '--kubernetes', '--port', '0', '--host', '127.0.0.1', '--tls-secret', 'trustgate-tls', '--tls-dns-name', SERVICE,
        '--mutating-webhook', 'trustgate', '--validating-webhook', 'trustgate', '--drain-seconds', '0.5'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), POD_NAMESPACE: NS } },
    );
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc!.once('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /serving on https:\/\/127\.0\.0\.1:(\d+) with secret trust-ops\/trustgate-tls/.exec(out);
        if (m) {
          clearInterval(t);
          resolve(Number(m[1]));
        }
      }, 20);
      void exited.then((code) => reject(new Error(`serve exited with ${code}: ${out}`)));
      setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 15_000).unref();
    });

    const data = kube.get('secrets', 'trustgate-tls', NS)!['data'] as Record<string, string>;
    const caPem = Buffer.from(data['ca.crt']!, 'base64').toString();
    const bundles = (['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'] as const).map(
      (r) => (kube.get(r, 'trustgate')!['webhooks'] as Array<{ clientConfig: { caBundle?: string } }>)[0]!.clientConfig.caBundle,
    );
    expect(bundles).to.deep.equal([data['ca.crt'], data['ca.crt']]);

    // The API server's view: trust the caBundle, check the Service name.
    let ready = await get(port, '/readyz', caPem);
    for (let i = 0; ready.status !== 200 && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      ready = await get(port, '/readyz', caPem);
    }
    expect(ready.status).to.equal(200);
    const { X509Certificate } = await import('node:crypto');
    expect(ready.fingerprint).to.equal(new X509Certificate(Buffer.from(data['tls.crt']!, 'base64')).fingerprint256);

    proc.kill('SIGTERM');
    expect(await exited).to.equal(0);
    expect(out).to.contain('self-managed TLS: issued a new CA and serving certificate');
  });
});
