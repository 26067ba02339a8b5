/**
 * Image patterns of TrustPolicy `spec.images`: globs over normalized references
 * (`domain/path[:tag][@digest]`, as images/reference.ts formats them).
 *
 *   `*`   any run of characters within one path segment (never `/`)
 *   `?`   exactly one character, never `/`
 *   `**`  a whole path segment only: `a/**` is everything below `a` (one or more
 *         segments), `a/** /b` (without the space) is `a/b`, `a/x/b`, `a/x/y/b`; the
 *         gitignore meaning, so `payments/**` never covers `payments-evil/...`.
 *   every other character is literal (no regex is ever built from a pattern).
 *
 * A pattern without a tag matches every tag and digest of the repositories it names; with
 * `:tag` (globs allowed, `*` only) it matches references carrying a matching tag.
 *
 * Matching is a dynamic programme over (pattern token, reference position): linear in the
 * product of the two lengths whatever the pattern, so a policy author cannot make the
 * webhook backtrack for seconds on a crafted glob.
 */

import { DOCKER_HUB_ALIASES, domainProblem } from '../images/reference.js';

/** Longest pattern accepted: a normalized reference is at most ~462 characters. */
export const MAX_PATTERN_LENGTH = 512;

type Token =
  | { t: 'lit'; c: string }
  | { t: 'one' } // ?
  | { t: 'star' } // *
  | { t: 'dirs' } // **/  : zero or more whole segments, each followed by '/'
  | { t: 'rest' }; // trailing ** : one or more characters of anything

export class ImagePatternError extends Error {
  constructor(
    readonly pattern: string,
    readonly reason: string,
  ) {
    super(`invalid image pattern ${JSON.stringify(pattern)}: ${reason}`);
    this.name = 'ImagePatternError';
  }
}

export interface ImagePattern {
  readonly pattern: string;
  /** The repository part (`domain/path`) as written, without the tag. */
  readonly name: string;
  /** The tag glob, when the pattern has one. */
  readonly tag?: string;
  matches(reference: string): boolean;
}

/** Parses a pattern's glob syntax; throws ImagePatternError. Says nothing about whether it is qualified. */
export function compileImagePattern(pattern: string): ImagePattern {
  const fail = (reason: string): never => {
    throw new ImagePatternError(pattern, reason);
  };
  if (typeof pattern !== 'string') fail('must be a string');
  if (pattern.length === 0) fail('empty pattern');
  if (pattern.length > MAX_PATTERN_LENGTH) fail(`longer than ${MAX_PATTERN_LENGTH} characters`);
  if (/[\s\u0000-\u001f\u007f]/.test(pattern)) fail('contains whitespace or control characters');
  if (pattern.includes('@')) fail("digests ('@sha256:...') cannot be matched by a policy pattern: name the repository, optionally with ':tag'");
  const { name, tag } = splitTag(pattern);
  if (tag !== undefined) {
    if (tag === '') fail("empty tag after ':'");
    if (tag.includes('**')) fail("'**' cannot appear in a tag: use '*' (tags contain no '/')");
  }
  if (name === '') fail('empty repository name');
  const tokens = tokenizeName(name, fail);
  const tagTokens = tag === undefined ? undefined : tokenizeTag(tag);
  const compiled: ImagePattern = {
    pattern,
    name,
    ...(tag !== undefined ? { tag } : {}),
    matches(reference: string): boolean {
      if (typeof reference !== 'string') return false;
      const ref = splitReference(reference);
      if (!globMatch(tokens, ref.name)) return false;
      if (tagTokens === undefined) return true;
      return ref.tag !== undefined && globMatch(tagTokens, ref.tag);
    },
  };
  return Object.freeze(compiled);
}

/** One-off match; a pattern that does not compile matches nothing. */
export function matchesImage(pattern: string, reference: string): boolean {
  try {
    return compileImagePattern(pattern).matches(reference);
  } catch {
    return false;
  }
}

const PATH_CHARS = /^[a-z0-9._\-*?]+$/;
const TAG_CHARS = /^[A-Za-z0-9_.\-*?]+$/;
const GLOB = /[*?]/;

/**
 * Everything that makes a pattern unusable, each as a sentence with a hint: glob syntax
 * plus qualification. A pattern must spell the registry literally (`docker.io/library/nginx`,
 * not `nginx`): a reference is always normalized to its registry before matching, so an
 * unqualified pattern would silently match nothing, and a wildcard registry would let an
 * attacker's registry (`registry.example.com.evil.io`) fall under the policy.
 */
