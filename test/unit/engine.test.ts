// The verification engine: policy composition, the verified-metadata cache (single-flight,
// refresh, outage, expiry, max age), deadlines, and high-water marks across restarts.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { FileVersionStore } from '../../webhook/src/verify/version-store.js';
import type { Mode } from '../../webhook/src/verify/types.js';
import { DAY, GUN, manifest, RepoForge, sha256hex } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const IMAGE = `${GUN}:v2.0`;

function policy(name: string, forge: { rootPems: string[] }, opts: { mode?: Mode; kind?: TrustPolicy['kind']; namespace?: string; server?: string; roles?: string[]; maxAge?: number } = {}): TrustPolicy {
  return {
    kind: opts.kind ?? 'ClusterTrustPolicy',
    name,
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    source: 'test',
    spec: {
      images: [`${GUN}`],
      trustServer: { url: opts.server ?? 'https://notary.test:4443' },
      root: { keys: forge.rootPems, threshold: 1 },
      ...(opts.roles ? { delegations: { roles: opts.roles, threshold: opts.roles.length } } : {}),
      ...(opts.maxAge !== undefined ? { freshness: { maxMetadataAgeSeconds: opts.maxAge } } : {}),
      mode: opts.mode ?? 'enforce',
    },
  };
}

interface Rig {
  engine: VerificationEngine;
  source: ForgedSource;
  clock: { now: Date };
}

function rig(policies: TrustPolicy[], source: ForgedSource, extra: { refreshMs?: number; refreshWaitMs?: number; sources?: Map<string, ForgedSource>; store?: FileVersionStore } = {}): Rig {
  const clock = { now: NOW };
  const engine = new VerificationEngine({
    policies: { policiesFor: (_ref, ns) => policies.filter((p) => p.kind === 'ClusterTrustPolicy' || p.namespace === ns) },
    sourceFor: (p) => extra.sources?.get(p.spec.trustServer.url) ?? source,
    clock: () => clock.now,
    cache: new RepositoryCache({ clock: () => clock.now, refreshIntervalMs: extra.refreshMs ?? 60_000, ...(extra.refreshWaitMs !== undefined ? { refreshWaitMs: extra.refreshWaitMs } : {}) }),
    ...(extra.store ? { versions: extra.store } : {}),
  });
  return { engine, source, clock };
}

const signal = () => AbortSignal.timeout(5000);

