// One repository with 10,000 signed tags (targets/releases ~1.5 MB). Publishing that many
// tags with the notary CLI takes one process per tag (minutes), so the repository is made by
// the forge (real keys, real signatures, Notary's serialisation) and read through a
// DirSource from a bundle directory. Prints one JSON line.
//
//   node bigrepo.js [--tags 10000] [--cold-runs 7] [--lookups 20000]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DirSource } from '../../webhook/src/notary/dir-source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { manifest, RepoForge, sha256hex } from '../support/forge.js';
import { median, startProfiler } from './common.js';

export interface BigRepoResult {
  tags: number;
  delegationBytes: number;
  coldRunsMs: number[];
  coldMedianMs: number;
  warmLookups: number;
  warmLookupUs: number;
  /** Longest single warm lookup: how long the event loop was held at most. */
  warmMaxUs: number;
}

const { values } = parseArgs({
  options: {
    tags: { type: 'string', default: '10000' },
    'cold-runs': { type: 'string', default: '7' },
    lookups: { type: 'string', default: '20000' },
    /** Write a CPU profile of the cold runs only (the forge's own work left out) to this file. */
    'profile-cold': { type: 'string' },
  },
});
const TAGS = Number(values.tags);
const COLD_RUNS = Number(values['cold-runs']);
const LOOKUPS = Number(values.lookups);
const GUN = 'bench.test/big/app';

function tagName(i: number): string {
  return `v3.${Math.floor(i / 100)}.${i % 100}-build.${sha256hex(String(i)).slice(0, 12)}`;
}

async function main(): Promise<void> {
  const now = new Date();
  const forge = new RepoForge({ now, gun: GUN });
  const expected = new Map<string, string>();
  for (let i = 0; i < TAGS; i++) {
    const tag = tagName(i);
    // A third carry sha512 too, as `notary add` writes them; `addhash --sha256` writes only sha256.
    expected.set(tag, 'sha256:' + forge.addTarget('targets/releases', tag, manifest(tag), i % 3 === 0));
  }
  const repo = forge.build();
  const dir = mkdtempSync(join(tmpdir(), 'tg-bench-big-'));
  try {
    for (const [role, bytes] of repo.files) {
      const file = join(dir, `${role}.json`);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, bytes);
    }
    const policy: TrustPolicy = {
      kind: 'ClusterTrustPolicy',
      name: 'big',
      source: 'bench',
      spec: { images: ['**'], trustServer: { url: `file://${dir}` }, root: { keys: repo.rootPems, threshold: 1 }, mode: 'enforce' },
    };
    const engine = () =>
      new VerificationEngine({
        policies: { policiesFor: () => [policy] },
        sourceFor: (_p, gun) => new DirSource({ dir, gun }),
        cache: new RepositoryCache(),
      });
    const tags = [...expected.keys()];
    const pick = (i: number) => tags[(i * 7919) % tags.length]!;
    const check = (tag: string, v: { allowed: boolean; digest?: string; failures: { reason: string }[] }) => {
      if (!v.allowed || v.digest !== expected.get(tag)) {
        throw new Error(`${GUN}:${tag} not admitted with its signed digest: ${JSON.stringify(v.failures)}`);
      }
    };

    const coldRunsMs: number[] = [];
    const profiler = values['profile-cold'] ? await startProfiler() : undefined;
    for (let r = 0; r < COLD_RUNS; r++) {
      const e = engine();
      const tag = pick(r);
      const t0 = performance.now();
      const v = await e.verifyImage(`${GUN}:${tag}`, 'default', AbortSignal.timeout(30_000));
      coldRunsMs.push(performance.now() - t0);
      check(tag, v);
    }
    if (profiler) await profiler.stop(values['profile-cold']!);

    const warm = engine();
    await warm.verifyImage(`${GUN}:${pick(0)}`, 'default', AbortSignal.timeout(30_000));
    const signal = AbortSignal.timeout(600_000);
    let maxUs = 0;
    const t0 = performance.now();
    for (let i = 0; i < LOOKUPS; i++) {
      const tag = pick(i + 1);
      const s = performance.now();
      const v = await warm.verifyImage(`${GUN}:${tag}`, 'default', signal);
      const us = (performance.now() - s) * 1000;
      if (us > maxUs) maxUs = us;
      check(tag, v);
    }
    const warmUs = ((performance.now() - t0) * 1000) / LOOKUPS;
    const result: BigRepoResult = {
      tags: TAGS,
      delegationBytes: repo.get('targets/releases').length,
      coldRunsMs,
      coldMedianMs: median(coldRunsMs),
      warmLookups: LOOKUPS,
      warmLookupUs: warmUs,
      warmMaxUs: maxUs,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
