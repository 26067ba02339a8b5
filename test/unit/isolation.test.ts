// One tenant cannot stall or starve the others (issue 9, part 6), from the attacker's side:
// a team's own trust server serves large, validly signed metadata (or broken metadata) and
// the real engine and updater load it, while admissions of other repositories go on.
import { expect } from 'chai';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import { TrustServerLimits } from '../../webhook/src/notary/server-limits.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { LoadWorkers } from '../../webhook/src/verify/load-workers.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { dict, manifest, RepoForge, sha256hex, type ForgedRepo } from '../support/forge.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const SERVER = 'https://team-notary.test:4443';
const CLUSTER_SERVER = 'https://notary.test:4443';

/** Pads a role with `count` signed targets (fake digests) until the file is as large as an attacker likes. */
function pad(forge: RepoForge, role: string, count: number): void {
  const targets = forge.signed(role).targets;
  for (let i = 0; i < count; i++) {
    const h = Buffer.alloc(32);
    h.writeUInt32BE(i);
    targets[`filler-${i.toString().padStart(7, '0')}-${'x'.repeat(40)}`] = dict({ hashes: dict({ sha256: h.toString('base64') }), length: 1000 + i });
  }
}

function forgeRepo(gun: string, fillerTargets = 0): ForgedRepo {
  const forge = new RepoForge({ now: NOW, gun, sharedKeys: true });
  if (fillerTargets) pad(forge, 'targets/releases', fillerTargets);
  return forge.build();
}

/** A trust server holding several repositories; counts requests and can hold them back. */
class Server {
  readonly repos = new Map<string, ForgedRepo>();
  readonly requests: string[] = [];
  /** Called once a file's bytes are about to be handed out. */
  onServe?: (gun: string, role: string, bytes: Uint8Array) => void;
  gate?: Promise<void>;
  broken = new Set<string>();

  constructor(readonly url: string) {}

  source(gun: string): MetadataSource {
    return {
      server: this.url,
      gun,
      fetch: async (req: MetadataRequest) => {
        this.requests.push(`${gun} ${req.version ? `${req.version}.` : ''}${req.role}`);
        await new Promise((r) => setImmediate(r));
        if (this.gate) await this.gate;
        const repo = this.repos.get(gun);
        if (!repo) throw new FetchError('not-found', this.url, req.role, 'HTTP 404');
        let bytes = req.version ? repo.roots[req.version - 1] : repo.files.get(req.role);
        if (!bytes) throw new FetchError('not-found', this.url, req.role, 'HTTP 404');
        if (this.broken.has(gun) && req.role === 'timestamp') bytes = Buffer.from(bytes.toString('utf8').replace('"sig":"', '"sig":"AAAA'));
        if (bytes.length > req.maxBytes) throw new FetchError('too-large', this.url, req.role, `more than ${req.maxBytes} bytes (the limit) sent`);
        this.onServe?.(gun, req.role, bytes);
        // A copy, as a socket delivers: the repository's own buffers must survive being handed to a worker.
        return new Uint8Array(bytes);
      },
    };
  }
}

/** Each forged repository has its own root certificate (issued to its GUN): the policy pins them all. */
function policyFor(name: string, gunPrefix: string, repos: ForgedRepo | ForgedRepo[], server: string, namespace?: string): TrustPolicy {
  const keys = [repos].flat().flatMap((r) => r.rootPems);
  return {
    kind: namespace ? 'TrustPolicy' : 'ClusterTrustPolicy',
    name,
    ...(namespace ? { namespace } : {}),
    source: 'test',
    spec: { images: [`${gunPrefix}/**`], trustServer: { url: server }, root: { keys, threshold: 1 }, mode: 'enforce' },
  };
}

interface Rig {
  engine: VerificationEngine;
  clock: { now: Date };
  workers: LoadWorkers;
}

function rig(policies: TrustPolicy[], servers: Server[], opts: { workers?: LoadWorkers; limits?: TrustServerLimits; errors?: string[] } = {}): Rig {
  const clock = { now: NOW };
  const workers = opts.workers ?? new LoadWorkers();
  const engine = new VerificationEngine({
    policies: { policiesFor: (ref, ns) => policies.filter((p) => (p.kind === 'ClusterTrustPolicy' || p.namespace === ns) && ref.startsWith(p.spec.images[0]!.slice(0, -3))) },
    sourceFor: (p, gun) => servers.find((s) => s.url === p.spec.trustServer.url)!.source(gun),
    clock: () => clock.now,
    cache: new RepositoryCache({ clock: () => clock.now }),
    workers,
    ...(opts.limits ? { limits: opts.limits } : {}),
    metrics: { trustServerError: (server, kind) => opts.errors?.push(`${server} ${kind}`) },
  });
  return { engine, clock, workers };
}

