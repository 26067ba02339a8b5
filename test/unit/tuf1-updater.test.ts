// The TUF 1.0 client from the attacker's side: a repository (built by @tufjs/models) that a
// compromised server alters, driven through the real updater (tufrepo/updater.ts) as
// python-tuf's tests drive Updater through their RepositorySimulator.
import { expect } from 'chai';
import { refreshSpecRepository, type SpecLocalMetadata, type SpecRefreshOptions } from '../../webhook/src/tufrepo/updater.js';
import { quoteRoleName } from '../../webhook/src/tufrepo/file-names.js';
import { pinFromPem } from '../../webhook/src/tuf/pinning.js';
import { TufError } from '../../webhook/src/tuf/errors.js';
import { epochKey, SpecTrustedSet } from '../../webhook/src/tuf/tuf1/trusted-set.js';
import { FetchError, type SpecFileRequest } from '../../webhook/src/tufrepo/source.js';
import { DAY, TufRepo, makeKey } from '../support/tuf1-repo.js';
import { MemorySpecSource } from '../support/tuf1-memory-source.js';
import { createPublicKey } from 'node:crypto';

async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
}

function refresh(repo: TufRepo, source: MemorySpecSource, extra: Partial<SpecRefreshOptions> = {}) {
  return refreshSpecRepository(source, { bootstrap: { trustedRoot: repo.roots.get(1)! }, now: repo.now, ...extra });
}

const APP = 'registry.example.com/payments/app:1.0';

