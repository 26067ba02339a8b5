/**
 * Open-loop load on the real webhook: admissions are sent on a fixed schedule (rate per
 * second) whether or not earlier ones have been answered, so a slow webhook shows up as
 * latency instead of silently lowering the offered load. Latency is measured from the
 * scheduled send time. The mix:
 *
 *   warm      a Pod with 1-3 images from repositories signed on the real stack: must be
 *             allowed and pinned to exactly the signed digests (their metadata is
 *             refreshed from the real notary-server every few seconds)
 *   cold      an image in a repository nobody ever signed: a full cold fetch from the real
 *             server, which must end in a denial naming the server (intended)
 *   unsigned  a signed repository, a tag nobody signed: denied (intended)
 *
 * Anything else (a transport error, a non-200, a wrong uid, a wrong pin, an allow that
 * should be a deny) is an error. The webhook's RSS is read at the start and end of the run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { podReview, policyManifest, WebhookClient } from '../fault/admission-client.js';
import { createSignedRepo, pinnedRoot, type SignedRepo } from '../fault/repos.js';
import { Prng } from '../fuzz/prng.js';
import type { Stack } from '../support/stack.js';
import { startWebhookProcess } from './webhook-process.js';

export interface LoadOptions {
  durationS: number;
  rate: number;
  /** Signed repositories to spread warm admissions over. */
  repos: number;
  coldRatio: number;
  unsignedRatio: number;
  /** Load before the measured run (not counted; RSS is read after it). */
  warmupS: number;
  deadlineS: number;
  seed: string;
  log?: (line: string) => void;
}

// The warm-up runs the full mix long enough for V8 to size its heap to the allocation rate
// (the reserved heap grows for about 40 s at 500/s, then holds); growth after that is what
// a leak would look like.
export const LOAD_DEFAULTS: LoadOptions = { durationS: 60, rate: 500, repos: 20, coldRatio: 0.1, unsignedRatio: 0.05, warmupS: 45, deadlineS: 8, seed: 'load' };

export interface LoadReport {
  offered: number;
  answered: number;
  allowed: number;
  intendedDenials: number;
  errors: number;
  errorSamples: string[];
  byKind: Record<Kind, number>;
  achievedRate: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  rssStartMb: number;
  rssEndMb: number;
  rssMaxMb: number;
  rssGrowthPct: number;
  /**
   * Growth between the medians of the first and the last five one-second RSS samples: the
   * figure the target applies to, since a single sample mostly shows where the garbage
   * collector happened to be.
   */
  rssWindowGrowthPct: number;
  /** [seconds into the measured run, RSS MiB], one a second. */
  rssTimeline: Array<[number, number]>;
  /**
   * [seconds, V8 heap in use, V8 heap reserved, memory outside the heap held by JS objects]
   * in MiB, from the webhook's /metrics: tells a leak from heap sizing.
   */
  heapTimeline: Array<[number, number, number, number]>;
  /** Latency by kind of admission. */
  latencyByKindMs: Record<Kind, { p50: number; p99: number }>;
}

type Kind = 'warm' | 'cold' | 'unsigned';

