import { parsePolicyYaml, PolicyValidationError, policyId, problemLines, SERVED_POLICY } from '../policy/model.js';
import { commandSpec, parseCommand } from './commands.js';
import { InputError, readInputFile } from './inputs.js';
import { UsageError } from './usage.js';

/**
 * Validate policy files as the cluster would (schema, CEL rules, then what the policy
 * webhook checks, with the webhook's own options and lines); every problem with its path.
 * A file without any policy fails, since applying it would change nothing.
 */
export async function policyCheckCommand(argv: string[]): Promise<number> {
  const { positionals: files } = parseCommand(commandSpec('policy check')!, argv);
  if (files.length === 0) throw new UsageError('policy check needs at least one FILE (or - for stdin)');
  let bad = 0;
  for (const path of files) {
    let file;
    try {
      file = readInputFile(path, 'policy file');
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      bad++;
      process.stdout.write(`${e.message}\n`);
      continue;
    }
    try {
      const policies = parsePolicyYaml(file.text, file.name, SERVED_POLICY);
      if (policies.length === 0) {
        bad++;
        process.stdout.write(`${file.name}: holds no TrustPolicy or ClusterTrustPolicy (the file is empty or only comments)\n`);
      }
      for (const p of policies) process.stdout.write(`${file.name}: ${policyId(p)} ok\n`);
    } catch (e) {
      bad++;
      if (e instanceof PolicyValidationError) {
        for (const line of problemLines(e.problems)) process.stdout.write(`${file.name}: ${line}\n`);
      } else {
        process.stdout.write(`${file.name}: ${(e as Error).message}\n`);
      }
    }
  }
  return bad === 0 ? 0 : 1;
}
