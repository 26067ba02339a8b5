// The updater's I/O order: on first contact every top-level file is asked for in one wave and
// every delegation in a second, yet nothing is trusted out of order, and bytes fetched by name
// before their hash was known are replaced by a hash-addressed fetch when they do not match.
import { expect } from 'chai';
import { loadRepository, type UpdateOptions } from '../../webhook/src/notary/updater.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import { pinFromPem, TufError } from '../../webhook/src/tuf/index.js';
import { certKey, ForgeKey, manifest, RepoForge, sha256hex, type ForgedRepo } from '../support/forge.js';
import { ForgedSource, update } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');

/** Holds every request until the test releases the current wave, and records the waves. */
class WaveSource implements MetadataSource {
  readonly server = 'https://notary.test:4443';
  readonly waves: string[][] = [[]];
  private pending: Array<() => void> = [];
  /** Override what a request by name (no hash) returns, to play a repository changing between requests. */
  byName = new Map<string, Buffer | 'fail'>();

  constructor(public repo: ForgedRepo) {}

  get gun(): string {
    return this.repo.gun;
  }

  fetch(req: MetadataRequest): Promise<Uint8Array> {
    const label = req.version ? `${req.version}.${req.role}` : req.sha256Hex ? `${req.role}#hash` : req.role;
    this.waves[this.waves.length - 1]!.push(label);
    return new Promise((resolve, reject) => {
      this.pending.push(() => {
        const override = req.sha256Hex || req.version ? undefined : this.byName.get(req.role);
        if (override === 'fail') return reject(new FetchError('http', this.server, req.role, 'HTTP 500'));
        const bytes = override ?? (req.version ? this.repo.roots[req.version - 1] : this.repo.files.get(req.role));
        if (!bytes) return reject(new FetchError('not-found', this.server, req.role, '404'));
        if (req.sha256Hex && sha256hex(bytes) !== req.sha256Hex) return reject(new FetchError('not-found', this.server, req.role, '404'));
        resolve(bytes);
      });
    });
  }

  /** Answers everything asked so far, then lets the updater run until it waits again. */
  async release(): Promise<void> {
    const now = this.pending;
    this.pending = [];
    this.waves.push([]);
    for (const answer of now) answer();
    await new Promise((r) => setTimeout(r, 5));
  }

  async drive<T>(p: Promise<T>): Promise<T> {
    let done = false;
    const settled = p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    void settled.then(() => (done = true));
    for (let i = 0; i < 20 && !done; i++) await this.release();
    const out = await settled;
    if ('error' in out) throw out.error;
    return out.value;
  }
}

function forge(): RepoForge {
  const f = new RepoForge({ now: NOW, sharedKeys: true });
  f.addTarget('targets/releases', 'v1', manifest('v1'));
  f.addTarget('targets/releases/nightly', 'nightly/1', manifest('nightly-1'));
  return f;
}

