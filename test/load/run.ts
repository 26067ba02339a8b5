/**
 * `npm run load`: the real webhook (`trustgate serve`, a child process) against the real
 * local Notary stack, open-loop at a fixed rate. Prints errors, latency percentiles and the
 * webhook's RSS at start and end, then one JSON line; exits 1 if a target is missed
 * (any error other than an intended denial, RSS growth of 10 % or more between the medians
 * of the first and the last five seconds of the measured run).
 *
 *   --duration S (60)  --rate N (500)  --repos N (20)  --cold R (0.1)  --unsigned R (0.05)
 *   --warmup S (45)  --deadline S (8)  --seed S
 */
import { parseArgs } from 'node:util';
import { startStack } from '../support/stack.js';
import { LOAD_DEFAULTS, runLoad, type LoadOptions } from './load.js';

const RSS_GROWTH_TARGET_PCT = 10;

function num(v: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}], got ${v}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' }, rate: { type: 'string' }, repos: { type: 'string' }, cold: { type: 'string' },
      unsigned: { type: 'string' }, warmup: { type: 'string' }, deadline: { type: 'string' }, seed: { type: 'string' },
    },
  });
  const d = LOAD_DEFAULTS;
  const opts: LoadOptions = {
    durationS: num(values.duration, 'duration', d.durationS, 1, 3600),
    rate: num(values.rate, 'rate', d.rate, 1, 100_000),
    repos: Math.round(num(values.repos, 'repos', d.repos, 1, 1000)),
    coldRatio: num(values.cold, 'cold', d.coldRatio, 0, 1),
    unsignedRatio: num(values.unsigned, 'unsigned', d.unsignedRatio, 0, 1),
    warmupS: num(values.warmup, 'warmup', d.warmupS, 0, 600),
    deadlineS: num(values.deadline, 'deadline', d.deadlineS, 0.1, 30),
    seed: values.seed ?? d.seed,
    log: (l) => console.log(`load: ${l}`),
  };
  if (opts.coldRatio + opts.unsignedRatio > 1) throw new Error('--cold plus --unsigned must not exceed 1');
  const stack = await startStack();
  try {
    const r = await runLoad(stack, opts);
    const growthOk = r.rssWindowGrowthPct < RSS_GROWTH_TARGET_PCT;
    const rows: Array<[string, string]> = [
      ['offered', `${r.offered} admissions (${opts.rate}/s for ${opts.durationS} s)`],
      ['answered', `${r.answered} (${r.achievedRate.toFixed(1)}/s)`],
      ['mix', `warm ${r.byKind.warm}, cold ${r.byKind.cold}, unsigned ${r.byKind.unsigned}`],
      ['allowed (pinned right)', String(r.allowed)],
      ['intended denials', String(r.intendedDenials)],
      ['errors', `${r.errors}${r.errors === 0 ? '' : '  <-- target: 0'}`],
      ['latency p50 / p90 / p99', `${r.latencyMs.p50.toFixed(2)} / ${r.latencyMs.p90.toFixed(2)} / ${r.latencyMs.p99.toFixed(2)} ms`],
      ['latency p99.9 / max', `${r.latencyMs.p999.toFixed(2)} / ${r.latencyMs.max.toFixed(2)} ms`],
      ...(['warm', 'cold', 'unsigned'] as const).map((k): [string, string] => [`  ${k} p50 / p99`, `${r.latencyByKindMs[k].p50.toFixed(2)} / ${r.latencyByKindMs[k].p99.toFixed(2)} ms`]),
      ['webhook RSS start / end / max', `${r.rssStartMb.toFixed(1)} / ${r.rssEndMb.toFixed(1)} / ${r.rssMaxMb.toFixed(1)} MiB`],
      ['RSS growth end vs start', `${r.rssGrowthPct.toFixed(1)} %`],
      ['RSS growth (5 s medians)', `${r.rssWindowGrowthPct.toFixed(1)} %${growthOk ? '' : `  <-- target: < ${RSS_GROWTH_TARGET_PCT} %`}`],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(30)} ${v}`);
    console.log(`RSS timeline (s:MiB) ${r.rssTimeline.filter(([t]) => t % 5 === 0).map(([t, mb]) => `${t}:${mb}`).join(' ')}`);
    console.log(`heap used/reserved/external (s:MiB) ${r.heapTimeline.filter(([t]) => t % 10 === 0).map(([t, used, total, ext]) => `${t}:${used}/${total}/${ext}`).join(' ')}`);
    for (const s of r.errorSamples) console.log(`  error: ${s}`);
    console.log(
      JSON.stringify({
        offered: r.offered, answered: r.answered, allowed: r.allowed, intended_denials: r.intendedDenials, errors: r.errors,
        rate: Number(r.achievedRate.toFixed(1)), p50_ms: round(r.latencyMs.p50), p90_ms: round(r.latencyMs.p90), p99_ms: round(r.latencyMs.p99),
        p999_ms: round(r.latencyMs.p999), max_ms: round(r.latencyMs.max), rss_start_mb: round(r.rssStartMb), rss_end_mb: round(r.rssEndMb),
        rss_max_mb: round(r.rssMaxMb), rss_growth_pct: round(r.rssGrowthPct), rss_window_growth_pct: round(r.rssWindowGrowthPct),
      }),
    );
    return r.errors === 0 && growthOk ? 0 : 1;
  } finally {
    await stack.stop();
  }
}

function round(n: number): number {
  return Number(n.toFixed(2));
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`load: ${(e as Error)?.stack ?? String(e)}`);
    process.exit(2);
  },
);