describe('TUF 1.0 updater against a hostile repository', function () {
  this.timeout(60_000);

  it('finds an image target through a delegation and fetches only what the walk needs', async () => {
    const repo = new TufRepo();
    repo.delegate('payments', { paths: ['registry.example.com/payments/*'] });
    repo.delegate('web', { paths: ['registry.example.com/web/*'] });
    const t = repo.addTarget('payments', APP, '{"schemaVersion":2}');
    const source = new MemorySpecSource(repo.publish());
    const r = await refresh(repo, source);
    const found = await r.findTarget(APP);
    expect(found?.role).to.equal('payments');
    expect(found?.target.hashes['sha256']).to.equal(t.hashes['sha256']);
    expect(source.requests).to.deep.equal(['2.root.json', 'timestamp.json', '1.snapshot.json', '1.targets.json', '1.payments.json']);
    expect(await r.findTarget('registry.example.com/payments/app:2.0')).to.equal(undefined);
  });

  it('requests timestamp.json during the root walk but verifies it with the final root: a rotated-out timestamp key is refused', async () => {
    const repo = new TufRepo();
    repo.addTarget('targets', APP, 'm');
    repo.publish();
    const oldTimestamp = repo.signers.get('timestamp')!;
    repo.signers.set('timestamp', repo.rotate('timestamp'));
    repo.publishRoot();
    // A source that holds the first root answer until timestamp.json is asked for (at most 2 s).
    class Overlapping extends MemorySpecSource {
      overlapped = false;
      private release!: () => void;
      private readonly asked = new Promise<void>((r) => (this.release = r));
      override async fetch(req: SpecFileRequest): Promise<Uint8Array> {
        const answer = super.fetch(req);
        if (req.file === 'timestamp.json') this.release();
        else if (req.file === '2.root.json') this.overlapped = await Promise.race([this.asked.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
        return answer;
      }
    }
    const good = new Overlapping(repo.publish({ bump: ['timestamp'] }));
    const r = await refresh(repo, good);
    expect(r.trusted.root.version).to.equal(2);
    expect(good.overlapped, 'timestamp.json requested while 2.root.json was in flight').to.equal(true);
    expect(good.requests.slice(0, 3)).to.deep.equal(['2.root.json', 'timestamp.json', '3.root.json']);
    expect((await r.findTarget(APP))?.role).to.equal('targets');

    // The attacker serves a timestamp signed by the key root 2 removed; root 1 (trusted when
    // it was requested) would have accepted it.
    repo.signers.set('timestamp', oldTimestamp);
    const bad = new Overlapping(repo.publish({ bump: ['timestamp'] }));
    const e = await refresh(repo, bad).then(
      () => expect.fail('a timestamp signed by a rotated-out key was accepted'),
      (err: unknown) => err as TufError,
    );
    expect(e).to.be.instanceOf(TufError);
    expect(e.role).to.equal('timestamp');
  });

  it('asked to, requests the sibling roles its search visits next together, but verifies them in order, and only those it reaches', async () => {
    const repo = new TufRepo();
    const payments = ['registry.example.com/payments/*'];
    repo.delegate('qa', { paths: payments });
    repo.delegate('web', { paths: ['registry.example.com/web/*'] });
    repo.delegate('ops', { paths: payments });
    repo.delegate('releases', { paths: payments, terminating: true });
    repo.delegate('late', { paths: payments });
    repo.addTarget('qa', APP, 'qa');
    repo.addTarget('releases', 'registry.example.com/payments/app:2.0', 'r');
    repo.signers.set('ops', [makeKey()]); // ops.json carries no valid signature
    const source = new MemorySpecSource(repo.publish());
    const r = await refresh(repo, source);
    // Found in qa: ops and releases were requested alongside it, and ops's bad file decided nothing.
    expect((await r.withRoles(() => r.findTargetLoaded(APP), undefined, APP))?.role).to.equal('qa');
    expect(source.requests.slice(4)).to.deep.equal(['1.qa.json', '1.ops.json', '1.releases.json']);
    // Not web (not trusted for the path), not late (after a terminating role).
    // A path only releases lists: the walk reaches ops first, and ops fails it.
    const other = 'registry.example.com/payments/app:2.0';
    const e = await r.withRoles(() => r.findTargetLoaded(other), undefined, other).then(
      () => expect.fail('a lookup passed a role with an invalid signature'),
      (err: unknown) => err as TufError,
    );
    expect(e).to.be.instanceOf(TufError);
    expect(e.role).to.equal('ops');
    expect(r.trusted.targets('releases'), 'releases is never verified before ops').to.equal(undefined);
    // Not asked to (the specification's client, the conformance adapter): only what the walk visits.
    const plain = new MemorySpecSource(repo.publish());
    expect((await (await refresh(repo, plain)).findTarget(APP))?.role).to.equal('qa');
    expect(plain.requests.slice(4)).to.deep.equal(['1.qa.json']);
  });

  it('bootstraps from pinned keys that sign 1.root.json, and names the signers when they do not', async () => {
    const repo = new TufRepo({ kinds: { root: 'ecdsa-p256' } });
    repo.addTarget('targets', APP, 'm');
    const source = new MemorySpecSource(repo.publish());
    const rootKey = repo.signers.get('root')![0]!;
    const pem = createPublicKey(rootKey.privateKey).export({ format: 'pem', type: 'spki' }).toString();
    const r = await refreshSpecRepository(source, { bootstrap: { pin: pinFromPem([pem]) }, now: repo.now });
    expect((await r.findTarget(APP))?.role).to.equal('targets');
    const other = makeKey('ecdsa-p256');
    const otherPem = createPublicKey(other.privateKey).export({ format: 'pem', type: 'spki' }).toString();
    const e = await refusal(refreshSpecRepository(source, { bootstrap: { pin: pinFromPem([otherPem]) }, now: repo.now }));
    expect(e).to.be.instanceOf(TufError);
    expect((e as TufError).code).to.equal('untrusted-root');
    expect(e.message).to.contain('0 of the pinned keys sign root v1').and.contain(`it is signed by ${rootKey.id}`);
  });

  it('walks root rotations, and stops after the maximum number of rotations', async () => {
    const repo = new TufRepo();
    repo.publishRoot();
    for (let v = 2; v <= 5; v++) {
      const old = repo.signers.get('root')!;
      repo.signers.set('root', repo.rotate('root'));
      repo.publishRoot(old);
    }
    const source = new MemorySpecSource(repo.publish());
    expect((await refresh(repo, source)).trusted.root.version).to.equal(5);
    // With a cap of 2 the walk ends at v3, whose timestamp keys still sign: what was walked is trusted.
    const capped = await refresh(repo, new MemorySpecSource(repo.publish()), { config: { maxRootRotations: 2 } });
    expect(capped.trusted.root.version).to.equal(3);
  });

  it('refuses a rollback of timestamp, snapshot and targets below the versions already trusted', async () => {
    const repo = new TufRepo();
    repo.addTarget('targets', APP, 'v1');
    const old = repo.publish();
    const first = await refresh(repo, new MemorySpecSource(old));
    repo.addTarget('targets', APP, 'v2');
    const newer = await refresh(repo, new MemorySpecSource(repo.publish({ bump: ['targets', 'snapshot', 'timestamp'] })), { floor: first.versionFloor() });
    const floor = newer.versionFloor();
    expect(floor.get(epochKey('timestamp', newer.trusted.root))).to.equal(2);
    // The attacker replays the old, validly signed, unexpired files.
    const e = await refusal(refresh(repo, new MemorySpecSource(old), { floor }));
    expect((e as TufError).code).to.equal('rollback');
    expect((e as TufError).role).to.equal('timestamp');
  });

  it('refuses frozen metadata once it expires (freeze attack)', async () => {
    const repo = new TufRepo();
    const source = new MemorySpecSource(repo.publish());
    const e = await refusal(refresh(repo, source, { now: new Date(repo.now.getTime() + 1.5 * DAY) }));
    expect([(e as TufError).code, (e as TufError).role]).to.deep.equal(['expired', 'timestamp']);
  });

  it('refuses mix-and-match: a snapshot of another version under the current timestamp', async () => {
    const repo = new TufRepo({ consistentSnapshot: false });
    const v1 = repo.publish();
    const v2 = repo.publish({ bump: ['snapshot', 'timestamp'] });
    v2.set('snapshot.json', v1.get('snapshot.json')!);
    const e = await refusal(refresh(repo, new MemorySpecSource(v2)));
    expect((e as TufError).code).to.be.oneOf(['hash-mismatch', 'rollback']);
  });

  it('refuses endless data: a timestamp over its cap is never read past the cap', async () => {
    const repo = new TufRepo();
    const files = repo.publish();
    const big = JSON.parse(files.get('timestamp.json')!.toString());
    big.padding = 'x'.repeat(20_000);
    files.set('timestamp.json', Buffer.from(JSON.stringify(big)));
    const e = await refusal(refresh(repo, new MemorySpecSource(files)));
    expect(e).to.be.instanceOf(FetchError);
    expect((e as FetchError).kind).to.equal('too-large');
  });

  describe('with a local metadata store (a persistent client, python-tuf\'s metadata directory)', () => {
    class MemoryStore implements SpecLocalMetadata {
      readonly files = new Map<string, Uint8Array>();
      readonly writes: string[] = [];
      async read(role: string) {
        return this.files.get(role);
      }
      async write(role: string, bytes: Uint8Array) {
        this.writes.push(role);
        this.files.set(role, bytes);
      }
    }

    it('writes each file right after it verifies, reuses stored files that are still current, and never writes a refused one', async () => {
      const repo = new TufRepo();
      repo.delegate('payments', { paths: ['registry.example.com/payments/*'] });
      repo.addTarget('payments', APP, 'm');
      repo.publishRoot();
      repo.publishRoot(); // a second root version, so there is a root for the walk to store
      const store = new MemoryStore();
      const source = new MemorySpecSource(repo.publish());
      const first = await refresh(repo, source, { local: store });
      await first.findTarget(APP);
      expect(store.writes).to.deep.equal(['root', 'timestamp', 'snapshot', 'targets', 'payments']);
      expect(Buffer.from(store.files.get('root')!).equals(repo.roots.get(2)!)).to.equal(true);

      store.writes.length = 0;
      source.requests.length = 0;
      const bootstrap = { trustedRoot: store.files.get('root')! };
      const again = await refreshSpecRepository(source, { bootstrap, now: repo.now, local: store });
      expect((await again.findTarget(APP))?.role).to.equal('payments');
      expect(source.requests).to.deep.equal(['3.root.json', 'timestamp.json']);
      expect(store.writes).to.deep.equal([]);

      // A new snapshot that fails (expired) is not written; the verified timestamp before it is.
      (repo.snapshot.signed as { expires: string }).expires = repo.expiresIn(-1);
      source.files = repo.publish({ bump: ['snapshot', 'timestamp'] });
      const e = await refusal(refreshSpecRepository(source, { bootstrap, now: repo.now, local: store }));
      expect([(e as TufError).code, (e as TufError).role]).to.deep.equal(['expired', 'snapshot']);
      expect(store.writes).to.deep.equal(['timestamp']);
    });

    it('treats a stored file that no longer verifies as absent, and a stored timestamp as the floor of the next', async () => {
      const repo = new TufRepo({ consistentSnapshot: false });
      const store = new MemoryStore();
      const v1 = repo.publish();
      await refresh(repo, new MemorySpecSource(v1), { local: store });
      store.files.set('snapshot', Buffer.from('not json'));
      const source = new MemorySpecSource(repo.publish({ bump: ['timestamp'] }));
      await refresh(repo, source, { local: store });
      expect(source.requests).to.deep.equal(['2.root.json', 'timestamp.json', 'snapshot.json']);
      const e = await refusal(refresh(repo, new MemorySpecSource(v1), { local: store }));
      expect([(e as TufError).code, (e as TufError).role]).to.deep.equal(['rollback', 'timestamp']);
    });
  });

  it('recovers from a fast-forward attack once the timestamp key is rotated', async () => {
    const repo = new TufRepo();
    const files = repo.publish();
    // A stolen timestamp key signed version 1000; the floor remembers it.
    const fastForwarded = new Map([['root', 1], [epochKey('timestamp', new SpecTrustedSet(repo.roots.get(1)!, repo.now).root), 1000]]);
    expect(((await refusal(refresh(repo, new MemorySpecSource(files), { floor: fastForwarded }))) as TufError).code).to.equal('rollback');
    const oldRoot = repo.signers.get('root')!;
    repo.signers.set('timestamp', repo.rotate('timestamp'));
    repo.publishRoot(oldRoot);
    const r = await refresh(repo, new MemorySpecSource(repo.publish()), { floor: fastForwarded });
    expect(r.trusted.timestamp!.version).to.equal(1);
  });

  it('quotes a role name so it cannot leave the metadata directory', async () => {
    const repo = new TufRepo();
    const evil = '../../secrets/x?y#z%2e';
    repo.delegate(evil, { paths: ['registry.example.com/*/*'] });
    repo.addTarget(evil, APP, 'm');
    const files = repo.publish();
    const quoted = `1.${quoteRoleName(evil)}.json`;
    expect(quoted).to.equal('1...%2F..%2Fsecrets%2Fx%3Fy%23z%252e.json');
    const stored = files.get(`1.${evil}.json`)!;
    files.delete(`1.${evil}.json`);
    files.set(quoted, stored);
    const source = new MemorySpecSource(files);
    const r = await refresh(repo, source);
    expect((await r.findTarget(APP))?.role).to.equal(evil);
    expect(source.requests).to.include(quoted);
  });

  it('looks target paths up as exact strings: "..", "%" and URL-significant characters match nothing else', async () => {
    const repo = new TufRepo();
    repo.addTarget('targets', 'registry.example.com/a/../b:1', 'dots');
    repo.addTarget('targets', 'registry.example.com/a%2Fb:1', 'percent');
    const r = await refresh(repo, new MemorySpecSource(repo.publish()));
    expect(await r.findTarget('registry.example.com/b:1')).to.equal(undefined);
    expect(await r.findTarget('registry.example.com/a/b:1')).to.equal(undefined);
    expect((await r.findTarget('registry.example.com/a%2Fb:1'))?.target.length).to.equal(7);
  });

  it('reports the roles of a path, so a required role that a terminating role shadows is seen as unreachable', async () => {
    const repo = new TufRepo();
    repo.delegate('ci', { paths: ['registry.example.com/payments/*'], terminating: true });
    repo.delegate('releases', { paths: ['registry.example.com/payments/*'] });
    repo.addTarget('releases', APP, 'm');
    const r = await refresh(repo, new MemorySpecSource(repo.publish()));
    const roles = await r.rolesForPath(APP);
    expect([...roles.keys()]).to.deep.equal(['targets', 'ci']);
    expect(roles.has('releases')).to.equal(false);
  });

  it('refuses a delegated role signed by a key its parent did not name', async () => {
    const repo = new TufRepo();
    repo.delegate('payments', { paths: ['registry.example.com/payments/*'] });
    repo.addTarget('payments', APP, 'm');
    repo.signers.set('payments', [makeKey('ed25519')]);
    const r = await refresh(repo, new MemorySpecSource(repo.publish()));
    const e = await refusal(r.findTarget(APP));
    expect([(e as TufError).code, (e as TufError).role]).to.deep.equal(['signature', 'payments']);
  });
});