describe('notary updater: fetch waves', () => {
  it('first contact: root, timestamp, snapshot and targets in one wave, every delegation in the next', async () => {
    const f = forge();
    const source = new WaveSource(f.build());
    const repo = await source.drive(loadRepository(source, { pin: pinFromPem(f.build().rootPems, 1), now: NOW }));
    const waves = source.waves.filter((w) => w.length > 0);
    expect(waves[0]!.sort()).to.deep.equal(['root', 'snapshot', 'targets', 'timestamp']);
    expect(waves[1]!.sort()).to.deep.equal(['targets/qa#hash', 'targets/releases#hash', 'targets/releases/nightly#hash']);
    expect(waves).to.have.length(2);
    expect(repo.findInRole('targets/releases/nightly', 'nightly/1', NOW)).to.not.be.instanceOf(TufError);
  });

  it('a warm refresh asks only for the timestamp when nothing changed', async () => {
    const f = forge();
    const source = new WaveSource(f.build());
    const pin = pinFromPem(f.build().rootPems, 1);
    const first = await source.drive(loadRepository(source, { pin, now: NOW }));
    source.waves.length = 0;
    source.waves.push([]);
    await source.drive(loadRepository(source, { pin, now: NOW, previous: first }));
    expect(source.waves.flat()).to.deep.equal(['timestamp']);
  });

  it('a snapshot that changed between the early fetch and the timestamp is fetched again by hash and the new one trusted', async () => {
    const f = forge();
    const old = f.build();
    f.addTarget('targets/releases', 'v2', manifest('v2'));
    f.bump('targets/releases').bump('snapshot').bump('timestamp');
    const source = new WaveSource(f.build());
    source.byName.set('snapshot', old.get('snapshot'));
    source.byName.set('targets', old.get('targets'));
    const repo = await source.drive(loadRepository(source, { pin: pinFromPem(old.rootPems, 1), now: NOW }));
    expect(source.waves.flat()).to.include('snapshot#hash');
    expect(repo.findInRole('targets/releases', 'v2', NOW)).to.not.be.instanceOf(TufError);
  });

  it('an early fetch that failed is retried by hash; a failure of the timestamp itself is reported', async () => {
    const f = forge();
    const source = new WaveSource(f.build());
    source.byName.set('targets', 'fail');
    const repo = await source.drive(loadRepository(source, { pin: pinFromPem(f.build().rootPems, 1), now: NOW }));
    expect(source.waves.flat()).to.include('targets#hash');
    expect(repo.findInRole('targets/releases', 'v1', NOW)).to.not.be.instanceOf(TufError);

    const broken = new WaveSource(f.build());
    broken.byName.set('timestamp', 'fail');
    const e = await broken.drive(loadRepository(broken, { pin: pinFromPem(f.build().rootPems, 1), now: NOW })).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).to.be.instanceOf(FetchError);
    expect((e as FetchError).role).to.equal('timestamp');
  });

  it('early bytes are still verified: a forged snapshot served by name is refused, not trusted', async () => {
    const f = forge();
    const good = f.build();
    // Same length and shape, signed by a key the root does not list: the hash no longer
    // matches the timestamp, so the updater asks by hash, and the server has only that.
    const rogue = new RepoForge({ now: NOW });
    const source = new WaveSource(good);
    source.byName.set('snapshot', rogue.build().get('snapshot'));
    const repo = await source.drive(loadRepository(source, { pin: pinFromPem(good.rootPems, 1), now: NOW }));
    expect(source.waves.flat()).to.include('snapshot#hash');
    expect(repo.parts.snapshot.sha256).to.equal(sha256hex(good.get('snapshot')));

    // A snapshot whose bytes do match the timestamp but whose signature is bad is refused outright.
    const tampered = new RepoForge({ now: NOW, sharedKeys: true });
    tampered.signWith('snapshot', [rogue.keys.snapshot]);
    const bad = new WaveSource(tampered.build());
    const err = await bad.drive(loadRepository(bad, { pin: pinFromPem(tampered.build().rootPems, 1), now: NOW })).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).to.be.instanceOf(TufError);
    expect((err as TufError).code).to.equal('signature');
    expect((err as TufError).role).to.equal('snapshot');
  });
});

// The updater's own decisions, driven through a forged source that records every request:
// how the first root is found, when a warm refresh walks to a newer root, and the caps.
describe('notary updater: first-contact root walk', () => {
  it('trusts root.json directly when the pinned keys sign it, without asking for any versioned root', async () => {
    const f = forge();
    f.nextRoot().nextRoot();
    const { repo, source } = await update(f.build(), { pin: pinFromPem(f.build().rootPems), now: NOW });
    expect(repo.parts.root.meta.version).to.equal(3);
    expect(source.requests.filter((r) => /^\d+\.root$/.test(r))).to.deep.equal([]);
  });

  it('walks from version 1 when the root keys were rotated since they were pinned', async () => {
    const f = forge();
    const next = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    f.rotateRoot([next]).nextRoot();
    const r = f.build();
    const { repo, source } = await update(r, { pin: pinFromPem(r.rootPems), now: NOW });
    expect(repo.parts.root.meta.version).to.equal(3);
    expect(repo.parts.root.meta.roles.root.keyids).to.deep.equal([next.id]);
    expect(source.requests.filter((x) => /^\d+\.root$/.test(x)).sort()).to.deep.equal(['1.root', '2.root', '3.root']);
  });

  it('anchors at the first version the pinned keys sign when that is not version 1', async () => {
    const f = forge();
    const second = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    const third = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    f.rotateRoot([second]).rotateRoot([third]);
    const r = f.build();
    const { repo } = await update(r, { pin: pinFromPem([second.certPem!]), now: NOW });
    expect(repo.parts.root.meta.version).to.equal(3);
    expect(repo.parts.root.meta.roles.root.keyids).to.deep.equal([third.id]);
  });

  it('refuses a chain with a link the previous root did not sign, although root.json is validly self-signed', async () => {
    const f = forge();
    const mallory = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    f.rotateRoot([mallory], { signers: [mallory] });
    const r = f.build();
    const e = await failure(update(r, { pin: pinFromPem(r.rootPems), now: NOW }));
    expect(e).to.be.instanceOf(TufError);
    expect((e as TufError).code).to.equal('signature');
    expect((e as TufError).message).to.contain('root v2 is not signed by the keys of root v1');
  });

  it('refuses when no version is signed by the pinned keys, naming who signs version 1', async () => {
    const f = forge();
    f.nextRoot();
    const stranger = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    const { source, outcome } = await attempt(f.build(), { pin: pinFromPem([stranger.certPem!]), now: NOW });
    expect((outcome as TufError).code).to.equal('untrusted-root');
    expect((outcome as TufError).message).to.contain(`none of the pinned keys signs root v1; it is signed by ${f.keys.root[0]!.id.slice(0, 12)}…`);
    expect(source.requests.filter((x) => /^\d+\.root$/.test(x)).sort()).to.deep.equal(['1.root', '2.root']);
  });
});

