// The verified-repository cache on its own: the promise-free warm path (peek), the bounded
// LRU order, and the wait on a slow refresh.
import { expect } from 'chai';
import type { TrustedRepository } from '../../webhook/src/tuf/index.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';

const T0 = Date.parse('2031-06-01T12:00:00Z');

function fakeRepo(label: string, expiresAt = T0 + 86_400_000): TrustedRepository {
  return { label, expires: new Date(expiresAt) } as unknown as TrustedRepository;
}

describe('repository cache', () => {
  it('peek answers only inside the refresh interval and the max age, and never for a key not loaded', async () => {
    const clock = { now: T0 };
    const cache = new RepositoryCache({ clock: () => new Date(clock.now), refreshIntervalMs: 1000 });
    expect(cache.peek('a')).to.equal(undefined);
    await cache.get('a', async () => fakeRepo('a'));
    expect(cache.peek('a')?.repo).to.include({ label: 'a' });
    clock.now = T0 + 999;
    expect(cache.peek('a', 500), 'older than the policy max age').to.equal(undefined);
    expect(cache.peek('a')?.hit).to.equal(true);
    clock.now = T0 + 1000;
    expect(cache.peek('a'), 'a refresh is due: get decides').to.equal(undefined);
  });

  it('peek never serves expired data, even inside the refresh interval', async () => {
    const clock = { now: T0 };
    const cache = new RepositoryCache({ clock: () => new Date(clock.now), refreshIntervalMs: 60_000 });
    await cache.get('a', async () => fakeRepo('a', T0 + 10));
    clock.now = T0 + 10;
    expect(cache.peek('a')).to.equal(undefined);
  });

  it('keeps no entry for a repository whose first load failed, but keeps verified data whose refresh failed', async () => {
    const clock = { now: T0 };
    const cache = new RepositoryCache({ clock: () => new Date(clock.now), refreshIntervalMs: 1000 });
    const down = async (): Promise<TrustedRepository> => {
      throw new Error('connection refused');
    };
    for (let i = 0; i < 50; i++) await cache.get(`unknown-${i}`, down).catch(() => undefined);
    expect(cache.size, 'a stream of unknown images leaves nothing behind').to.equal(0);
    await cache.get('known', async () => fakeRepo('v1'));
    clock.now = T0 + 2000;
    expect((await cache.get('known', down)).repo).to.include({ label: 'v1' });
    expect(cache.size).to.equal(1);
  });

  it('stays within its bound and evicts what was used least recently, keeping a key in steady use', async () => {
    const cache = new RepositoryCache({ maxEntries: 10 });
    let loads = 0;
    const load = (label: string) => async () => {
      loads++;
      return fakeRepo(label);
    };
    await cache.get('hot', load('hot'));
    for (let i = 0; i < 100; i++) {
      await cache.get(`cold-${i}`, load(`cold-${i}`));
      expect(cache.peek('hot'), `hot survives insert ${i}`).to.not.equal(undefined);
      expect(cache.size).to.be.at.most(10);
    }
    expect(loads).to.equal(101);
    // The oldest cold keys are gone: asking again loads them again.
    await cache.get('cold-0', load('cold-0'));
    expect(loads).to.equal(102);
  });

  it('a refresh slower than the wait is not waited for while verified data is valid; the next caller shares it', async () => {
    const clock = { now: T0 };
    const cache = new RepositoryCache({ clock: () => new Date(clock.now), refreshIntervalMs: 1000, refreshWaitMs: 20 });
    await cache.get('a', async () => fakeRepo('v1'));
    clock.now = T0 + 5000;
    let release!: (r: TrustedRepository) => void;
    let calls = 0;
    const slow = () => {
      calls++;
      return new Promise<TrustedRepository>((r) => (release = r));
    };
    const first = await cache.get('a', slow);
    expect(first.repo).to.include({ label: 'v1' });
    expect(first.refreshError).to.be.a('string');
    const second = await cache.get('a', slow);
    expect(second.repo).to.include({ label: 'v1' });
    expect(calls, 'one refresh, shared').to.equal(1);
    release(fakeRepo('v2'));
    await new Promise((r) => setImmediate(r));
    expect((await cache.get('a', slow)).repo).to.include({ label: 'v2' });
  });
});
