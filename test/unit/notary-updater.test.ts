// The updater's I/O order: on first contact every top-level file is asked for in one wave and
// every delegation in a second, yet nothing is trusted out of order, and bytes fetched by name
// before their hash was known are replaced by a hash-addressed fetch when they do not match.
import { expect } from 'chai';
import { loadRepository } from '../../webhook/src/notary/updater.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import { pinFromPem, TufError } from '../../webhook/src/tuf/index.js';
import { manifest, RepoForge, sha256hex, type ForgedRepo } from '../support/forge.js';

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