describe('notary updater: rotation retry on a warm refresh', () => {
  it('walks to the newer root and retries once when the cached root no longer verifies the timestamp', async () => {
    const f = forge();
    const pin = pinFromPem(f.build().rootPems);
    const first = await update(f.build(), { pin, now: NOW });
    const nextRoot = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    const nextTimestamp = ForgeKey.ecdsa();
    f.rotateRoot([nextRoot]);
    f.setRoleKey('timestamp', [nextTimestamp]);
    f.bump('timestamp');
    const { repo, source } = await update(f.build(), { pin, now: NOW, previous: first.repo });
    expect(repo.parts.root.meta.version).to.equal(2);
    expect(repo.parts.root.meta.roles.timestamp.keyids).to.deep.equal([nextTimestamp.id]);
    expect(source.requests.slice(0, 3)).to.deep.equal(['timestamp', 'root', '2.root']);
    expect(source.fetches.get('timestamp')).to.equal(2);
    expect(source.fetches.get('1.root')).to.equal(undefined);
  });

  it('retries once only: what the newer root refuses too is reported', async () => {
    const f = forge();
    const pin = pinFromPem(f.build().rootPems);
    const first = await update(f.build(), { pin, now: NOW });
    f.rotateRoot([certKey(ForgeKey.ecdsa(), f.gun, NOW)]);
    f.signWith('timestamp', [ForgeKey.ecdsa()]);
    f.bump('timestamp');
    const { source, outcome } = await attempt(f.build(), { pin, now: NOW, previous: first.repo });
    expect((outcome as TufError).code).to.equal('signature');
    expect((outcome as TufError).role).to.equal('timestamp');
    expect(source.fetches.get('timestamp')).to.equal(2);
    expect(source.fetches.get('2.root')).to.equal(1);
  });

  it('reports the first failure when root.json is unchanged (no rotation to walk to)', async () => {
    const f = forge();
    const pin = pinFromPem(f.build().rootPems);
    const first = await update(f.build(), { pin, now: NOW });
    f.signWith('snapshot', [f.keys.timestamp]);
    f.bump('snapshot').bump('timestamp');
    const { source, outcome } = await attempt(f.build(), { pin, now: NOW, previous: first.repo });
    expect((outcome as TufError).code).to.equal('signature');
    expect((outcome as TufError).role).to.equal('snapshot');
    expect(source.fetches.get('root')).to.equal(1);
    expect(source.fetches.get('timestamp')).to.equal(1);
  });

  it('does not walk roots for failures a rotation cannot explain (an expired timestamp)', async () => {
    const f = forge();
    const pin = pinFromPem(f.build().rootPems);
    const first = await update(f.build(), { pin, now: NOW });
    f.expire('timestamp', -1000).bump('timestamp');
    const { source, outcome } = await attempt(f.build(), { pin, now: NOW, previous: first.repo });
    expect((outcome as TufError).code).to.equal('expired');
    expect(source.requests).to.deep.equal(['timestamp']);
  });

  it('does not retry on first contact: root.json was just walked', async () => {
    const f = forge();
    f.signWith('targets', [ForgeKey.ecdsa()]);
    const r = f.build();
    const { source, outcome } = await attempt(r, { pin: pinFromPem(r.rootPems), now: NOW });
    expect((outcome as TufError).code).to.equal('signature');
    expect(source.fetches.get('root')).to.equal(1);
  });
});

