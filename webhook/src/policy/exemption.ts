/**
 * `--exempt` patterns: images admitted without verification. An exemption obeys the rules of
 * a policy's `spec.images` (imagePatternProblems: a literal registry, fully qualified,
 * well-formed globs), so `registry.example.com*` can never stretch to an attacker's
 * `registry.example.com.evil.io`.
 *
 * Digests: a reference carrying `@sha256:...` runs that digest whatever its tag says, so a
 * pattern naming a tag (or a whole repository) would let any content through under a tag
 * someone once vouched for. A reference with a digest is therefore exempt only when the
 * exemption names that very digest (`registry.k8s.io/pause:3.9@sha256:<64 hex>`), and an
 * exemption naming a digest exempts only references that carry it (a tag can move).
 */
import { digestProblem } from '../images/reference.js';
import { compileImagePattern, imagePatternProblems } from './match.js';

/** Everything wrong with an exemption pattern, each with a hint; empty when it is usable. */
export function exemptionProblems(pattern: string): string[] {
  const { name, digest } = splitDigest(pattern);
  const problems = imagePatternProblems(name);
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem) problems.push(problem);
  }
  return problems;
}

/** One predicate over normalized references (`domain/path[:tag][@digest]`); throws on an invalid pattern. */
export function compileExemptions(patterns: readonly string[]): (reference: string) => boolean {
  const compiled = patterns.map((pattern) => {
    const problems = exemptionProblems(pattern);
    if (problems.length > 0) throw new Error(`invalid exemption ${JSON.stringify(pattern)}: ${problems.join('; ')}`);
    const { name, digest } = splitDigest(pattern);
    return { glob: compileImagePattern(name), digest };
  });
  return (reference) => {
    const { name, digest } = splitDigest(reference);
    return compiled.some((e) => e.digest === digest && e.glob.matches(name));
  };
}

function splitDigest(s: string): { name: string; digest?: string } {
  const at = s.indexOf('@');
  return at < 0 ? { name: s } : { name: s.slice(0, at), digest: s.slice(at + 1) };
}