const signal = () => AbortSignal.timeout(120_000);

async function expectRejection(p: Promise<unknown>, message: RegExp): Promise<void> {
  const outcome = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(outcome, 'rejected').to.be.instanceOf(FetchError);
  expect((outcome as Error).message).to.match(message);
}
const digestOf = (tag: string) => 'sha256:' + sha256hex(manifest(tag));

describe('tenant isolation', function () {
  this.timeout(180_000);
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('a warm admission of another repository answers while a large signed delegation is being verified', async () => {
    const team = new Server(SERVER);
    team.repos.set('registry.test/team/huge', forgeRepo('registry.test/team/huge', 60_000));
    const other = new Server(CLUSTER_SERVER);
    other.repos.set('registry.test/shop/app', forgeRepo('registry.test/shop/app'));
    const policies = [
      policyFor('team', 'registry.test/team', team.repos.get('registry.test/team/huge')!, SERVER, 'team'),
      policyFor('shop', 'registry.test/shop', other.repos.get('registry.test/shop/app')!, CLUSTER_SERVER),
    ];
    const limits = new TrustServerLimits({ namespaced: { maxMetadataBytes: 64 * 1024 * 1024, maxBytesInFlight: 64 * 1024 * 1024 } });
    const { engine, workers } = rig(policies, [team, other], { limits });
    closers.push(() => engine.close());
    const warm = await engine.verifyImage('registry.test/shop/app:v2.0', 'shop', signal());
    expect(warm.allowed, JSON.stringify(warm.failures)).to.equal(true);

    // The hostile file has just been handed over: from here on, the old code parsed it on this thread.
    let served!: () => void;
    const bigServed = new Promise<void>((r) => (served = r));
    team.onServe = (_gun, role, bytes) => {
      if (role === 'targets/releases' && bytes.length > 4 * 1024 * 1024) served();
    };
    let hostileDone = false;
    const hostile = engine.verifyImage('registry.test/team/huge:v2.0', 'team', signal()).then((v) => {
      hostileDone = true;
      return v;
    });
    await bigServed;
    const answers: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      // Through the event loop each time, as admissions arrive from sockets.
      await new Promise((r) => setImmediate(r));
      const v = await engine.verifyImage('registry.test/shop/app:v2.0', 'shop', signal());
      answers.push(v.allowed && !hostileDone);
    }
    expect(answers, 'every warm admission answered before the hostile load finished').to.deep.equal(Array(20).fill(true));
    const verdict = await hostile;
    // The large delegation was valid: verified in the worker, the tag is pinned as usual.
    expect(verdict.allowed, JSON.stringify(verdict.failures)).to.equal(true);
    expect(verdict.digest).to.equal(digestOf('v2.0'));
    expect(workers.outOfMemory).to.equal(0);
  });

  it('a worker that exceeds its memory budget is discarded, the load denied with that reason, and serving goes on', async () => {
    const team = new Server(SERVER);
    team.repos.set('registry.test/team/huge', forgeRepo('registry.test/team/huge', 120_000));
    team.repos.set('registry.test/team/mid', forgeRepo('registry.test/team/mid', 8_000));
    team.repos.set('registry.test/team/app', forgeRepo('registry.test/team/app'));
    const policy = policyFor('team', 'registry.test/team', [...team.repos.values()], SERVER);
    const workers = new LoadWorkers({ maxOldGenerationSizeMb: 16 });
    // Started before any load needs it, so the first large load does not wait for a thread.
    expect(workers.threads).to.equal(1);
    const errors: string[] = [];
    const { engine } = rig([policy], [team], { workers, errors });
    closers.push(() => engine.close());
    const small = await engine.verifyImage('registry.test/team/app:v2.0', undefined, signal());
    expect(small.allowed).to.equal(true);

    const hostile = await engine.verifyImage('registry.test/team/huge:v2.0', undefined, signal());
    expect(hostile.allowed).to.equal(false);
    expect(hostile.failures[0]).to.include({ code: 'too-large', server: SERVER });
    expect(hostile.failures[0]!.reason).to.match(/more than the 16 MB memory budget of a verification worker.*discarded/);
    expect(workers.outOfMemory).to.equal(1);
    expect(errors, 'counted in trustgate_trust_server_errors_total').to.deep.equal([`${SERVER} worker-memory`]);
    // The discarded worker is replaced at once, not when the next large load comes.
    for (let i = 0; i < 100 && workers.threads !== 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(workers.threads, 'a replacement worker is running').to.equal(1);

    // Still serving: warm data answers, and a new worker verifies the next large repository.
    expect((await engine.verifyImage('registry.test/team/app:v2.0', undefined, signal())).allowed).to.equal(true);
    const mid = await engine.verifyImage('registry.test/team/mid:v2.0', undefined, signal());
    expect(mid.allowed, JSON.stringify(mid.failures)).to.equal(true);
    expect(mid.digest).to.equal(digestOf('v2.0'));
  });

  it('a repository whose load failed is not fetched again within its backoff, and the denial keeps the reason', async () => {
    const team = new Server(SERVER);
    team.repos.set('registry.test/team/app', forgeRepo('registry.test/team/app'));
    team.broken.add('registry.test/team/app');
    const policy = policyFor('team', 'registry.test/team', team.repos.get('registry.test/team/app')!, SERVER, 'team');
    const { engine, clock } = rig([policy], [team]);
    closers.push(() => engine.close());
    const first = await engine.verifyImage('registry.test/team/app:v2.0', 'team', signal());
    expect(first.allowed).to.equal(false);
    const reason = first.failures[0]!.reason;
    expect(first.failures[0]).to.include({ code: 'signature', role: 'timestamp' });
    const fetched = team.requests.length;
    expect(fetched).to.be.greaterThan(0);

    for (let i = 0; i < 5; i++) {
      clock.now = new Date(NOW.getTime() + i * 1000);
      const again = await engine.verifyImage('registry.test/team/app:v2.0', 'team', signal());
      expect(again.allowed).to.equal(false);
      expect(again.failures[0]!.reason).to.equal(reason);
    }
    expect(team.requests.length, 'no request reached the server during the backoff').to.equal(fetched);

    // After the backoff the repository is tried again; once it is fixed, the success clears the failure.
    team.broken.delete('registry.test/team/app');
    clock.now = new Date(NOW.getTime() + 11_000);
    const fixed = await engine.verifyImage('registry.test/team/app:v2.0', 'team', signal());
    expect(fixed.allowed, JSON.stringify(fixed.failures)).to.equal(true);
    expect(team.requests.length).to.be.greaterThan(fetched);
  });

  it('the backoff doubles with each failure up to its cap', async () => {
    let now = 0;
    const cache = new RepositoryCache({ clock: () => new Date(now), retryMs: 1000, maxBackoffMs: 4000 });
    let loads = 0;
    const fail = async () => {
      loads++;
      throw new Error('broken');
    };
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      await cache.get('k', fail).catch(() => undefined);
      waits.push(cache.retryAt('k')! - now);
      now = cache.retryAt('k')! - 1;
      await cache.get('k', fail).catch(() => undefined);
      now += 1;
    }
    expect(waits).to.deep.equal([1000, 2000, 4000, 4000, 4000]);
    expect(loads, 'no load inside any backoff').to.equal(5);
  });

  it('loads from one trust server of a namespaced policy run at most the configured number at once; cluster loads are not held up', async () => {
    const team = new Server(SERVER);
    const gate: { open?: () => void } = {};
    team.gate = new Promise((r) => (gate.open = r));
    const guns = Array.from({ length: 6 }, (_, i) => `registry.test/team/app-${i}`);
    for (const g of guns) team.repos.set(g, forgeRepo(g));
    const cluster = new Server(CLUSTER_SERVER);
    cluster.repos.set('registry.test/shop/app', forgeRepo('registry.test/shop/app'));
    const limits = new TrustServerLimits({ namespaced: { maxConcurrentLoads: 2 } });
    const policies = [
      policyFor('team', 'registry.test/team', [...team.repos.values()], SERVER, 'team'),
      policyFor('shop', 'registry.test/shop', cluster.repos.get('registry.test/shop/app')!, CLUSTER_SERVER),
    ];
    const { engine } = rig(policies, [team, cluster], { limits });
    closers.push(() => engine.close());
    const pending = guns.map((g) => engine.verifyImage(`${g}:v2.0`, 'team', signal()));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const started = new Set(team.requests.map((r) => r.split(' ')[0]));
    expect(started.size, 'repositories with a request at the server').to.equal(2);
    expect(limits.state('namespaced', SERVER)).to.include({ active: 2, waiting: 4 });
    // Another server's repository is loaded meanwhile.
    expect((await engine.verifyImage('registry.test/shop/app:v2.0', 'team', signal())).allowed).to.equal(true);
    gate.open!();
    team.gate = undefined;
    const verdicts = await Promise.all(pending);
    expect(verdicts.map((v) => v.allowed)).to.deep.equal(Array(6).fill(true));
    expect(new Set(team.requests.map((r) => r.split(' ')[0])).size).to.equal(6);
  });

  it('bytes held by unfinished loads of one server stay within its budget; a file that cannot fit is capped before it is read', async () => {
    const MiB = 1024 * 1024;
    const limits = new TrustServerLimits({ namespaced: { maxBytesInFlight: 8 * MiB, maxMetadataBytes: 8 * MiB } });
    const asked: number[] = [];
    const source = (gun: string): MetadataSource => ({
      server: SERVER,
      gun,
      fetch: async (req) => {
        asked.push(req.maxBytes);
        return new Uint8Array(Math.min(req.maxBytes, 6 * MiB));
      },
    });
    let release!: () => void;
    const holding = new Promise<void>((r) => (release = r));
    const first = limits.runLoad('namespaced', source('a'), async (s) => {
      await s.fetch({ role: 'targets/releases', sha256Hex: 'aa', maxBytes: 6 * MiB });
      await holding;
      return 'first';
    });
    await new Promise((r) => setImmediate(r));
    expect(limits.state('namespaced', SERVER).bytes).to.equal(6 * MiB);
    const second = limits.runLoad('namespaced', source('b'), (s) => s.fetch({ role: 'targets', maxBytes: 64 * MiB }));
    await expectRejection(second, /loads from this trust server for namespaced policies would hold more than 8 MiB at once \(--namespaced-server-max-mib-in-flight\)/);
    // Asked for with the cap, not the 64 MiB the caller allowed: the HTTP layer stops reading there.
    expect(asked[1]).to.equal(8 * MiB);
    // A declared length that does not fit what is free is refused without a request.
    const third = limits.runLoad('namespaced', source('c'), (s) => s.fetch({ role: 'targets/x', sha256Hex: 'bb', maxBytes: 3 * MiB }));
    await expectRejection(third, /would hold more than 8 MiB/);
    expect(asked).to.have.length(2);
    release();
    expect(await first).to.equal('first');
    expect(limits.state('namespaced', SERVER).bytes).to.equal(0);
    const after = await limits.runLoad('namespaced', source('d'), (s) => s.fetch({ role: 'targets', maxBytes: 6 * MiB }));
    expect(after.length).to.equal(6 * MiB);
  });

  it('downloads of declared lengths running side by side are reserved up front, so together they cannot overshoot the budget', async () => {
    const MiB = 1024 * 1024;
    const limits = new TrustServerLimits({ namespaced: { maxBytesInFlight: 8 * MiB, maxMetadataBytes: 8 * MiB } });
    const asked: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const source: MetadataSource = {
      server: SERVER,
      gun: 'reserve',
      fetch: async (req) => {
        asked.push(req.role);
        await gate;
        return new Uint8Array(req.maxBytes);
      },
    };
    const load = limits.runLoad('namespaced', source, (s) =>
      // Three delegations of 3 MiB each, asked for at once, as a delegation wave does.
      Promise.allSettled(['targets/a', 'targets/b', 'targets/c'].map((role) => s.fetch({ role, sha256Hex: role, maxBytes: 3 * MiB }))),
    );
    await new Promise((r) => setImmediate(r));
    // Two fit the 8 MiB budget and are held from the moment they are asked for; the third is refused without a request.
    expect(asked).to.deep.equal(['targets/a', 'targets/b']);
    expect(limits.state('namespaced', SERVER).bytes).to.equal(6 * MiB);
    release();
    const results = await load;
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected']);
    expect(String((results[2] as PromiseRejectedResult).reason)).to.match(/would hold more than 8 MiB at once/);
    expect(limits.state('namespaced', SERVER).bytes).to.equal(0);
  });

  it('a namespaced policy cannot make the webhook take a file above the namespaced cap, which a cluster policy may', async () => {
    const team = new Server(SERVER);
    team.repos.set('registry.test/team/big', forgeRepo('registry.test/team/big', 9_000));
    const repo = team.repos.get('registry.test/team/big')!;
    const limits = new TrustServerLimits({ namespaced: { maxMetadataBytes: 1024 * 1024 } });
    const ns = rig([policyFor('team', 'registry.test/team', repo, SERVER, 'team')], [team], { limits });
    closers.push(() => ns.engine.close());
    const denied = await ns.engine.verifyImage('registry.test/team/big:v2.0', 'team', signal());
    expect(denied.allowed).to.equal(false);
    expect(denied.failures[0]).to.include({ code: 'too-large', role: 'targets/releases' });
    expect(denied.failures[0]!.reason).to.include('larger than the 1 MiB limit for metadata files from trust servers of namespaced policies (--namespaced-server-max-metadata-mib)');
    const cl = rig([policyFor('admin', 'registry.test/team', repo, SERVER)], [team], { limits });
    closers.push(() => cl.engine.close());
    expect((await cl.engine.verifyImage('registry.test/team/big:v2.0', undefined, signal())).allowed).to.equal(true);
  });
});
