// Graceful shutdown of the real `trustgate serve` process: on SIGTERM /readyz fails at once,
// admissions are still answered through the drain period, then the port closes while a
// request in flight still gets its answer, and the process exits 0.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { call, postJson } from '../fixtures/admission/https-client.js';
import { fixture } from '../fixtures/admission/support.js';

const MAIN = fileURLToPath(new URL('../../webhook/src/cli/main.js', import.meta.url));

function podWith(image: string): unknown {
  const review = fixture('pod-create.json') as { request: { object: { spec: Record<string, unknown> } } };
  const spec = review.request.object.spec;
  spec['containers'] = [{ ...(spec['containers'] as object[])[0], image }];
  delete spec['initContainers'];
  return review;
}

describe('serve: graceful shutdown on SIGTERM (real process)', function () {
  this.timeout(30_000);
  let dir: string;
  let trust: Server;
  let proc: ChildProcess | undefined;
  const held: Array<() => void> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tg-shutdown-'));
    // A trust server that answers only when the test says so: a verification in flight.
    trust = createServer((_req, res) => held.push(() => res.writeHead(404).end('{}')));
    await new Promise<void>((r) => trust.listen(0, '127.0.0.1', r));
    const rootPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(
      join(dir, 'slow.yaml'),
      [
        'apiVersion: trustgate.dev/v1alpha1',
        'kind: ClusterTrustPolicy',
        'metadata: {name: slow}',
        'spec:',
        '  images: ["registry.example/slow/**"]',
        `  trustServer: {url: "http://127.0.0.1:${(trust.address() as AddressInfo).port}"}`,
        '  root:',
        '    keys:',
        '      - |',
        ...rootPem.trim().split('\n').map((l) => `        ${l}`),
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    for (const h of held.splice(0)) h();
    await new Promise<void>((r) => trust.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails /readyz, keeps answering /mutate for the drain period, finishes the request in flight, exits 0', async () => {
    proc = spawn(process.execPath, [MAIN, 'serve', '--policy-dir', dir, '--port', '0', '--host', '127.0.0.1', '--drain-seconds', '1.5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc!.once('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /serving on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearInterval(t);
          resolve(Number(m[1]));
        }
      }, 20);
      void exited.then((code) => reject(new Error(`serve exited with ${code}: ${out}`)));
    });
    expect((await call({ port, path: '/readyz' })).status).to.equal(200);

    proc.kill('SIGTERM');
    const sigtermAt = Date.now();
    let readyz = await call({ port, path: '/readyz' });
    while (readyz.status === 200 && Date.now() - sigtermAt < 1000) readyz = await call({ port, path: '/readyz' });
    expect(readyz.status).to.equal(503);
    expect(readyz.body).to.contain('shutting down');

    // Still answering admissions, and asking the caller to reconnect (to a replica that stays).
    const during = await postJson(port, '/mutate', podWith('registry.example/unmatched/app:1'));
    expect(during.status).to.equal(200);
    expect(JSON.parse(during.body).response.allowed).to.equal(false);
    expect(during.headers['connection']).to.equal('close');
    expect(Date.now() - sigtermAt).to.be.lessThan(1500);

    // A verification that is still waiting on its trust server when the drain ends.
    const inFlight = postJson(port, '/mutate', podWith('registry.example/slow/app:1'));
    while (held.length === 0) await new Promise((r) => setTimeout(r, 20));
    // After the drain: the port no longer takes connections, and the process has not exited.
    await new Promise((r) => setTimeout(r, Math.max(0, sigtermAt + 1800 - Date.now())));
    const refused = await call({ port, path: '/healthz' }).then(() => 'answered', (e: NodeJS.ErrnoException) => e.code);
    expect(refused).to.equal('ECONNREFUSED');
    expect(proc.exitCode).to.equal(null);

    for (const h of held.splice(0)) h();
    const answer = await inFlight;
    expect(answer.status).to.equal(200);
    const review = JSON.parse(answer.body).response;
    expect(review.allowed).to.equal(false);
    expect(review.status.message).to.contain('registry.example/slow/app:1');
    expect(await exited).to.equal(0);
    expect(out).to.contain('"msg":"stopped"');
  });
});
