// One repository with 10,000 signed tags in targets/releases (~1.5 MB): cold verification
// (a fresh engine, nothing cached) and warm lookups (µs per verifyImage on a warm cache).
// Two ways to get the repository, and the output says which:
// - `--remote FILE`: published by the bench with the notary CLI on the real stack and read
//   through an HttpSource (FILE: JSON {url, gun, caPem, rootPem, expected: {tag: digest}});
// - otherwise: made by the forge (real keys and signatures, Notary's serialisation) and read
//   through a DirSource from a bundle directory.
// Prints one JSON line.
//
//   node bigrepo.js [--remote FILE] [--tags 10000] [--cold-runs 7] [--lookups 20000] [--profile-cold FILE]
import https from 'node:https';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DirSource } from '../../webhook/src/notary/dir-source.js';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import type { MetadataSource } from '../../webhook/src/notary/source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { LoadWorkers } from '../../webhook/src/verify/load-workers.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { manifest, RepoForge } from '../support/forge.js';
import { bigTagName, median, startProfiler } from './common.js';

export interface BigRepoResult {
  /** 'notary CLI, real notary-server' or 'forge, DirSource'. */
  origin: string;
  tags: number;
  delegationBytes: number;
  coldRunsMs: number[];
  coldMedianMs: number;
  warmLookups: number;
  warmLookupUs: number;
  /** Longest single warm lookup: how long the event loop was held at most. */
  warmMaxUs: number;
}

export interface RemoteBigRepo {
  url: string;
  gun: string;
  caPem: string;
  rootPem: string;
  expected: Record<string, string>;
}

const { values } = parseArgs({
  options: {
    remote: { type: 'string' },
    tags: { type: 'string', default: '10000' },
    'cold-runs': { type: 'string', default: '7' },
    lookups: { type: 'string', default: '20000' },
    /** Write a CPU profile of the cold runs only (the forge's own work left out) to this file. */
    'profile-cold': { type: 'string' },
  },
});
const COLD_RUNS = Number(values['cold-runs']);
const LOOKUPS = Number(values.lookups);

interface Setup {
  origin: string;
  gun: string;
  policy: TrustPolicy;
  sourceFor: (gun: string) => MetadataSource;
  expected: Map<string, string>;
  cleanup(): void;
}

function remoteSetup(file: string): Setup {
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as RemoteBigRepo;
  // One pool for every engine, as a running webhook has: "cold" means no verified data, not no TCP connection.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 32 });
  return {
    origin: 'notary CLI, real notary-server',
    gun: cfg.gun,
    policy: {
      kind: 'ClusterTrustPolicy',
      name: 'big',
      source: 'bench',
      spec: { images: ['**'], trustServer: { url: cfg.url, caBundle: cfg.caPem }, root: { keys: [cfg.rootPem], threshold: 1 }, mode: 'enforce' },
    },
    sourceFor: (gun) => new HttpSource({ url: cfg.url, gun, caBundle: cfg.caPem, agent }),
    expected: new Map(Object.entries(cfg.expected)),
    cleanup: () => agent.destroy(),
  };
}

function forgedSetup(tags: number): Setup {
  const gun = 'bench.test/big/app';
  const forge = new RepoForge({ now: new Date(), gun });
  const expected = new Map<string, string>();
  for (let i = 0; i < tags; i++) {
    const tag = bigTagName(i);
    // A third carry sha512 too, as `notary add` writes them; `addhash --sha256` writes only sha256.
    expected.set(tag, 'sha256:' + forge.addTarget('targets/releases', tag, manifest(tag), i % 3 === 0));
  }
  const repo = forge.build();
  const dir = mkdtempSync(join(tmpdir(), 'tg-bench-big-'));
  for (const [role, bytes] of repo.files) {
    const file = join(dir, `${role}.json`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, bytes);
  }
  return {
    origin: 'forge, DirSource',
    gun,
    policy: {
      kind: 'ClusterTrustPolicy',
      name: 'big',
      source: 'bench',
      spec: { images: ['**'], trustServer: { url: `file://${dir}` }, root: { keys: repo.rootPems, threshold: 1 }, mode: 'enforce' },
    },
    sourceFor: (g) => new DirSource({ dir, gun: g }),
    expected,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function main(): Promise<void> {
  const setup = values.remote ? remoteSetup(values.remote) : forgedSetup(Number(values.tags));
  // The verification workers of the process, started with it as `trustgate serve` starts
  // them: "cold" means no verified data, not no worker thread.
  const workers = new LoadWorkers();
  try {
    const { gun, policy, expected } = setup;
    const engine = () =>
      new VerificationEngine({
        policies: { policiesFor: () => [policy] },
        sourceFor: (_p, g) => setup.sourceFor(g),
        cache: new RepositoryCache(),
        workers,
      });
    const tags = [...expected.keys()];
    const pick = (i: number) => tags[(i * 7919) % tags.length]!;
    const check = (tag: string, v: { allowed: boolean; digest?: string; failures: { reason: string }[] }) => {
      if (!v.allowed || v.digest !== expected.get(tag)) {
        throw new Error(`${gun}:${tag} not admitted with its signed digest: ${JSON.stringify(v.failures)}`);
      }
    };
    const delegationBytes = (await setup.sourceFor(gun).fetch({ role: 'targets/releases', maxBytes: 64 * 1024 * 1024 })).length;

    const coldRunsMs: number[] = [];
    const profiler = values['profile-cold'] ? await startProfiler() : undefined;
    for (let r = 0; r < COLD_RUNS; r++) {
      const e = engine();
      const tag = pick(r);
      const t0 = performance.now();
      const v = await e.verifyImage(`${gun}:${tag}`, 'default', AbortSignal.timeout(30_000));
      coldRunsMs.push(performance.now() - t0);
      check(tag, v);
    }
    if (profiler) await profiler.stop(values['profile-cold']!);

    const warm = engine();
    await warm.verifyImage(`${gun}:${pick(0)}`, 'default', AbortSignal.timeout(30_000));
    const signal = AbortSignal.timeout(600_000);
    let maxUs = 0;
    const t0 = performance.now();
    for (let i = 0; i < LOOKUPS; i++) {
      const tag = pick(i + 1);
      const s = performance.now();
      const v = await warm.verifyImage(`${gun}:${tag}`, 'default', signal);
      const us = (performance.now() - s) * 1000;
      if (us > maxUs) maxUs = us;
      check(tag, v);
    }
    const warmUs = ((performance.now() - t0) * 1000) / LOOKUPS;
    const result: BigRepoResult = {
      origin: setup.origin,
      tags: expected.size,
      delegationBytes,
      coldRunsMs,
      coldMedianMs: median(coldRunsMs),
      warmLookups: LOOKUPS,
      warmLookupUs: warmUs,
      warmMaxUs: maxUs,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await workers.close();
    setup.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