interface Planned {
  kind: Kind;
  images: string[];
  /** For warm: the digest each image must be pinned to. */
  digests: string[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The digest each container is pinned to, in container order ('' where the patch leaves one alone). */
function pinnedDigests(patch: unknown, containers: number): string[] {
  const out = Array.from({ length: containers }, () => '');
  if (typeof patch !== 'string') return out;
  const ops = JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Array<{ path?: string; value?: unknown }>;
  for (const o of ops) {
    const m = /^\/spec\/containers\/(\d+)\/image$/.exec(o.path ?? '');
    if (m && typeof o.value === 'string' && Number(m[1]) < containers) out[Number(m[1])] = o.value.slice(o.value.indexOf('@') + 1);
  }
  return out;
}

export async function runLoad(stack: Stack, options: Partial<LoadOptions> = {}): Promise<LoadReport> {
  const o: LoadOptions = { ...LOAD_DEFAULTS, ...options };
  const log = o.log ?? (() => undefined);
  const work = mkdtempSync(join(stack.dir, 'load-'));
  const repos: SignedRepo[] = [];
  // One at a time: the first init makes the trust dir's root key, the others reuse it.
  for (let i = 0; i < o.repos; i++) repos.push(await createSignedRepo(stack, `load/app-${i}`, ['v1']));
  log(`${o.repos} signed repositories on ${stack.notaryUrl}`);
  const rootPem = await pinnedRoot(stack, repos[0]!);
  const policyDir = mkdtempSync(join(work, 'policies-'));
  writeFileSync(
    join(policyDir, 'load.json'),
    JSON.stringify(policyManifest({ name: 'load', images: [`${stack.registryHost}/load/**`], url: stack.notaryUrl, caBundle: stack.caPem, rootPems: [rootPem] })),
  );
  const webhook = await startWebhookProcess({ policyDir, deadlineS: o.deadlineS, env: { TRUSTGATE_REFRESH_SECONDS: '5' } });
  const client = new WebhookClient(webhook.port, webhook.ca, 128);
  const rng = new Prng(o.seed);
  let coldSerial = 0;
  const plan = (): Planned => {
    const x = rng.int(1_000_000) / 1_000_000;
    if (x < o.coldRatio) return { kind: 'cold', images: [`${stack.registryHost}/load/cold-${o.seed}-${coldSerial++}:v1`], digests: [] };
    if (x < o.coldRatio + o.unsignedRatio) return { kind: 'unsigned', images: [`${rng.pick(repos).gun}:unsigned`], digests: [] };
    const n = 1 + rng.int(3);
    const chosen = Array.from({ length: n }, () => rng.pick(repos));
    return { kind: 'warm', images: chosen.map((r) => `${r.gun}:v1`), digests: chosen.map((r) => r.tags.get('v1')!.digest) };
  };

  const report: LoadReport = {
    offered: 0, answered: 0, allowed: 0, intendedDenials: 0, errors: 0, errorSamples: [], byKind: { warm: 0, cold: 0, unsigned: 0 },
    achievedRate: 0, latencyMs: { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 }, rssStartMb: 0, rssEndMb: 0, rssMaxMb: 0, rssGrowthPct: 0, rssWindowGrowthPct: 0,
    rssTimeline: [], heapTimeline: [], latencyByKindMs: { warm: { p50: 0, p99: 0 }, cold: { p50: 0, p99: 0 }, unsigned: { p50: 0, p99: 0 } },
  };
  const byKind: Record<Kind, number[]> = { warm: [], cold: [], unsigned: [] };
  const error = (what: string) => {
    report.errors++;
    if (report.errorSamples.length < 10) report.errorSamples.push(what);
  };

  let uid = 0;
  /** One admission; resolves with its latency from `scheduled` (ms), or undefined when not counted. */
  const one = async (p: Planned, scheduled: number, counted: boolean): Promise<number | undefined> => {
    const id = `load-${++uid}`;
    try {
      const a = await client.post('/mutate', podReview(id, 'load', p.images));
      const latency = performance.now() - scheduled;
      if (!counted) return undefined;
      byKind[p.kind].push(latency);
      report.answered++;
      report.byKind[p.kind]++;
      const r = a.body?.response;
      if (a.status !== 200 || r?.uid !== id) return error(`${p.kind}: HTTP ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`), latency;
      if (p.kind === 'warm') {
        const got = pinnedDigests(r.patch, p.images.length);
        if (r.allowed !== true || JSON.stringify(got) !== JSON.stringify(p.digests)) {
          return error(`warm ${p.images.join(',')}: allowed=${r.allowed} pins ${JSON.stringify(got)} ${r.status?.message ?? ''}`.slice(0, 400)), latency;
        }
        report.allowed++;
      } else {
        if (r.allowed !== false || r.status?.code !== 403 || !String(r.status?.message).includes(stack.notaryUrl)) {
          return error(`${p.kind} ${p.images[0]}: allowed=${r.allowed} ${JSON.stringify(r.status ?? {}).slice(0, 300)}`), latency;
        }
        report.intendedDenials++;
      }
      return latency;
    } catch (e) {
      if (counted) {
        report.answered++;
        error(`${p.kind}: ${(e as Error).message}`);
      }
      return undefined;
    }
  };

  /** Open loop: every tick, send everything whose time has come. */
  const drive = async (seconds: number, counted: boolean, latencies: number[]) => {
    const total = Math.round(seconds * o.rate);
    const t0 = performance.now();
    const pending: Promise<void>[] = [];
    let sent = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) * o.rate) / 1000) + 1);
        while (sent < due) {
          const scheduled = t0 + (sent * 1000) / o.rate;
          sent++;
          pending.push(one(plan(), scheduled, counted).then((l) => void (l !== undefined && latencies.push(l))));
        }
        if (sent >= total) resolve();
        else setTimeout(tick, 2);
      };
      tick();
    });
    if (counted) report.offered += total;
    await Promise.all(pending);
    return (performance.now() - t0) / 1000;
  };

  try {
    // First contact for every signed repository, then warm-up traffic at the full rate.
    await Promise.all(repos.map((r) => one({ kind: 'warm', images: [`${r.gun}:v1`], digests: [r.tags.get('v1')!.digest] }, performance.now(), false)));
    if (o.warmupS > 0) await drive(o.warmupS, false, []);
    report.rssStartMb = webhook.rssMb();
    report.rssMaxMb = report.rssStartMb;
    const measuredFrom = performance.now();
    const sampler = setInterval(() => {
      const mb = webhook.rssMb();
      const at = Math.round((performance.now() - measuredFrom) / 1000);
      report.rssMaxMb = Math.max(report.rssMaxMb, mb);
      report.rssTimeline.push([at, Number(mb.toFixed(1))]);
      void client.get('/metrics').then(
        (r) => {
          const mb = (name: string) => {
            const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.body);
            return m ? Number((Number(m[1]) / 2 ** 20).toFixed(1)) : NaN;
          };
          report.heapTimeline.push([at, mb('nodejs_heap_size_used_bytes'), mb('nodejs_heap_size_total_bytes'), mb('nodejs_external_memory_bytes')]);
        },
        () => undefined,
      );
    }, 1000);
    log(`measuring: ${o.durationS} s at ${o.rate}/s (cold ${o.coldRatio}, unsigned ${o.unsignedRatio}); webhook RSS ${report.rssStartMb.toFixed(1)} MiB`);
    const latencies: number[] = [];
    let elapsed: number;
    try {
      elapsed = await drive(o.durationS, true, latencies);
    } finally {
      clearInterval(sampler);
    }
    report.rssEndMb = webhook.rssMb();
    report.rssMaxMb = Math.max(report.rssMaxMb, report.rssEndMb);
    report.rssGrowthPct = ((report.rssEndMb - report.rssStartMb) / report.rssStartMb) * 100;
    const samples = [report.rssStartMb, ...report.rssTimeline.map(([, mb]) => mb), report.rssEndMb];
    const window = Math.min(5, Math.floor(samples.length / 2));
    const first = median(samples.slice(0, window));
    const last = median(samples.slice(samples.length - window));
    report.rssWindowGrowthPct = ((last - first) / first) * 100;
    report.achievedRate = report.answered / elapsed;
    latencies.sort((a, b) => a - b);
    for (const k of Object.keys(byKind) as Kind[]) {
      const xs = byKind[k].sort((a, b) => a - b);
      report.latencyByKindMs[k] = { p50: percentile(xs, 50), p99: percentile(xs, 99) };
    }
    report.latencyMs = {
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
      max: latencies[latencies.length - 1] ?? 0,
    };
    return report;
  } finally {
    client.close();
    await webhook.stop();
  }
}
