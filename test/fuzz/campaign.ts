/**
 * A fuzz campaign: N cases of each kind, case i of kind K driven by its own PRNG seeded from
 * (seed, K, i), so any case replays alone. After every case, Object.prototype and
 * Array.prototype must be exactly as they were: no mutated input may pollute them.
 */
import { MetadataFuzzer } from './metadata-fuzz.js';
import { caseSeed, Prng } from './prng.js';
import { ReviewFuzzer } from './review-fuzz.js';

export const FUZZ_KINDS = ['metadata', 'review'] as const;
export type FuzzKind = (typeof FUZZ_KINDS)[number];

export interface Finding {
  kind: FuzzKind;
  index: number;
  seed: string;
  note: string;
  finding: string;
  /** Base64 of the mutated input (metadata file or review text). */
  input: string;
  /** Command that replays exactly this case. */
  replay: string;
}

export interface FuzzReport {
  seed: string;
  /** Cases run per kind, and how they came out (label -> count). */
  counts: Record<string, { cases: number; outcomes: Record<string, number> }>;
  findings: Finding[];
  seconds: number;
}

export interface FuzzOptions {
  seed: string;
  /** Cases per kind. */
  cases: number;
  kinds?: readonly FuzzKind[];
  /** Run only this case index (replay). */
  only?: number;
  /** Stop a kind after this many findings (default 5). */
  maxFindings?: number;
  progress?: (kind: FuzzKind, done: number, total: number) => void;
}

const baseline = () => ({
  object: Object.getOwnPropertyNames(Object.prototype).sort().join(','),
  array: Object.getOwnPropertyNames(Array.prototype).sort().join(','),
});

export function prototypePollution(before: { object: string; array: string }): string | undefined {
  const now = baseline();
  if (now.object !== before.object) return `Object.prototype changed: ${now.object}`;
  if (now.array !== before.array) return `Array.prototype changed: ${now.array}`;
  const probe = {} as Record<string, unknown>;
  for (const k of ['polluted', 'isAdmin', 'allowed']) if (probe[k] !== undefined) return `({}).${k} is ${JSON.stringify(probe[k])}`;
  return undefined;
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const kinds = opts.kinds ?? FUZZ_KINDS;
  const maxFindings = opts.maxFindings ?? 5;
  const report: FuzzReport = { seed: opts.seed, counts: {}, findings: [], seconds: 0 };
  const clean = baseline();
  for (const kind of kinds) {
    const fuzzer = kind === 'metadata' ? await MetadataFuzzer.create() : await ReviewFuzzer.create();
    const counts = (report.counts[kind] = { cases: 0, outcomes: {} as Record<string, number> });
    let found = 0;
    const first = opts.only ?? 0;
    const last = opts.only !== undefined ? opts.only + 1 : opts.cases;
    for (let i = first; i < last; i++) {
      const seed = caseSeed(opts.seed, kind, i);
      let label: string;
      let note = '';
      let input = '';
      let finding: string | undefined;
      try {
        const out = await fuzzer.runCase(new Prng(seed));
        note = out.note;
        finding = out.finding;
        if ('bytes' in out) {
          label = `${out.label}:${out.accepted ? 'accepted' : 'rejected'}`;
          input = out.bytes.toString('base64');
        } else {
          label = out.label;
          input = Buffer.from(out.text, 'utf8').toString('base64');
        }
      } catch (e) {
        label = 'harness-error';
        finding = `the case itself threw: ${(e as Error)?.stack ?? String(e)}`;
      }
      const pollution = prototypePollution(clean);
      if (pollution) finding = `${finding ? finding + '; ' : ''}prototype pollution: ${pollution}`;
      counts.cases++;
      counts.outcomes[label] = (counts.outcomes[label] ?? 0) + 1;
      if (finding) {
        report.findings.push({
          kind,
          index: i,
          seed,
          note,
          finding,
          input,
          replay: `node dist/test/fuzz/run.js --seed ${JSON.stringify(opts.seed)} --kind ${kind} --case ${i}`,
        });
        if (++found >= maxFindings) break;
      }
      if ((i + 1) % 5000 === 0) opts.progress?.(kind, i + 1 - first, last - first);
    }
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
