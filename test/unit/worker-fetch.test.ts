// A load that moves to a verification worker has its large files received by that worker:
// the GET runs there (the main thread still decides it: URL, token, limits), so the thread
// that answers admissions never receives, decrypts or collects a large body. And a load on
// the main thread stops before such a file instead of reading it first.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import { TrustServerLimits } from '../../webhook/src/notary/server-limits.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { budgetedSource, LoadWorkers, OverBudget } from '../../webhook/src/verify/load-workers.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { dict, manifest, RepoForge, sha256hex, type ForgedRepo } from '../support/forge.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const GUN = 'registry.test/team/big';

function forgeBig(fillers: number): ForgedRepo {
  const forge = new RepoForge({ now: NOW, gun: GUN, sharedKeys: true });
  const targets = forge.signed('targets/releases').targets;
  for (let i = 0; i < fillers; i++) {
    const h = Buffer.alloc(32);
    h.writeUInt32BE(i);
    targets[`filler-${i.toString().padStart(7, '0')}-${'x'.repeat(40)}`] = dict({ hashes: dict({ sha256: h.toString('base64') }), length: 1000 + i });
  }
  return forge.build();
}

/** A notary-server stand-in on 127.0.0.1 serving one repository by name and by hash. */
async function serve(repo: ForgedRepo, missing: (file: string) => boolean = () => false): Promise<{ url: string; close(): Promise<void> }> {
  const files = new Map<string, Buffer>();
  for (const [role, bytes] of repo.files) {
    files.set(`${role}.json`, bytes);
    files.set(`${role}.${sha256hex(bytes)}.json`, bytes);
  }
  const prefix = `/v2/${GUN}/_trust/tuf/`;
  const server = http.createServer((req, res) => {
    const file = req.url?.startsWith(prefix) ? req.url.slice(prefix.length) : '';
    const bytes = missing(file) ? undefined : files.get(file);
    if (!bytes) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"METADATA_NOT_FOUND","message":"not found"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An HttpSource that notes which files came to this thread and which stayed in a worker. */
function watched(url: string): { source: HttpSource; here: string[]; inWorker: string[] } {
  const source = new HttpSource({ url, gun: GUN });
  const here: string[] = [];
  const inWorker: string[] = [];
  const fetch = source.fetch.bind(source);
  const fetchHeld = source.fetchHeld.bind(source);
  source.fetch = async (req, signal) => {
    const bytes = await fetch(req, signal);
    here.push(req.role);
    return bytes;
  };
  source.fetchHeld = async (req, via, signal) => {
    const held = await fetchHeld(req, via, signal);
    inWorker.push(req.role);
    return held;
  };
  return { source, here, inWorker };
}

function policy(repo: ForgedRepo, url: string): TrustPolicy {
  return {
    kind: 'ClusterTrustPolicy',
    name: 'team',
    source: 'test',
    spec: { images: ['registry.test/team/**'], trustServer: { url }, root: { keys: repo.rootPems, threshold: 1 }, mode: 'enforce' },
  };
}

describe('fetches of loads verified in a worker', function () {
  this.timeout(60_000);
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  it('the large delegation is received by the worker and verified there; the main thread fetched only the small files', async () => {
    const repo = forgeBig(3000);
    expect(repo.get('targets/releases').length, 'larger than the budget below').to.be.greaterThan(256 * 1024);
    const server = await serve(repo);
    closers.push(server.close);
    const w = watched(server.url);
    const workers = new LoadWorkers();
    const limits = new TrustServerLimits();
    const engine = new VerificationEngine({
      policies: { policiesFor: () => [policy(repo, server.url)] },
      sourceFor: () => w.source,
      clock: () => NOW,
      cache: new RepositoryCache({ clock: () => NOW }),
      workers,
      limits,
      mainThreadBytes: 64 * 1024,
    });
    closers.push(() => engine.close());

    const v = await engine.verifyImage(`${GUN}:v2.0`, undefined, AbortSignal.timeout(30_000));
    expect(v.allowed, JSON.stringify(v.failures)).to.equal(true);
    expect(v.digest).to.equal('sha256:' + sha256hex(manifest('v2.0')));
    expect(w.inWorker).to.include('targets/releases');
    expect(w.here, 'never received on the main thread').to.not.include('targets/releases');
    expect(w.here).to.include.members(['root', 'timestamp', 'snapshot', 'targets']);
    // The held bytes were counted while the load ran, and given back when it ended.
    expect(limits.state('cluster', server.url).bytes).to.equal(0);
  });

  it('a failure of a GET run by the worker fails the load with the server\'s answer', async () => {
    const repo = forgeBig(3000);
    const server = await serve(repo, (file) => file.startsWith('targets/releases.'));
    closers.push(server.close);
    const w = watched(server.url);
    const engine = new VerificationEngine({
      policies: { policiesFor: () => [policy(repo, server.url)] },
      sourceFor: () => w.source,
      clock: () => NOW,
      cache: new RepositoryCache({ clock: () => NOW }),
      workers: new LoadWorkers(),
      mainThreadBytes: 64 * 1024,
    });
    closers.push(() => engine.close());

    const v = await engine.verifyImage(`${GUN}:v2.0`, undefined, AbortSignal.timeout(30_000));
    expect(v.allowed).to.equal(false);
    expect(v.failures[0]).to.include({ code: 'not-found', cause: 'transport', role: 'targets/releases' });
    expect(v.failures[0]!.reason).to.match(/HTTP 404: no such metadata .*METADATA_NOT_FOUND/);
    expect(w.inWorker).to.deep.equal([]);
  });
});

describe('a file whose declared length no limit admits', function () {
  this.timeout(60_000);

  it('is refused without a request for it', async () => {
    const big = forgeBig(20_000);
    expect(big.get('targets/releases').length).to.be.greaterThan(2 * 1024 * 1024);
    const requested: string[] = [];
    const server = await serve(big, (file) => {
      requested.push(file);
      return false;
    });
    const workers = new LoadWorkers({ keepWarm: false });
    const engine = new VerificationEngine({
      policies: { policiesFor: () => [policy(big, server.url)] },
      sourceFor: () => new HttpSource({ url: server.url, gun: GUN }),
      clock: () => NOW,
      cache: new RepositoryCache({ clock: () => NOW }),
      workers,
      limits: new TrustServerLimits({ cluster: { maxMetadataBytes: 2 * 1024 * 1024 } }),
      mainThreadBytes: 64 * 1024,
    });
    try {
      const v = await engine.verifyImage(`${GUN}:v2.0`, undefined, AbortSignal.timeout(30_000));
      expect(v.allowed).to.equal(false);
      expect(v.failures[0]).to.include({ code: 'too-large', role: 'targets/releases' });
      expect(v.failures[0]!.reason).to.include('larger than the 2 MiB limit for metadata files from trust servers of cluster policies (--cluster-server-max-metadata-mib)');
      expect(requested.filter((f) => f.startsWith('targets/releases.')), 'never asked for').to.deep.equal([]);
    } finally {
      await engine.close();
      await server.close();
    }
  });

  it('is refused by the limits before a byte is asked for', async () => {
    const MiB = 1024 * 1024;
    const limits = new TrustServerLimits({ cluster: { maxMetadataBytes: 8 * MiB } });
    const asked: number[] = [];
    const source: MetadataSource = {
      server: 'https://notary.test',
      gun: GUN,
      fetch: async (req) => {
        asked.push(req.maxBytes);
        return new Uint8Array(Math.min(req.maxBytes, 100));
      },
    };
    const e = await limits.runLoad('cluster', source, (s) => s.fetch({ role: 'targets/releases', sha256Hex: 'ab'.repeat(32), maxBytes: 10 * MiB })).catch((x: unknown) => x);
    expect(e).to.be.instanceOf(FetchError);
    expect((e as Error).message).to.include('larger than the 8 MiB limit for metadata files from trust servers of cluster policies');
    expect(asked).to.deep.equal([]);
    // By name the length is not known: asked for with the cap, the HTTP layer stops there.
    await limits.runLoad('cluster', source, (s) => s.fetch({ role: 'snapshot', maxBytes: 10 * MiB }));
    expect(asked).to.deep.equal([8 * MiB]);
  });
});

describe('the byte budget of a load on the main thread', () => {
  function recording(size: number): { source: MetadataSource; asked: MetadataRequest[] } {
    const asked: MetadataRequest[] = [];
    return {
      asked,
      source: {
        server: 'https://notary.test',
        gun: GUN,
        fetch: async (req) => {
          asked.push(req);
          if (size > req.maxBytes) throw new FetchError('too-large', 'https://notary.test', req.role, `more than ${req.maxBytes} bytes`);
          return new Uint8Array(size);
        },
      },
    };
  }

  it('a file whose declared length does not fit what is left is not fetched at all', async () => {
    const r = recording(5000);
    const b = budgetedSource(r.source, 1000);
    const e = await b.source.fetch({ role: 'targets/releases', sha256Hex: 'ab'.repeat(32), maxBytes: 5000 }).catch((x: unknown) => x);
    expect(e).to.be.instanceOf(OverBudget);
    expect(r.asked).to.deep.equal([]);
  });

  it('a file asked for by name is read only up to one byte past what is left', async () => {
    const r = recording(5000);
    const b = budgetedSource(r.source, 1000);
    const e = await b.source.fetch({ role: 'snapshot', maxBytes: 100_000 }).catch((x: unknown) => x);
    expect(e).to.be.instanceOf(OverBudget);
    expect(r.asked.map((q) => q.maxBytes)).to.deep.equal([1001]);
    expect(b.fetched.size, 'nothing to hand to the worker').to.equal(0);
  });

  it('files that fit are fetched as asked and kept for the worker', async () => {
    const r = recording(300);
    const b = budgetedSource(r.source, 1000);
    expect((await b.source.fetch({ role: 'timestamp', maxBytes: 500 })).length).to.equal(300);
    expect((await b.source.fetch({ role: 'targets', sha256Hex: 'cd'.repeat(32), maxBytes: 300 })).length).to.equal(300);
    expect(r.asked.map((q) => q.maxBytes)).to.deep.equal([500, 300]);
    expect(b.fetched.size).to.equal(2);
  });

  it('a load that must leave the main thread still fails with a real refusal of the source', async () => {
    const source: MetadataSource = {
      server: 'https://notary.test',
      gun: GUN,
      fetch: async (req) => {
        throw new FetchError('not-found', 'https://notary.test', req.role, 'HTTP 404');
      },
    };
    const e = await budgetedSource(source, 1000).source.fetch({ role: 'snapshot', maxBytes: 100_000 }).catch((x: unknown) => x);
    expect(e).to.be.instanceOf(FetchError);
    expect((e as FetchError).kind).to.equal('not-found');
  });
});

describe('verification workers kept warm', () => {
  const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

  it('an engine without a pool of its own starts no thread for loads that stay on the main thread', async () => {
    const repo = forgeBig(0);
    const server = await serve(repo);
    const engines: VerificationEngine[] = [];
    const verify = async () => {
      const engine = new VerificationEngine({ policies: { policiesFor: () => [policy(repo, server.url)] }, sourceFor: () => new HttpSource({ url: server.url, gun: GUN }), clock: () => NOW });
      engines.push(engine);
      const v = await engine.verifyImage(`${GUN}:v2.0`, undefined, AbortSignal.timeout(30_000));
      expect(v.allowed, JSON.stringify(v.failures)).to.equal(true);
    };
    try {
      await verify();
      await new Promise((r) => setTimeout(r, 200));
      const before = threads();
      await verify();
      await new Promise((r) => setTimeout(r, 200));
      expect(threads()).to.equal(before);
    } finally {
      for (const e of engines) await e.close();
      await server.close();
    }
  });

  it('are running before the first load, and an idle one does not keep the process alive', function () {
    this.timeout(30_000);
    const module = new URL('../../webhook/src/verify/load-workers.js', import.meta.url).href;
    const script = `const { LoadWorkers } = await import(${JSON.stringify(module)}); const w = new LoadWorkers({ size: 2 }); await new Promise((r) => setTimeout(r, 500)); console.log(w.threads);`;
    // A file, not `node -e`: an evaluated script exits with its workers still referenced.
    const dir = mkdtempSync(join(tmpdir(), 'tg-warm-'));
    const file = join(dir, 'idle.mjs');
    writeFileSync(file, script);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000 });
    rmSync(dir, { recursive: true, force: true });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('2');
    expect(performance.now() - t0, 'exited on its own').to.be.lessThan(15_000);
  });
});
