import { readFileSync } from 'node:fs';
import { parsePolicyYaml, PolicyValidationError, policyId, problemLines, SERVED_POLICY } from '../policy/model.js';

/**
 * Validate policy files as the cluster would (schema, CEL rules, then what the policy
 * webhook checks, with the webhook's own options and lines); every problem with its path.
 */
export async function policyCheckCommand(files: string[]): Promise<number> {
  if (files.length === 0) throw new Error('policy check needs at least one FILE');
  let bad = 0;
  for (const file of files) {
    try {
      for (const p of parsePolicyYaml(readFileSync(file, 'utf8'), file, SERVED_POLICY)) process.stdout.write(`${file}: ${policyId(p)} ok\n`);
    } catch (e) {
      bad++;
      if (e instanceof PolicyValidationError) {
        for (const line of problemLines(e.problems)) process.stdout.write(`${file}: ${line}\n`);
      } else {
        process.stdout.write(`${file}: ${(e as Error).message}\n`);
      }
    }
  }
  return bad === 0 ? 0 : 1;
}
