// Memory of the verification engine: RSS growth with 1,000 repositories cached, and that
// 100,000 distinct images (10,000 more repositories x 10 tags) stay within the cache's cap.
// Repositories are forged (real keys and signatures; one wildcard root certificate
// "bench.test/mem/*" so key generation is paid once) and served by a custom sourceFor that
// hands out a fresh copy of the bytes on every fetch, as a network would. Run with
// --expose-gc; prints one JSON line.
import { parseArgs } from 'node:util';
import { MemoryVersionStore } from '../../webhook/src/verify/version-store.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { manifest, RepoForge, type ForgedRepo } from '../support/forge.js';
import { startProfiler } from './common.js';

export interface MemoryResult {
  repositories: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  growthMb: number;
  heapGrowthMb: number;
  capEntries: number;
  capRepositories: number;
  capImages: number;
  /** RSS (after GC) when the cache first reached its cap, and the highest and last value after. */
  rssAtCapMb: number;
  rssMaxAfterCapMb: number;
  rssEndMb: number;
  heapAtCapMb: number;
  heapEndMb: number;
  cacheSizeEnd: number;
  seconds: number;
  /** Average first verification of a small repository (7 files, 7 signatures). */
  coldMsPerRepo: number;
  externalMb: number;
  /** RSS after GC every 1,000 repositories past the first phase. */
  rssSeriesMb: number[];
  /** Off-heap memory with the 1,000 repositories cached (Buffers and their pool slabs). */
  externalGrowthMb: number;
  arrayBuffersGrowthMb: number;
}

const { values } = parseArgs({
  options: {
    repos: { type: 'string', default: '1000' },
    'cap-repos': { type: 'string', default: '10000' },
    tags: { type: 'string', default: '10' },
    /** CPU profile of the 1,000-repository phase to this file. */
    profile: { type: 'string' },
  },
});
const REPOS = Number(values.repos);
const CAP_REPOS = Number(values['cap-repos']);
const TAGS_PER_REPO = Number(values.tags);
const DISTINCT_BYTES = Math.min(1000, REPOS);

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const MB = 1024 * 1024;

function settle(): { rss: number; heap: number } {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return { rss: m.rss / MB, heap: m.heapUsed / MB };
}

function bundleSource(repo: ForgedRepo, gun: string): MetadataSource {
  return {
    server: 'https://notary.bench.test',
    gun,
    async fetch(req: MetadataRequest): Promise<Uint8Array> {
      const bytes = req.version ? repo.roots[req.version - 1] : repo.files.get(req.role);
      if (!bytes) throw new FetchError('not-found', this.server, req.role, '404');
      if (bytes.length > req.maxBytes) throw new FetchError('too-large', this.server, req.role, 'too large');
      return new Uint8Array(bytes);
    },
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const now = new Date();
  const bundles: ForgedRepo[] = [];
  const digests: string[][] = [];
  for (let b = 0; b < DISTINCT_BYTES; b++) {
    const forge = new RepoForge({ now, gun: 'bench.test/mem/*', sharedKeys: true });
    const tags: string[] = [];
    for (let t = 0; t < TAGS_PER_REPO; t++) tags.push('sha256:' + forge.addTarget('targets/releases', `t${t}`, manifest(`bundle ${b} tag ${t}`)));
    bundles.push(forge.build());
    digests.push(tags);
  }
  const policy: TrustPolicy = {
    kind: 'ClusterTrustPolicy',
    name: 'mem',
    source: 'bench',
    spec: { images: ['**'], trustServer: { url: 'https://notary.bench.test' }, root: { keys: bundles[0]!.rootPems, threshold: 1 }, mode: 'enforce' },
  };
  const cache = new RepositoryCache();
  const engine = new VerificationEngine({
    policies: { policiesFor: () => [policy] },
    sourceFor: (_p, gun) => bundleSource(bundles[Number(gun.slice(gun.lastIndexOf('r') + 1)) % DISTINCT_BYTES]!, gun),
    cache,
    versions: new MemoryVersionStore(),
  });
  const signal = AbortSignal.timeout(600_000);
  const admit = async (repo: number, tag: number) => {
    const v = await engine.verifyImage(`bench.test/mem/r${repo}:t${tag}`, 'default', signal);
    const want = digests[repo % DISTINCT_BYTES]![tag];
    if (!v.allowed || v.digest !== want) throw new Error(`r${repo}:t${tag} not admitted: ${JSON.stringify(v.failures)}`);
  };

  const before = settle();
  const beforeUsage = process.memoryUsage();
  const profiler = values.profile ? await startProfiler() : undefined;
  const t0 = performance.now();
  for (let r = 0; r < REPOS; r++) await admit(r, 0);
  const coldMsPerRepo = (performance.now() - t0) / REPOS;
  if (profiler) await profiler.stop(values.profile!);
  const after = settle();
  const afterUsage = process.memoryUsage();
  if (cache.size !== REPOS) throw new Error(`expected ${REPOS} cached repositories, found ${cache.size}`);

  // Past the cap: every repository once, all its tags while it is the newest entry.
  let atCap: { rss: number; heap: number } | undefined;
  let maxAfter = 0;
  const series: number[] = [];
  for (let r = REPOS; r < REPOS + CAP_REPOS; r++) {
    for (let t = 0; t < TAGS_PER_REPO; t++) await admit(r, t);
    if (r % 1000 === 999) {
      const m = settle();
      series.push(Math.round(m.rss));
      if (!atCap && cache.size >= cache.maxEntries) atCap = m;
      else if (atCap) maxAfter = Math.max(maxAfter, m.rss);
    }
  }
  const end = settle();
  if (!atCap && CAP_REPOS > 0) throw new Error('the cache never reached its cap');
  atCap ??= { rss: NaN, heap: NaN };
  const result: MemoryResult = {
    repositories: REPOS,
    rssBeforeMb: before.rss,
    rssAfterMb: after.rss,
    growthMb: after.rss - before.rss,
    heapGrowthMb: after.heap - before.heap,
    capEntries: cache.maxEntries,
    capRepositories: CAP_REPOS,
    capImages: CAP_REPOS * TAGS_PER_REPO,
    rssAtCapMb: atCap.rss,
    rssMaxAfterCapMb: maxAfter,
    rssEndMb: end.rss,
    heapAtCapMb: atCap.heap,
    heapEndMb: end.heap,
    cacheSizeEnd: cache.size,
    seconds: (performance.now() - started) / 1000,
    coldMsPerRepo,
    rssSeriesMb: series,
    externalGrowthMb: (afterUsage.external - beforeUsage.external) / MB,
    arrayBuffersGrowthMb: (afterUsage.arrayBuffers - beforeUsage.arrayBuffers) / MB,
    externalMb: process.memoryUsage().external / MB,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
