// A tenant's own TUF 1.0 repository (issue 9 part 6, for `protocol: tuf`): a TrustPolicy may
// name any repository, and its owner holds every key, so every length its metadata declares
// is the attacker's choice. From the attacker's side, through the real engine and updater:
// declared lengths above the policy scope's file cap are refused before a request, files that
// declare nothing are cut off at the cap, and loads (delegated roles loaded by lookups too)
// queue behind the same per-server limits as Notary loads.
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TargetFile } from '@tufjs/models';
import { TrustServerLimits } from '../../webhook/src/notary/server-limits.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { FetchError, type SpecFileRequest, type SpecSource } from '../../webhook/src/tufrepo/source.js';
import { VerificationEngine, type EngineMetrics } from '../../webhook/src/verify/engine.js';
import { TufRepo } from '../support/tuf1-repo.js';
import { MemorySpecSource } from '../support/tuf1-memory-source.js';

const REG = 'registry.example.com';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const signal = () => AbortSignal.timeout(60_000);

/** The tenant's repository: `team` signs its images; `targets` delegates them to it. */
function tenantRepo(roles = ['team']): TufRepo {
  const repo = new TufRepo();
  for (const role of roles) {
    repo.delegate(role, { paths: [`${REG}/${role}/*`] });
    repo.addTarget(role, `${REG}/${role}/app:1`, `manifest of ${role}`);
  }
  return repo;
}

function policy(repo: TufRepo, url: string, scope: 'namespaced' | 'cluster', prefix = `${REG}/`): TrustPolicy {
  return {
    kind: scope === 'namespaced' ? 'TrustPolicy' : 'ClusterTrustPolicy',
    name: scope === 'namespaced' ? 'team-tuf' : 'admin-tuf',
    ...(scope === 'namespaced' ? { namespace: 'team' } : {}),
    source: 'test',
    spec: {
      images: [`${prefix}**`],
      trustServer: { protocol: 'tuf', url },
      root: { keys: [], threshold: 1, trustedRoot: repo.roots.get(1)!.toString('utf8') },
      mode: 'enforce',
    },
  };
}

/** The tenant's server in memory: which files were asked for, with which cap, and a gate to hold answers. */
class TenantSource extends MemorySpecSource implements SpecSource {
  override readonly server: string;
  readonly asked: SpecFileRequest[] = [];
  gate: Promise<void> | undefined;

  constructor(files: Map<string, Buffer>, server = 'https://tuf.team.test/metadata/') {
    super(files);
    this.server = server;
  }

  override async fetch(req: SpecFileRequest): Promise<Uint8Array> {
    this.asked.push(req);
    await new Promise((r) => setImmediate(r));
    if (this.gate) await this.gate;
    return super.fetch(req);
  }

  filesAsked(): string[] {
    return this.asked.map((r) => r.file);
  }
}

