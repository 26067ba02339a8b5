// Certificate hot reload: new connections get the new pair, existing keep-alive connections
// keep working, a mismatched pair is refused, and a Kubernetes Secret volume's symlink
// swap is picked up.
import { expect } from 'chai';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { startServer, type RunningServer } from '../../webhook/src/server/start.js';
import { generateSelfSigned, type SelfSigned } from '../../webhook/src/server/tls.js';
import { call, type Reply } from '../fixtures/admission/https-client.js';
import { captureLogger, TableVerifier } from '../fixtures/admission/support.js';

/** Polls with fresh connections until the served certificate is `fingerprint` (bounded, not timed). */
async function waitForCert(port: number, fingerprint: string): Promise<Reply> {
  let last: Reply | undefined;
  for (let i = 0; i < 400; i++) {
    last = await call({ port, path: '/healthz' });
    if (last.fingerprint === fingerprint) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`server still serves ${last?.fingerprint}, expected ${fingerprint}`);
}

describe('server: TLS certificate hot reload', function () {
  let pairs: SelfSigned[] = [];
  let dir: string;
  let server: RunningServer | undefined;
  const log = captureLogger();

  before(async () => {
    pairs = [await generateSelfSigned(), await generateSelfSigned()];
    expect(pairs[0]!.fingerprint).not.to.equal(pairs[1]!.fingerprint);
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustgate-reload-'));
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  after(() => {
    for (const p of pairs) rmSync(p.dir, { recursive: true, force: true });
  });

  function start(certFile: string, keyFile: string) {
    const verifier = new TableVerifier();
    return startServer({
      port: 0,
      host: '127.0.0.1',
      tlsCertFile: certFile,
      tlsKeyFile: keyFile,
      tlsPollMs: 100,
      handlers: { mutate: createAdmissionHandler({ verifier, mutate: true }), validate: createAdmissionHandler({ verifier, mutate: false }) },
      ready: () => true,
      log,
    });
  }

  it('serves a new pair to new connections while an open keep-alive connection keeps working', async () => {
    const [one, two] = pairs as [SelfSigned, SelfSigned];
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    copyFileSync(one.certFile, cert);
    copyFileSync(one.keyFile, key);
    server = await start(cert, key);
    expect(server.selfSigned).to.equal(false);

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await call({ port: server.port, path: '/healthz', agent });
      expect(before.fingerprint).to.equal(one.fingerprint);

      // Written one file at a time, as a careless tool would: briefly a mismatched pair.
      writeFileSync(cert, readFileSync(two.certFile));
      writeFileSync(key, readFileSync(two.keyFile));
      const fresh = await waitForCert(server.port, two.fingerprint);
      expect(fresh.status).to.equal(200);
      expect(server.fingerprint()).to.equal(two.fingerprint);

      const again = await call({ port: server.port, path: '/healthz', agent });
      expect(again.status).to.equal(200);
      expect(again.reusedSocket).to.equal(true);
      expect(again.localPort).to.equal(before.localPort);
      expect(again.fingerprint).to.equal(one.fingerprint);
    } finally {
      agent.destroy();
    }
  });

  it('refuses a certificate whose key does not match and keeps serving the current pair', async () => {
    const [one, two] = pairs as [SelfSigned, SelfSigned];
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    copyFileSync(one.certFile, cert);
    copyFileSync(one.keyFile, key);
    server = await start(cert, key);

    writeFileSync(cert, readFileSync(two.certFile));
    expect(await server.reloadTls()).to.equal(false);
    expect((await call({ port: server.port, path: '/healthz' })).fingerprint).to.equal(one.fingerprint);
    expect(log.lines.some((l) => l.msg === 'new certificate files refused; keeping the current pair' && String(l.fields['reason']).includes('cannot be used with'))).to.equal(true);

    writeFileSync(key, 'not a key');
    expect(await server.reloadTls()).to.equal(false);
    expect((await call({ port: server.port, path: '/healthz' })).fingerprint).to.equal(one.fingerprint);
  });

  it('follows a Secret volume update (the ..data symlink swapped atomically)', async () => {
    const [one, two] = pairs as [SelfSigned, SelfSigned];
    const v1 = join(dir, '..2026_11_22_21_00_00.000000001');
    const v2 = join(dir, '..2026_11_22_21_05_00.000000002');
    for (const [d, p] of [[v1, one], [v2, two]] as const) {
      mkdirSync(d);
      copyFileSync(p.certFile, join(d, 'tls.crt'));
      copyFileSync(p.keyFile, join(d, 'tls.key'));
    }
    symlinkSync('..2026_11_22_21_00_00.000000001', join(dir, '..data'));
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
    server = await start(join(dir, 'tls.crt'), join(dir, 'tls.key'));
    expect((await call({ port: server.port, path: '/healthz' })).fingerprint).to.equal(one.fingerprint);

    // What the kubelet does: a new ..data_tmp link renamed over ..data.
    symlinkSync('..2026_11_22_21_05_00.000000002', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await waitForCert(server.port, two.fingerprint);
  });

  it('refuses to start with only one of --tls-cert/--tls-key, or with unreadable files', async () => {
    const verifier = new TableVerifier();
    const handlers = { mutate: createAdmissionHandler({ verifier, mutate: true }), validate: createAdmissionHandler({ verifier, mutate: false }) };
    const err1 = await startServer({ port: 0, host: '127.0.0.1', tlsCertFile: pairs[0]!.certFile, handlers, ready: () => true }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err1?.message).to.match(/give both or neither/);
    const err2 = await startServer({ port: 0, host: '127.0.0.1', tlsCertFile: join(dir, 'missing.crt'), tlsKeyFile: pairs[0]!.keyFile, handlers, ready: () => true }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err2?.message).to.match(/ENOENT/);
  });
});