describe('verification engine', () => {
  let forge: RepoForge;
  let v2Digest: string;

  before(() => {
    forge = new RepoForge({ now: NOW });
    v2Digest = 'sha256:' + sha256hex(manifest('v2.0'));
  });

  it('pins a signed tag and reports the accepting policy', async () => {
    const { engine } = rig([policy('a', forge.build())], new ForgedSource(forge.build()));
    const v = await engine.verifyImage(IMAGE, undefined, signal());
    expect(v).to.deep.include({ allowed: true, digest: v2Digest, pinned: `${GUN}:v2.0@${v2Digest}`, failures: [] });
    expect(v.passed).to.deep.equal([{ kind: 'ClusterTrustPolicy', name: 'a' }]);
  });

  it('denies an unsigned tag with the role, server and reason', async () => {
    const { engine } = rig([policy('a', forge.build())], new ForgedSource(forge.build()));
    const v = await engine.verifyImage(`${GUN}:v9`, undefined, signal());
    expect(v.allowed).to.equal(false);
    expect(v.pinned).to.equal(undefined);
    expect(v.failures[0]).to.include({ code: 'unsigned', mode: 'enforce', server: 'https://notary.test:4443' });
    expect(v.failures[0]!.reason).to.include('v9');
  });

  it('denies an image no policy matches, unless told to allow it; exempt images skip verification', async () => {
    const source = new ForgedSource(forge.build());
    const none = rig([], source);
    const v = await none.engine.verifyImage(IMAGE, undefined, signal());
    expect(v.allowed).to.equal(false);
    expect(v.failures[0]!.code).to.equal('no-policy');
    const allow = new VerificationEngine({ policies: { policiesFor: () => [] }, sourceFor: () => source, allowUnmatched: true });
    expect((await allow.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(true);
    const exempt = new VerificationEngine({
      policies: { policiesFor: () => [policy('a', forge.build())] },
      sourceFor: () => source,
      isExempt: (ref) => ref === `${GUN}:v2.0`,
    });
    expect((await exempt.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(true);
    expect(source.total()).to.equal(0);
  });

  it('refuses a malformed reference without fetching anything', async () => {
    const { engine, source } = rig([policy('a', forge.build())], new ForgedSource(forge.build()));
    const v = await engine.verifyImage('UPPER/Case:tag', undefined, signal());
    expect(v.allowed).to.equal(false);
    expect(v.failures[0]!.code).to.equal('invalid-reference');
    expect(source.total()).to.equal(0);
  });

  describe('composition', () => {
    it('every matching policy must pass: a failing enforce policy denies although another passes', async () => {
      const other = new RepoForge({ now: NOW });
      const { engine } = rig([policy('right', forge.build()), policy('wrong-root', other.build())], new ForgedSource(forge.build()));
      const v = await engine.verifyImage(IMAGE, undefined, signal());
      expect(v.allowed).to.equal(false);
      expect(v.passed.map((p) => p.name)).to.deep.equal(['right']);
      expect(v.failures.map((f) => [f.policy.name, f.code])).to.deep.equal([['wrong-root', 'untrusted-root']]);
    });

    it('a warn-mode failure allows, keeps the pin from the enforcing policy, and is reported', async () => {
      const { engine } = rig(
        [policy('enforced', forge.build()), policy('needs-qa', forge.build(), { mode: 'warn', roles: ['targets/qa'] })],
        new ForgedSource(forge.build()),
      );
      const v = await engine.verifyImage(IMAGE, undefined, signal());
      expect(v).to.include({ allowed: true, pinned: `${GUN}:v2.0@${v2Digest}` });
      expect(v.failures).to.have.length(1);
      expect(v.failures[0]).to.include({ mode: 'warn', role: 'targets/qa' });
    });

    it('says each fact of an unmet delegation requirement once: which role is missing, what is required', async () => {
      const one = await rig([policy('qa', forge.build(), { roles: ['targets/qa'] })], new ForgedSource(forge.build())).engine.verifyImage(IMAGE, undefined, signal());
      expect(one.failures.map((f) => f.reason)).to.deep.equal(['tag "v2.0" is not signed by targets/qa (required)']);
      const both = await rig([policy('both', forge.build(), { roles: ['targets/releases', 'targets/qa'] })], new ForgedSource(forge.build())).engine.verifyImage(IMAGE, undefined, signal());
      expect(both.failures.map((f) => [f.code, f.role, f.reason])).to.deep.equal([
        ['unsigned', 'targets/qa', 'tag "v2.0" is not signed by targets/qa (required: all of targets/releases, targets/qa)'],
      ]);
    });

    it('a namespaced policy cannot loosen a cluster policy: its warn mode does not soften an enforced failure', async () => {
      const policies = [
        policy('cluster', forge.build(), { roles: ['targets/qa'] }),
        policy('team', forge.build(), { kind: 'TrustPolicy', namespace: 'team', mode: 'warn' }),
      ];
      const { engine } = rig(policies, new ForgedSource(forge.build()));
      const v = await engine.verifyImage(IMAGE, 'team', signal());
      expect(v.allowed).to.equal(false);
      expect(v.failures.map((f) => [f.policy.name, f.mode])).to.deep.equal([['cluster', 'enforce']]);
    });

    it('a namespaced policy applies only in its namespace', async () => {
      const policies = [policy('team', forge.build(), { kind: 'TrustPolicy', namespace: 'team' })];
      const { engine } = rig(policies, new ForgedSource(forge.build()));
      expect((await engine.verifyImage(IMAGE, 'team', signal())).allowed).to.equal(true);
      const elsewhere = await engine.verifyImage(IMAGE, 'other', signal());
      expect(elsewhere.allowed).to.equal(false);
      expect(elsewhere.failures[0]!.code).to.equal('no-policy');
    });

    it('two trust servers that sign different digests for one tag deny the image', async () => {
      const second = new RepoForge({ now: NOW });
      second.addTarget('targets/releases', 'v2.0', manifest('something else'));
      const sources = new Map([
        ['https://a.test', new ForgedSource(forge.build(), 'https://a.test')],
        ['https://b.test', new ForgedSource(second.build(), 'https://b.test')],
      ]);
      const { engine } = rig(
        [policy('a', forge.build(), { server: 'https://a.test' }), policy('b', second.build(), { server: 'https://b.test' })],
        sources.get('https://a.test')!,
        { sources },
      );
      const v = await engine.verifyImage(IMAGE, undefined, signal());
      expect(v.allowed).to.equal(false);
      expect(v.pinned).to.equal(undefined);
      expect(v.failures.every((f) => f.code === 'digest-mismatch')).to.equal(true);
    });

    it('tag@digest must match the signed digest; a bare digest must be a signed target', async () => {
      const { engine } = rig([policy('a', forge.build())], new ForgedSource(forge.build()));
      const wrong = await engine.verifyImage(`${GUN}:v2.0@sha256:${'1'.repeat(64)}`, undefined, signal());
      expect(wrong.allowed).to.equal(false);
      expect(wrong.failures[0]!.code).to.equal('digest-mismatch');
      const right = await engine.verifyImage(`${GUN}:v2.0@${v2Digest}`, undefined, signal());
      expect(right).to.include({ allowed: true, pinned: `${GUN}:v2.0@${v2Digest}` });
      const bare = await engine.verifyImage(`${GUN}@${v2Digest}`, undefined, signal());
      expect(bare).to.include({ allowed: true, pinned: `${GUN}@${v2Digest}` });
      const unknown = await engine.verifyImage(`${GUN}@sha256:${'2'.repeat(64)}`, undefined, signal());
      expect(unknown.allowed).to.equal(false);
    });
  });

  describe('cache', () => {
    it('concurrent admissions of one repository share one fetch of each file', async () => {
      const { engine, source } = rig([policy('a', forge.build())], new ForgedSource(forge.build()));
      const verdicts = await Promise.all(Array.from({ length: 25 }, () => engine.verifyImage(IMAGE, undefined, signal())));
      expect(verdicts.every((v) => v.allowed)).to.equal(true);
      expect(Math.max(...source.fetches.values())).to.equal(1);
      expect(source.fetches.get('timestamp')).to.equal(1);
    });

    it('a warm hit fetches nothing; after the refresh interval only the timestamp is fetched again', async () => {
      const { engine, source, clock } = rig([policy('a', forge.build())], new ForgedSource(forge.build()), { refreshMs: 30_000 });
      await engine.verifyImage(IMAGE, undefined, signal());
      const cold = source.total();
      await engine.verifyImage(IMAGE, undefined, signal());
      expect(source.total()).to.equal(cold);
      clock.now = new Date(NOW.getTime() + 31_000);
      await engine.verifyImage(IMAGE, undefined, signal());
      await new Promise((r) => setTimeout(r, 20)); // the background refresh
      expect(source.total()).to.equal(cold + 1);
      expect(source.fetches.get('timestamp')).to.equal(2);
    });

    it('a new signature is seen after the refresh interval', async () => {
      const local = new RepoForge({ now: NOW });
      const source = new ForgedSource(local.build());
      const { engine, clock } = rig([policy('a', local.build())], source, { refreshMs: 1000 });
      expect((await engine.verifyImage(`${GUN}:v3.0`, undefined, signal())).allowed).to.equal(false);
      local.addTarget('targets/releases', 'v3.0', manifest('v3.0'));
      local.bump('targets/releases').bump('snapshot').bump('timestamp');
      source.repo = local.build();
      clock.now = new Date(NOW.getTime() + 2000);
      await engine.verifyImage(`${GUN}:v3.0`, undefined, signal()); // triggers the refresh
      await new Promise((r) => setTimeout(r, 20));
      expect((await engine.verifyImage(`${GUN}:v3.0`, undefined, signal())).allowed).to.equal(true);
    });

    it('serves verified metadata through an outage until it expires, and not one millisecond longer', async () => {
      const { engine, source, clock } = rig([policy('a', forge.build())], new ForgedSource(forge.build()), { refreshMs: 1000 });
      await engine.verifyImage(IMAGE, undefined, signal());
      source.behaviour = 'down';
      const expiry = NOW.getTime() + 14 * DAY; // the forged timestamp's lifetime
      clock.now = new Date(expiry - 1);
      const during = await engine.verifyImage(IMAGE, undefined, signal());
      expect(during.allowed).to.equal(true);
      clock.now = new Date(expiry);
      const after = await engine.verifyImage(IMAGE, undefined, signal());
      expect(after.allowed).to.equal(false);
      expect(after.failures[0]!.code).to.equal('unreachable');
      expect(after.failures[0]!.reason).to.include('https://notary.test:4443');
    });

    it('a trust server that stalls on a due refresh: answered from verified data after the refresh wait, not at the deadline', async () => {
      const { engine, source, clock } = rig([policy('a', forge.build())], new ForgedSource(forge.build()), { refreshMs: 1000, refreshWaitMs: 50 });
      await engine.verifyImage(IMAGE, undefined, signal());
      source.behaviour = 'stall';
      clock.now = new Date(NOW.getTime() + 2000);
      const timestampsBefore = source.fetches.get('timestamp')!;
      const started = Date.now();
      const v = await engine.verifyImage(IMAGE, undefined, AbortSignal.timeout(3000));
      expect(Date.now() - started, 'did not wait for the caller deadline').to.be.lessThan(2000);
      expect(v.allowed).to.equal(true);
      expect(v.digest).to.equal(v2Digest);
      expect(source.fetches.get('timestamp'), 'the refresh was really attempted').to.equal(timestampsBefore + 1);
      // Still stalled: the next admission shares the running refresh instead of starting another.
      expect((await engine.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(true);
      expect(source.fetches.get('timestamp')).to.equal(timestampsBefore + 1);
    });

    it('verifyCached answers from warm data only, exactly as verifyImage does, and never fetches', async () => {
      const local = new RepoForge({ now: NOW });
      const source = new ForgedSource(local.build());
      const pols = [policy('a', local.build()), policy('b', local.build(), { mode: 'warn', roles: ['targets/qa'] })];
      const { engine, clock } = rig(pols, source, { refreshMs: 1000 });
      expect(engine.verifyCached(IMAGE, undefined), 'cold: nothing to answer from').to.equal(undefined);
      expect(source.total()).to.equal(0);
      const slow = await engine.verifyImage(IMAGE, undefined, signal());
      const fetched = source.total();
      // Same verdict, warn failure and pin included; unsigned tags and bad references too.
      expect(engine.verifyCached(IMAGE, undefined)).to.deep.equal(slow);
      expect(slow.failures.map((f) => f.mode)).to.deep.equal(['warn']);
      expect(engine.verifyCached(`${GUN}:v9`, undefined)).to.deep.equal(await engine.verifyImage(`${GUN}:v9`, undefined, signal()));
      expect(engine.verifyCached('Bad//ref', undefined)).to.deep.include({ allowed: false });
      expect(source.total()).to.equal(fetched);
      // A due refresh is verifyImage's to make: no answer from data past the refresh interval.
      clock.now = new Date(NOW.getTime() + 1000);
      expect(engine.verifyCached(IMAGE, undefined)).to.equal(undefined);
      expect(source.total()).to.equal(fetched);
    });

    it('verifyCached needs every matching policy warm, and respects the max age', async () => {
      const source = new ForgedSource(forge.build());
      const other = new ForgedSource(forge.build(), 'https://other.test');
      const pols = [policy('a', forge.build()), policy('b', forge.build(), { server: 'https://other.test', maxAge: 1 })];
      const { engine, clock } = rig(pols, source, { sources: new Map([['https://other.test', other]]) });
      other.behaviour = 'down';
      expect((await engine.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(false);
      // Policy a's repository is warm, b's is not: no synchronous answer, and no half verdict.
      expect(engine.verifyCached(IMAGE, undefined)).to.equal(undefined);
      other.behaviour = 'serve';
      clock.now = new Date(NOW.getTime() + 10_000); // past the backoff of b's failed load
      await engine.verifyImage(IMAGE, undefined, signal());
      expect(engine.verifyCached(IMAGE, undefined)).to.deep.include({ allowed: true, digest: v2Digest });
      clock.now = new Date(NOW.getTime() + 11_001); // past b's max age of 1 s, inside the refresh interval
      expect(engine.verifyCached(IMAGE, undefined)).to.equal(undefined);
    });

    it('a policy max age stops cached metadata from serving once the trust server has been unreachable that long', async () => {
      const { engine, source, clock } = rig([policy('a', forge.build(), { maxAge: 3600 })], new ForgedSource(forge.build()), { refreshMs: 1000 });
      await engine.verifyImage(IMAGE, undefined, signal());
      source.behaviour = 'down';
      clock.now = new Date(NOW.getTime() + 3600_000);
      expect((await engine.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(true);
      clock.now = new Date(NOW.getTime() + 3600_001);
      const v = await engine.verifyImage(IMAGE, undefined, signal());
      expect(v.allowed).to.equal(false);
      expect(v.failures[0]!.code).to.equal('unreachable');
    });

    it('a cold cache with the trust server down denies with the reason', async () => {
      const source = new ForgedSource(forge.build());
      source.behaviour = 'down';
      const { engine } = rig([policy('a', forge.build())], source);
      const v = await engine.verifyImage(IMAGE, undefined, signal());
      expect(v.allowed).to.equal(false);
      expect(v.failures[0]).to.include({ code: 'unreachable', role: 'root' });
    });
  });

  it('denies a reference Docker accepts but Notary cannot name (IPv6 registry) with the reason, not as an unexpected error', async () => {
    const ipv6 = { ...policy('v6', forge.build()), spec: { ...policy('v6', forge.build()).spec, images: ['**'] } };
    const engine = new VerificationEngine({
      policies: { policiesFor: () => [ipv6] },
      sourceFor: (p, gun) => new HttpSource({ url: p.spec.trustServer.url, gun }),
      clock: () => NOW,
    });
    const v = await engine.verifyImage('[::1]:5000/app:v1', undefined, signal());
    expect(v.allowed).to.equal(false);
    expect(v.failures[0]).to.include({ code: 'invalid-reference', server: 'https://notary.test:4443' });
    expect(v.failures[0]!.reason).to.match(/cannot serve this repository: GUN "\[::1\]:5000\/app" contains "\["/);
  });

  it('a stalled trust server denies at the caller deadline, not later', async () => {
    const source = new ForgedSource(forge.build());
    source.behaviour = 'stall';
    const { engine } = rig([policy('a', forge.build())], source);
    const started = Date.now();
    const v = await engine.verifyImage(IMAGE, undefined, AbortSignal.timeout(100));
    expect(Date.now() - started).to.be.lessThan(4000);
    expect(v.allowed).to.equal(false);
    expect(v.failures[0]!.code).to.equal('timeout');
    expect(v.failures[0]!.reason).to.include('deadline');
  });

  it('high-water marks survive a restart: replayed older metadata is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-state-'));
    try {
      const local = new RepoForge({ now: NOW });
      const old = local.build();
      local.bump('timestamp').bump('snapshot').bump('targets');
      const newer = local.build();
      const first = rig([policy('a', old)], new ForgedSource(newer), { store: new FileVersionStore(join(dir, 'state.json')) });
      expect((await first.engine.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(true);
      // "Restart": a fresh engine and cache, the same state file, a server replaying old files.
      const second = rig([policy('a', old)], new ForgedSource(old), { store: new FileVersionStore(join(dir, 'state.json')) });
      const v = await second.engine.verifyImage(IMAGE, undefined, signal());
      expect(v.allowed).to.equal(false);
      expect(v.failures[0]).to.include({ code: 'rollback', role: 'timestamp' });
      // Without the state file the replay would have passed: the test depends on it.
      const amnesiac = rig([policy('a', old)], new ForgedSource(old));
      expect((await amnesiac.engine.verifyImage(IMAGE, undefined, signal())).allowed).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