export function imagePatternProblems(pattern: string): string[] {
  try {
    compileImagePattern(pattern);
  } catch (e) {
    return [(e as ImagePatternError).reason];
  }
  const problems: string[] = [];
  const { name, tag } = splitTag(pattern);
  const slash = name.indexOf('/');
  const first = slash < 0 ? name : name.slice(0, slash);
  const path = slash < 0 ? '' : name.slice(slash + 1);
  const looksLikeDomain = first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[');
  if (!looksLikeDomain || slash < 0) {
    const suggestion = !name.includes('/') && !GLOB.test(first) ? `docker.io/library/${pattern}` : `docker.io/${pattern}`;
    problems.push(
      `must start with a registry domain (references are matched fully qualified): write ${JSON.stringify(suggestion)} for Docker Hub, or e.g. "registry.example.com/${pattern}"`,
    );
    return problems;
  }
  if (GLOB.test(first)) {
    problems.push(`the registry ${JSON.stringify(first)} must be literal, without '*' or '?': list each registry in its own pattern`);
    return problems;
  }
  // The same rule as an image's registry: a pattern can only name what a reference can.
  const badDomain = domainProblem(first);
  if (badDomain) problems.push(badDomain);
  if (first.endsWith(':443') && !badDomain) {
    // One spelling per registry: a reference that spells the default port is refused when a
    // policy covers the registry without it, so a pattern with it could only ever cover that.
    problems.push(
      `port 443 is the HTTPS default, which image references leave out: write ${JSON.stringify(`${first.slice(0, -4)}${path === '' ? '' : `/${path}`}${tag !== undefined ? `:${tag}` : ''}`)}`,
    );
  }
  if (DOCKER_HUB_ALIASES.includes(first)) {
    problems.push(`references to Docker Hub are normalized to docker.io: write ${JSON.stringify(`docker.io/${path}${tag !== undefined ? `:${tag}` : ''}`)}`);
  }
  if (path === '') {
    problems.push('needs a repository path after the registry, e.g. "registry.example.com/team/**"');
    return problems;
  }
  const segments = path.split('/');
  if (first === 'docker.io' && segments.length === 1 && segments[0] !== '**' && !GLOB.test(segments[0]!)) {
    problems.push(
      `official Docker Hub images are normalized to docker.io/library/...: write ${JSON.stringify(`docker.io/library/${path}${tag !== undefined ? `:${tag}` : ''}`)}`,
    );
  }
  for (const s of segments) {
    if (s === '**') continue;
    if (/[A-Z]/.test(s)) problems.push(`repository path segment ${JSON.stringify(s)} must be lowercase (repository names are)`);
    else if (!PATH_CHARS.test(s)) problems.push(`repository path segment ${JSON.stringify(s)} may hold only a-z, 0-9, '.', '_', '-' and the globs '*', '?'`);
  }
  if (tag !== undefined && !TAG_CHARS.test(tag)) problems.push(`tag ${JSON.stringify(tag)} may hold only A-Z, a-z, 0-9, '_', '.', '-' and the globs '*', '?'`);
  return problems;
}

/** The tag is after a ':' in the last path segment (a ':' before the first '/' is a port). */
function splitTag(pattern: string): { name: string; tag?: string } {
  const lastSlash = pattern.lastIndexOf('/');
  const colon = pattern.indexOf(':', lastSlash + 1);
  if (lastSlash < 0 || colon < 0) return { name: pattern };
  return { name: pattern.slice(0, colon), tag: pattern.slice(colon + 1) };
}

function splitReference(reference: string): { name: string; tag?: string } {
  const at = reference.indexOf('@');
  const withoutDigest = at >= 0 ? reference.slice(0, at) : reference;
  return splitTag(withoutDigest);
}

function tokenizeName(name: string, fail: (reason: string) => never): Token[] {
  const segments = name.split('/');
  const tokens: Token[] = [];
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '') fail(`empty path segment (doubled, leading or trailing '/')`);
    if (seg === '**') {
      if (last) {
        tokens.push({ t: 'rest' });
      } else {
        tokens.push({ t: 'dirs' });
      }
      return;
    }
    if (seg.includes('**')) fail(`'**' must be a whole path segment (as in "registry.example.com/team/**"); use '*' within a segment`);
    for (const c of seg) tokens.push(c === '*' ? { t: 'star' } : c === '?' ? { t: 'one' } : { t: 'lit', c });
    if (!last) tokens.push({ t: 'lit', c: '/' });
  });
  return tokens;
}

function tokenizeTag(tag: string): Token[] {
  return [...tag].map((c): Token => (c === '*' ? { t: 'star' } : c === '?' ? { t: 'one' } : { t: 'lit', c }));
}

/** Whole-string match; O(tokens x length) time, O(length) space. */
function globMatch(tokens: Token[], s: string): boolean {
  const chars = [...s];
  const n = chars.length;
  // next[j]: tokens i+1.. match chars j..; computed from the last token backwards.
  let next: boolean[] = new Array<boolean>(n + 1).fill(false);
  next[n] = true;
  for (let i = tokens.length - 1; i >= 0; i--) {
    const tok = tokens[i]!;
    const cur: boolean[] = new Array<boolean>(n + 1).fill(false);
    switch (tok.t) {
      case 'lit':
        for (let j = 0; j < n; j++) cur[j] = chars[j] === tok.c && next[j + 1]!;
        break;
      case 'one':
        for (let j = 0; j < n; j++) cur[j] = chars[j] !== '/' && next[j + 1]!;
        break;
      case 'star':
        cur[n] = next[n]!;
        for (let j = n - 1; j >= 0; j--) cur[j] = next[j]! || (chars[j] !== '/' && cur[j + 1]!);
        break;
      case 'dirs': {
        // Either nothing, or any characters up to and including a '/' that the rest follows.
        let viaSlash = false;
        for (let j = n; j >= 0; j--) {
          if (j < n && chars[j] === '/' && next[j + 1]) viaSlash = true;
          cur[j] = next[j]! || viaSlash;
        }
        break;
      }
      case 'rest': {
        let any = false;
        for (let j = n - 1; j >= 0; j--) {
          any = any || next[j + 1]!;
          cur[j] = any;
        }
        break;
      }
    }
    next = cur;
  }
  return next[0]!;
}
