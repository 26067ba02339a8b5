/**
 * `npm run fuzz` (node dist/test/fuzz/run.js --cases 100000): mutated metadata into the TUF
 * core and updater, mutated AdmissionReviews into the admission handler. Prints the count of
 * cases of each kind and how they came out; exits 1 on any finding, printing its reproducer.
 *
 *   --cases N     cases per kind (default 10000)
 *   --seed S      seed (default: random, printed so the run can be repeated)
 *   --kind K      metadata | review | all (default all)
 *   --case I      replay only case I (with the seed and kind of the finding)
 *   --max-findings N  stop a kind after N findings (default 5)
 *   --json        print the report as one JSON line at the end
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FUZZ_KINDS, runFuzz, type FuzzKind } from './campaign.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cases: { type: 'string', default: '10000' },
      seed: { type: 'string' },
      kind: { type: 'string', default: 'all' },
      case: { type: 'string' },
      json: { type: 'boolean', default: false },
      'max-findings': { type: 'string', default: '5' },
    },
  });
  const cases = Number(values.cases);
  if (!Number.isSafeInteger(cases) || cases < 1) throw new Error(`--cases must be a positive integer, got ${values.cases}`);
  const kinds: readonly FuzzKind[] = values.kind === 'all' ? FUZZ_KINDS : [values.kind as FuzzKind];
  if (!kinds.every((k) => FUZZ_KINDS.includes(k))) throw new Error(`--kind must be one of ${FUZZ_KINDS.join(', ')} or all`);
  const only = values.case === undefined ? undefined : Number(values.case);
  if (only !== undefined && (!Number.isSafeInteger(only) || only < 0)) throw new Error(`--case must be a case index, got ${values.case}`);
  const seed = values.seed ?? randomBytes(6).toString('hex');
  const maxFindings = Number(values['max-findings']);
  if (!Number.isSafeInteger(maxFindings) || maxFindings < 1) throw new Error(`--max-findings must be a positive integer, got ${values['max-findings']}`);

  console.log(`fuzz: seed ${seed}, ${only !== undefined ? `case ${only}` : `${cases} cases`} of ${kinds.join(', ')}`);
  const report = await runFuzz({
    seed,
    cases,
    kinds,
    maxFindings,
    ...(only !== undefined ? { only } : {}),
    progress: (kind, done, total) => console.log(`  ${kind}: ${done}/${total}`),
  });
  for (const [kind, c] of Object.entries(report.counts)) {
    console.log(`${kind}: ${c.cases} cases`);
    for (const [label, n] of Object.entries(c.outcomes).sort()) console.log(`  ${label.padEnd(32)} ${n}`);
  }
  console.log(`${report.findings.length} findings in ${report.seconds.toFixed(1)} s`);
  for (const f of report.findings) {
    // The mutated input in full goes to a file; the console gets a readable head of it.
    const file = join(tmpdir(), `trustgate-fuzz-${f.seed.replace(/[^A-Za-z0-9_-]+/g, '_')}.input`);
    writeFileSync(file, Buffer.from(f.input, 'base64'));
    const head = Buffer.from(f.input, 'base64').subarray(0, 300).toString('utf8').replace(/[^\x20-\x7e]/g, '.');
    console.log(`\nFINDING ${f.kind} case ${f.index} (${f.note.slice(0, 300)})\n  ${f.finding.slice(0, 2000)}\n  replay: ${f.replay}\n  input: ${file} (${head}...)`);
  }
  if (values.json) {
    console.log(JSON.stringify({ seed: report.seed, seconds: Number(report.seconds.toFixed(1)), counts: report.counts, findings: report.findings.length }));
  }
  return report.findings.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`fuzz: ${(e as Error)?.stack ?? String(e)}`);
    process.exit(2);
  },
);
