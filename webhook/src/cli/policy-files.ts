/**
 * Policies named on the command line, loaded into the webhook's own PolicyStore so the CLI
 * matches images to policies exactly as the webhook does.
 */
import { compileImagePattern } from '../policy/match.js';
import { parsePolicyYaml, PolicyValidationError, type TrustPolicy } from '../policy/model.js';
import { PolicyStore } from '../policy/store.js';
import type { PolicyLookup } from '../verify/engine.js';
import { InputError, readInputFile } from './inputs.js';

/**
 * Every policy of the files, each file its own source as `serve --policy-dir` keeps it.
 * An invalid or empty file is an InputError naming every problem with its field path.
 */
export function loadPolicyFiles(paths: string[], options: { requireNamespace: boolean }): { store: PolicyStore; policies: TrustPolicy[] } {
  const store = new PolicyStore();
  const all: TrustPolicy[] = [];
  const problems: string[] = [];
  for (const path of paths) {
    const file = readInputFile(path, 'policy file');
    try {
      const policies = parsePolicyYaml(file.text, file.name, { requireNamespace: options.requireNamespace });
      if (policies.length === 0) problems.push(`${file.name}: holds no TrustPolicy or ClusterTrustPolicy (the file is empty or only comments)`);
      store.replaceSource(`${file.name}#${all.length}`, policies);
      all.push(...policies);
    } catch (e) {
      if (!(e instanceof PolicyValidationError)) throw e;
      for (const p of e.problems) problems.push(`${file.name}: ${p.path}: ${p.message}`);
    }
  }
  if (problems.length > 0) throw new InputError(problems.length === 1 ? `invalid policy: ${problems[0]}` : `invalid policies:\n  ${problems.join('\n  ')}`);
  store.markReady();
  return { store, policies: all };
}

/**
 * The policies that apply to one image for `verify` and `inspect`: those whose spec.images
 * match it (all of them), or every policy given when the caller overrides matching. With a
 * namespace, TrustPolicies of other namespaces are left out as the webhook leaves them out;
 * without one, a file's TrustPolicy applies whatever namespace it names.
 */
export function fileLookup(policies: TrustPolicy[], opts: { namespace?: string; ignoreImageMatch: boolean }): PolicyLookup {
  const compiled = policies.map((p) => ({ p, patterns: p.spec.images.map((i) => compileImagePattern(i)) }));
  return {
    policiesFor(reference) {
      return compiled
        .filter(({ p }) => opts.namespace === undefined || p.kind === 'ClusterTrustPolicy' || p.namespace === opts.namespace)
        .filter(({ patterns }) => opts.ignoreImageMatch || patterns.some((m) => m.matches(reference)))
        .map(({ p }) => p);
    },
  };
}