function engineFor(policies: TrustPolicy[], sources: Map<string, SpecSource> | undefined, opts: { limits?: TrustServerLimits; metrics?: EngineMetrics; now?: Date } = {}) {
  return new VerificationEngine({
    policies: { policiesFor: (ref, ns) => policies.filter((p) => (p.kind === 'ClusterTrustPolicy' || p.namespace === ns) && ref.startsWith(p.spec.images[0]!.slice(0, -2))) },
    sourceFor: () => {
      throw new Error('no Notary policy here');
    },
    ...(sources ? { tufSourceFor: (p: TrustPolicy) => sources.get(p.spec.trustServer.url)! } : {}),
    ...(opts.now ? { clock: () => opts.now! } : {}),
    limits: opts.limits ?? new TrustServerLimits(),
    workers: false,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
}

describe('TUF 1.0 repositories under the per-trust-server limits', function () {
  this.timeout(60_000);

  it('a delegated role the tenant\'s signed snapshot declares at 1 GiB is refused before it is requested, naming role, server, size, cap and flag', async () => {
    const repo = tenantRepo();
    const source = new TenantSource(repo.publish({ hashes: true, declare: { team: GiB } }));
    const p = policy(repo, source.server, 'namespaced');
    const errors: string[] = [];
    const limits = new TrustServerLimits();
    const engine = engineFor([p], new Map([[source.server, source]]), { limits, now: repo.now, metrics: { trustServerError: (server, kind) => errors.push(`${server} ${kind}`) } });

    const verdict = await engine.verifyImage(`${REG}/team/app:1`, 'team', signal());
    expect(verdict.allowed).to.equal(false);
    expect(verdict.failures).to.have.length(1);
    const f = verdict.failures[0]!;
    expect(f).to.include({ code: 'too-large', cause: 'transport', role: 'team' });
    expect(f.reason).to.equal(
      `team from ${source.server}: the signed metadata declares ${GiB} bytes (1024 MiB), larger than the 8 MiB limit for metadata files from trust servers of namespaced policies (--namespaced-server-max-metadata-mib)`,
    );
    expect(source.filesAsked().filter((f) => f.endsWith('team.json')), 'requests for the declared role').to.deep.equal([]);
    expect(errors).to.deep.equal([`${source.server} too-large`]);
    // The lookup's load ended: nothing held, no slot taken.
    expect(limits.state('namespaced', source.server)).to.deep.equal({ active: 0, waiting: 0, bytes: 0 });
  });

  it('a snapshot the timestamp declares at 1 GiB is refused before it is requested, under the cluster cap and flag for a cluster policy', async () => {
    const repo = tenantRepo();
    const source = new TenantSource(repo.publish({ hashes: true, declare: { snapshot: GiB } }));
    const engine = engineFor([policy(repo, source.server, 'cluster')], new Map([[source.server, source]]), { now: repo.now });
    const verdict = await engine.verifyImage(`${REG}/team/app:1`, 'default', signal());
    expect(verdict.allowed).to.equal(false);
    expect(verdict.failures[0]).to.include({ code: 'too-large', role: 'snapshot' });
    expect(verdict.failures[0]!.reason).to.equal(
      `snapshot from ${source.server}: the signed metadata declares ${GiB} bytes (1024 MiB), larger than the 32 MiB limit for metadata files from trust servers of cluster policies (--cluster-server-max-metadata-mib)`,
    );
    expect(source.filesAsked().filter((f) => f.includes('snapshot')), 'requests for the snapshot').to.deep.equal([]);
  });

  it('a namespaced policy gets the namespaced file cap and a cluster policy the cluster one, for the same repository, declared or not', async () => {
    const repo = tenantRepo();
    // A real, validly signed role of 1.5 MiB: within the cluster cap, over the namespaced one.
    const t = new TargetFile({ path: `${REG}/team/padding:1`, length: 1, hashes: { sha256: '0'.repeat(64) }, unrecognizedFields: { custom: { pad: 'x'.repeat(1.5 * MiB) } } });
    repo.targets.get('team')!.signed.addTarget(t);
    const limits = new TrustServerLimits({ namespaced: { maxMetadataBytes: 1 * MiB } });
    for (const declared of [true, false]) {
      const source = new TenantSource(repo.publish({ hashes: declared }));
      const ns = policy(repo, source.server, 'namespaced');
      const cluster = policy(repo, source.server, 'cluster', `${REG}/team/`);
      const engine = engineFor([ns, cluster], new Map([[source.server, source]]), { limits, now: repo.now });
      // The cluster policy loads the role first: a namespaced lookup must not be served by,
      // or load under, the cluster's limits.
      expect((await engine.verifyImage(`${REG}/team/app:1`, undefined, signal())).allowed, 'cluster').to.equal(true);
      const teamFetches = () => source.asked.filter((r) => r.file.endsWith('team.json'));
      expect(teamFetches()).to.have.length(1);
      const verdict = await engine.verifyImage(`${REG}/team/app:1`, 'team', signal());
      expect(verdict.allowed, 'namespaced').to.equal(false);
      const failure = verdict.failures.find((f) => f.policy.kind === 'TrustPolicy')!;
      expect(failure).to.include({ code: 'too-large', role: 'team' });
      expect(failure.reason).to.include(`team from ${source.server}: `);
      expect(failure.reason).to.include('larger than the 1 MiB limit for metadata files from trust servers of namespaced policies (--namespaced-server-max-metadata-mib)');
      if (declared) {
        expect(teamFetches(), 'declared: refused without a request').to.have.length(1);
      } else {
        // Nothing declares its length: asked for with the scope's cap, not the client's 5 MB, and cut off there.
        expect(teamFetches()).to.have.length(2);
        expect(teamFetches()[1]!.maxBytes).to.equal(1 * MiB);
        expect(teamFetches()[0]!.maxBytes, 'the cluster cap is above the client default').to.equal(5_000_000);
      }
    }
  });

  it('delegated-role loads from one tenant\'s repository queue behind its per-server limit while another server\'s load proceeds', async () => {
    const roles = Array.from({ length: 6 }, (_, i) => `team-${i}`);
    const repo = tenantRepo(roles);
    const source = new TenantSource(repo.publish({ hashes: true }));
    const other = tenantRepo(['shop']);
    const otherSource = new TenantSource(other.publish({ hashes: true }), 'https://tuf.shop.test/metadata/');
    const limits = new TrustServerLimits({ namespaced: { maxConcurrentLoads: 2 } });
    const team = policy(repo, source.server, 'namespaced', `${REG}/team-`);
    const shop = { ...policy(other, otherSource.server, 'namespaced', `${REG}/shop/`), name: 'shop-tuf', namespace: 'shop' };
    const engine = engineFor([team, shop], new Map<string, SpecSource>([[source.server, source], [otherSource.server, otherSource]]), { limits, now: repo.now });
    // The repository is loaded (top-level roles); each image then needs its own delegated role.
    expect((await engine.verifyImage(`${REG}/team-none/app:1`, 'team', signal())).allowed).to.equal(false);
    const before = source.asked.length;

    let open!: () => void;
    source.gate = new Promise((r) => (open = r));
    const pending = roles.map((r) => engine.verifyImage(`${REG}/${r}/app:1`, 'team', signal()));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(source.asked.slice(before).map((r) => r.role), 'roles requested while the first two are held').to.have.length(2);
    expect(limits.state('namespaced', source.server)).to.include({ active: 2, waiting: 4 });
    // Another tenant's repository loads meanwhile, cold, under the same scope.
    const shopVerdict = await engine.verifyImage(`${REG}/shop/app:1`, 'shop', signal());
    expect(shopVerdict.allowed, JSON.stringify(shopVerdict.failures)).to.equal(true);
    open();
    source.gate = undefined;
    expect((await Promise.all(pending)).map((v) => v.allowed)).to.deep.equal(Array(6).fill(true));
    expect(new Set(source.asked.slice(before).map((r) => r.role))).to.deep.equal(new Set(roles));
    expect(limits.state('namespaced', source.server)).to.deep.equal({ active: 0, waiting: 0, bytes: 0 });
  });

  it('a fetch still in flight when its load ends is aborted and its bytes never count against the limits', async () => {
    const limits = new TrustServerLimits({ maxTotalBytesInFlight: 4 * MiB });
    let late!: (bytes: Uint8Array) => void;
    let lateSignal: AbortSignal | undefined;
    const slow: SpecSource = {
      server: 'https://tuf.team.test/metadata/',
      fetch: (req, s) => {
        lateSignal = s;
        return new Promise((resolve) => (late = resolve));
      },
    };
    // A lookup that found its target while a sibling it prefetched is still downloading.
    let prefetch: Promise<Uint8Array> | undefined;
    await limits.runLoad('namespaced', slow, async (s) => {
      prefetch = s.fetch({ role: 'team-2', file: '1.team-2.json', maxBytes: 3 * MiB, declared: true });
      prefetch.catch(() => undefined);
    });
    expect(lateSignal?.aborted, 'the source was told to stop').to.equal(true);
    late(new Uint8Array(3 * MiB)); // a source that ignores the abort
    const outcome = await prefetch!.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    expect(outcome).to.match(/finished after its load ended/);
    // Nothing leaked into the total: a 3 MiB file still fits the 4 MiB budget.
    const fresh: SpecSource = { server: 'https://tuf.other.test/metadata/', fetch: async (req) => new Uint8Array(req.maxBytes) };
    const bytes = await limits.runLoad('cluster', fresh, (s) => s.fetch({ role: 'targets', file: '1.targets.json', maxBytes: 3 * MiB, declared: true }));
    expect(bytes.length).to.equal(3 * MiB);
  });

  describe('over real HTTP (the engine\'s own HTTP source)', () => {
    let server: Server;
    let base: string;
    const files = new Map<string, Buffer>();
    const paths: string[] = [];
    /** Files the tenant's server streams without end. */
    const endless = new Set<string>();

    before(async () => {
      server = createServer((req, res) => {
        const name = (req.url ?? '').replace(/^\/metadata\//, '');
        paths.push(name);
        if (endless.has(name)) {
          res.writeHead(200, { 'content-type': 'application/json' });
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          const write = () => {
            while (!res.destroyed && res.write(chunk));
            if (!res.destroyed) res.once('drain', write);
          };
          write();
          return;
        }
        const body = files.get(name);
        if (!body) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metadata/`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    beforeEach(() => {
      files.clear();
      paths.length = 0;
      endless.clear();
    });

    it('refuses a declared 1 GiB role without a request, cuts off an undeclared endless one at the namespaced cap, and counts both in trustgate_trust_server_errors_total', async () => {
      const metrics = new Metrics();
      const limits = new TrustServerLimits({ namespaced: { maxMetadataBytes: 1 * MiB } });

      const repo = tenantRepo();
      for (const [name, bytes] of repo.publish({ hashes: true, declare: { team: GiB } })) files.set(name, bytes);
      endless.add('1.team.json');
      const declared = await engineFor([policy(repo, base, 'namespaced')], undefined, { limits, metrics, now: repo.now }).verifyImage(`${REG}/team/app:1`, 'team', signal());
      expect(declared.failures[0]).to.include({ code: 'too-large', role: 'team' });
      expect(declared.failures[0]!.reason).to.equal(
        `team from ${base}: the signed metadata declares ${GiB} bytes (1024 MiB), larger than the 1 MiB limit for metadata files from trust servers of namespaced policies (--namespaced-server-max-metadata-mib)`,
      );
      expect(paths, 'files the tenant\'s server was asked for').to.not.include('1.team.json');

      files.clear();
      paths.length = 0;
      const plain = tenantRepo();
      for (const [name, bytes] of plain.publish()) files.set(name, bytes);
      const undeclared = await engineFor([policy(plain, base, 'namespaced')], undefined, { limits, metrics, now: plain.now }).verifyImage(`${REG}/team/app:1`, 'team', signal());
      expect(undeclared.failures[0]).to.include({ code: 'too-large', role: 'team' });
      expect(undeclared.failures[0]!.reason).to.equal(`team from ${base}: larger than the 1 MiB limit for metadata files from trust servers of namespaced policies (--namespaced-server-max-metadata-mib)`);
      expect(paths).to.include('1.team.json');

      expect(metrics.render()).to.include(`trustgate_trust_server_errors_total{server="${base}",kind="too-large"} 2`);
      expect(limits.state('namespaced', base)).to.deep.equal({ active: 0, waiting: 0, bytes: 0 });
    });
  });
});
