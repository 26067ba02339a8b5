// The TUF 1.0 figures that run in a process of their own (test/bench/tuf1.ts starts them):
//
//   node tuf1-child.js big FILE       10,000 targets served by nginx: cold verification (a
//                                     fresh engine, nothing verified) and warm lookups (µs per
//                                     image on a warm engine); FILE: BigTufConfig. One JSON line.
//   node tuf1-child.js reference      the baseline client: tuf-js (the TUF client npm and
//                                     Sigstore use), one cold lookup per stdin line (JSON
//                                     LookupJob), answering one JSON line each ({ms} or {error}).
//                                     Start it with NODE_EXTRA_CA_CERTS naming the server's CA.
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Updater } from 'tuf-js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { SpecHttpSource } from '../../webhook/src/tufrepo/http-source.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { median } from './common.js';

export interface BigTufConfig {
  url: string;
  caPem: string;
  trustedRoot: string;
  /** Image (`name:tag`) -> the digest its target signs. */
  expected: Record<string, string>;
  targetsBytes: number;
  coldRuns: number;
  lookups: number;
}

export interface BigTufResult {
  targets: number;
  targetsBytes: number;
  coldRunsMs: number[];
  coldMedianMs: number;
  warmLookups: number;
  warmLookupUs: number;
  /** Longest single warm lookup: how long the event loop was held at most. */
  warmMaxUs: number;
  /** Share of warm lookups verifyCached answered without a promise (the handler's fast path). */
  warmSyncShare: number;
}

export interface LookupJob {
  url: string;
  trustedRoot: string;
  path: string;
  sha256: string;
}

async function big(file: string): Promise<void> {
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as BigTufConfig;
  const policy: TrustPolicy = {
    kind: 'ClusterTrustPolicy',
    name: 'tuf-big',
    source: 'bench',
    spec: { images: ['**'], trustServer: { protocol: 'tuf', url: cfg.url, caBundle: cfg.caPem }, root: { keys: [], threshold: 1, trustedRoot: cfg.trustedRoot }, mode: 'enforce' },
  };
  // One connection pool for every engine, as a running webhook has: "cold" means no verified
  // data, not no TCP connection (as the Notary 10,000-tag row).
  const agent = new https.Agent({ keepAlive: true, maxSockets: 32 });
  const source = new SpecHttpSource({ url: cfg.url, caBundle: cfg.caPem, agent });
  const engine = () =>
    new VerificationEngine({
      policies: { policiesFor: () => [policy] },
      sourceFor: () => {
        throw new Error('the TUF bench has no Notary policy');
      },
      tufSourceFor: () => source,
    });
  const images = Object.keys(cfg.expected);
  const pick = (i: number) => images[(i * 7919) % images.length]!;
  const check = (image: string, v: { allowed: boolean; digest?: string; failures: { reason: string }[] }) => {
    if (!v.allowed || v.digest !== cfg.expected[image]) throw new Error(`${image} not admitted with its signed digest: ${JSON.stringify(v.failures)}`);
  };
  try {
    // Connect once, so the first cold run does not also pay the TLS handshake.
    await source.fetch({ role: 'timestamp', file: 'timestamp.json', maxBytes: 16_384 });
    const coldRunsMs: number[] = [];
    for (let r = 0; r < cfg.coldRuns; r++) {
      const image = pick(r);
      const t0 = performance.now();
      const v = await engine().verifyImage(image, 'default', AbortSignal.timeout(30_000));
      coldRunsMs.push(performance.now() - t0);
      check(image, v);
    }

    const warm = engine();
    check(pick(0), await warm.verifyImage(pick(0), 'default', AbortSignal.timeout(30_000)));
    const signal = AbortSignal.timeout(600_000);
    let maxUs = 0;
    let sync = 0;
    // As the admission handler asks: the synchronous answer first, the async path when there is none.
    const t0 = performance.now();
    for (let i = 0; i < cfg.lookups; i++) {
      const image = pick(i + 1);
      const s = performance.now();
      let v = warm.verifyCached(image, 'default');
      if (v) sync++;
      else v = await warm.verifyImage(image, 'default', signal);
      const us = (performance.now() - s) * 1000;
      if (us > maxUs) maxUs = us;
      check(image, v);
    }
    const warmLookupUs = ((performance.now() - t0) * 1000) / cfg.lookups;
    const result: BigTufResult = {
      targets: images.length,
      targetsBytes: cfg.targetsBytes,
      coldRunsMs,
      coldMedianMs: median(coldRunsMs),
      warmLookups: cfg.lookups,
      warmLookupUs,
      warmMaxUs: maxUs,
      warmSyncShare: sync / cfg.lookups,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    agent.destroy();
  }
}

/** A cold tuf-js lookup: an empty metadata directory but the trusted root, refresh, find the target. */
async function lookup(job: LookupJob): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-bench-tufjs-'));
  try {
    writeFileSync(join(dir, 'root.json'), job.trustedRoot);
    const t0 = performance.now();
    const updater = new Updater({ metadataDir: dir, metadataBaseUrl: job.url.replace(/\/$/, '') });
    await updater.refresh();
    const target = await updater.getTargetInfo(job.path);
    const ms = performance.now() - t0;
    if (target?.hashes['sha256'] !== job.sha256) throw new Error(`tuf-js found ${JSON.stringify(target?.hashes)} for ${job.path}, expected sha256 ${job.sha256}`);
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function reference(): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    try {
      process.stdout.write(JSON.stringify({ ms: await lookup(JSON.parse(line) as LookupJob) }) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, file] = process.argv.slice(2);
  const run = what === 'big' && file ? big(file) : what === 'reference' ? reference() : Promise.reject(new Error('usage: tuf1-child.js big FILE | reference'));
  run.catch((e: unknown) => {
    process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
