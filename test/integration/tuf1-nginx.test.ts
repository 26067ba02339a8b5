// A TUF 1.0 repository (built by @tufjs/models) published as static files and served over
// HTTPS by a real nginx: the client workflow as a deployment would run it.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { refreshSpecRepository } from '../../webhook/src/tufrepo/updater.js';
import { SpecHttpSource } from '../../webhook/src/tufrepo/http-source.js';
import { SpecDirSource } from '../../webhook/src/tufrepo/dir-source.js';
import { FetchError } from '../../webhook/src/tufrepo/source.js';
import { TufRepo } from '../support/tuf1-repo.js';
import { startStaticServer, type StaticServer } from '../support/static-server.js';
import { pidAlive } from '../support/stack.js';

const APP = 'registry.example.com/payments/app:1.0';

function writeRepo(dir: string, files: Map<string, Buffer>): void {
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
}

describe('TUF 1.0 repository served by nginx', function () {
  this.timeout(60_000);
  let dir: string;
  let server: StaticServer;
  let repo: TufRepo;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustgate-tuf1-'));
    repo = new TufRepo({ kinds: { root: 'ecdsa-p256', timestamp: 'ed25519', snapshot: 'ecdsa-p384', targets: 'rsa' } });
    repo.delegate('payments', { paths: ['registry.example.com/payments/*'], kind: 'ecdsa-p256' });
    repo.addTarget('payments', APP, '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
    writeRepo(dir, repo.publish({ hashes: true }));
    server = await startStaticServer(dir);
  });

  after(async () => {
    await server?.stop();
    expect(pidAlive(server.pid)).to.equal(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refreshes over HTTPS with the repository CA and finds the image target in its delegation', async () => {
    const source = new SpecHttpSource({ url: server.url, caBundle: server.ca.certPem });
    try {
      const r = await refreshSpecRepository(source, { bootstrap: { trustedRoot: repo.roots.get(1)! }, now: new Date() });
      const found = await r.findTarget(APP);
      expect(found?.role).to.equal('payments');
      expect(found?.target.length).to.equal(repo.targets.get('payments')!.signed.targets[APP]!.length);
    } finally {
      source.close();
    }
  });

  it('refuses the server when its certificate is not issued by the given CA, naming TLS as the cause', async () => {
    const source = new SpecHttpSource({ url: server.url });
    try {
      let err: unknown;
      await refreshSpecRepository(source, { bootstrap: { trustedRoot: repo.roots.get(1)! }, now: new Date() }).catch((e) => (err = e));
      expect(err).to.be.instanceOf(FetchError);
      expect((err as FetchError).kind).to.equal('tls');
      expect((err as FetchError).message).to.contain(server.url);
    } finally {
      source.close();
    }
  });

  it('reads the same repository from a directory (air-gapped), unversioned names included', async () => {
    const offline = mkdtempSync(join(tmpdir(), 'trustgate-tuf1-dir-'));
    try {
      const files = repo.publish({ hashes: true });
      // An export that kept only the unversioned names of the top-level roles.
      for (const [name, bytes] of files) writeFileSync(join(offline, name.replace(/^\d+\.(snapshot|targets)\.json$/, '$1.json')), bytes);
      const r = await refreshSpecRepository(new SpecDirSource(offline), { bootstrap: { trustedRoot: repo.roots.get(1)! }, now: new Date() });
      expect((await r.findTarget(APP))?.role).to.equal('payments');
    } finally {
      rmSync(offline, { recursive: true, force: true });
    }
  });
});