describe('notary updater: caps', () => {
  it(`maxRootVersions on first contact: a root.json claiming more versions is refused before any is fetched (default 256)`, async () => {
    const f = forge();
    f.setVersion('root', 257);
    const stranger = certKey(ForgeKey.ecdsa(), f.gun, NOW);
    const r = f.build();
    const { source, outcome } = await attempt(r, { pin: pinFromPem([stranger.certPem!]), now: NOW });
    expect((outcome as TufError).code).to.equal('too-large');
    expect((outcome as TufError).message).to.contain('root claims version 257; more than 256 versions are refused');
    expect(source.requests.filter((x) => /^\d+\.root$/.test(x))).to.deep.equal([]);

    const g = forge();
    g.rotateRoot([certKey(ForgeKey.ecdsa(), g.gun, NOW)]).nextRoot();
    const three = g.build();
    const capped = await attempt(three, { pin: pinFromPem(three.rootPems), now: NOW, maxRootVersions: 2 });
    expect((capped.outcome as TufError).message).to.contain('root claims version 3; more than 2 versions are refused');
    expect((await update(three, { pin: pinFromPem(three.rootPems), now: NOW, maxRootVersions: 3 })).repo.parts.root.meta.version).to.equal(3);
  });

  it('maxRootVersions on a rotation walk: more new versions than the cap are refused', async () => {
    const f = forge();
    const pin = pinFromPem(f.build().rootPems);
    const first = await update(f.build(), { pin, now: NOW });
    f.rotateRoot([certKey(ForgeKey.ecdsa(), f.gun, NOW)]).nextRoot().nextRoot();
    f.setRoleKey('timestamp', [ForgeKey.ecdsa()]);
    f.bump('timestamp');
    const r = f.build();
    const { source, outcome } = await attempt(r, { pin, now: NOW, previous: first.repo, maxRootVersions: 2 });
    expect((outcome as TufError).code).to.equal('too-large');
    expect((outcome as TufError).message).to.contain('3 new root versions; more than 2 are refused');
    expect(source.requests.filter((x) => /^\d+\.root$/.test(x))).to.deep.equal([]);
    expect((await update(r, { pin, now: NOW, previous: first.repo, maxRootVersions: 3 })).repo.parts.root.meta.version).to.equal(4);
  });

  it('maxDelegations: a tree with more delegations than the cap is refused, and the listed ones are not fetched ahead', async () => {
    const f = forge();
    const r = f.build();
    const pin = pinFromPem(r.rootPems);
    const { source, outcome } = await attempt(r, { pin, now: NOW, maxDelegations: 2 });
    expect((outcome as TufError).code).to.equal('too-large');
    expect((outcome as TufError).role).to.equal('targets/releases');
    expect((outcome as TufError).message).to.contain('more than 2 delegations');
    expect(source.requests).not.to.include('targets/releases/nightly#hash');
    const { repo } = await update(r, { pin, now: NOW, maxDelegations: 3 });
    expect(repo.roleNames()).to.deep.equal(['targets', 'targets/releases', 'targets/releases/nightly', 'targets/qa']);
  });

  it('maxDelegations defaults to 1024', async () => {
    const f = forge();
    for (let i = 0; i < 1023; i++) f.delegate('targets', `targets/t${i}`, [f.keys.nightly], [`t${i}/`]);
    const r = f.build();
    const { outcome } = await attempt(r, { pin: pinFromPem(r.rootPems), now: NOW });
    expect((outcome as TufError).code).to.equal('too-large');
    expect((outcome as TufError).message).to.contain('more than 1024 delegations');
  });
});

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('expected a refusal'),
    (e: unknown) => e,
  );
}

/** Run the updater and keep both what it asked for and how it ended. */
async function attempt(r: ForgedRepo, opts: UpdateOptions): Promise<{ source: ForgedSource; outcome: unknown }> {
  const source = new ForgedSource(r);
  const outcome = await loadRepository(source, opts).then(
    () => expect.fail('expected a refusal'),
    (e: unknown) => e,
  );
  if (!(outcome instanceof TufError)) throw outcome;
  return { source, outcome };
}
