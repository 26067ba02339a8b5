// Image references, parsed and normalized the way distribution/reference's
// ParseNormalizedNamed + TagNameOnly do, so the repository we look up in Notary (the GUN)
// and the string we match policies against are the ones the container runtime pulls.
//
// Deliberate tightenings over distribution (each closes a way for two spellings of one
// repository to normalize differently, or for a reference to be read as something else):
// - registry hosts must be lowercase: DNS ignores case, so `Registry.example.com/x` would
//   reach the same registry as `registry.example.com/x` under a different name (and GUN);
// - registry ports must be 1-65535 without leading zeros (`:05000` is `:5000`);
// - only sha256 digests of 64 lowercase hex characters, the only kind we pin to;
// - the whole input being a digest (`sha256:<64 hex>`) is rejected like a bare 64-hex
//   name: containerd resolves a string that parses as a digest as a local image ID.
// - Docker Hub's registry hosts `registry-1.docker.io` (where containerd sends every
//   docker.io pull) and `registry.hub.docker.com` are Docker Hub, like `index.docker.io`:
//   all are normalized to docker.io, the name Notary signs Docker Hub repositories under.
//   `registry-1.docker.io/nginx` (no namespace) is rejected rather than guessed at:
//   distribution adds `library/` only for docker.io and index.docker.io.
//
// An explicit default port (`registry.example.com:443`) is not normalized away: it is
// another name for the registry over HTTPS, but containerd configures each host:port on its
// own (hosts.toml) and a Notary publisher who typed it signed that GUN. withoutDefaultPort
// gives the spelling without it, so callers can refuse the alias of a covered registry.

export interface ImageReference {
  original: string;
  domain: string;
  path: string;
  /** domain + '/' + path; also the Notary GUN. */
  name: string;
  /** 'latest' when neither tag nor digest was given. */
  tag?: string;
  /** 'sha256:<64 lowercase hex>' */
  digest?: string;
}

/**
 * An image reference that cannot be parsed or pinned. Its `name` stays 'ReferenceError', the
 * word logs and tests have always seen; the class is named apart from the built-in.
 */
export class ImageReferenceError extends Error {
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(`invalid image reference ${quote(input)}: ${reason}`);
    this.name = 'ReferenceError';
  }
}

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
/** Every other host name of Docker Hub; references through them are docker.io references. */
export const DOCKER_HUB_ALIASES: readonly string[] = Object.freeze([LEGACY_DEFAULT_DOMAIN, 'registry-1.docker.io', 'registry.hub.docker.com']);
const HTTPS_DEFAULT_PORT = ':443';
const OFFICIAL_PREFIX = 'library/';
const NAME_MAX = 255;
const TAG_MAX = 128;
// No valid reference is longer than a 255-character name spelled with 'index.docker.io',
// ':' + 128-character tag and '@sha256:' + 64 hex (462); longer input is rejected before
// any regex runs, so hostile input costs nothing.
const INPUT_MAX = 512;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_HOST = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[1-9][0-9]{0,4}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const HEX64 = /^[a-f0-9]{64}$/;
// What go-digest's Parse accepts, which containerd then resolves as a local image ID.
const DIGEST_ID = /^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const HAS_UPPER = /[A-Z]/;

// Pods repeat the same few references on every admission; the parsed form is frozen, so a
// parse can be shared. Bounded: hostile variety evicts the oldest, it cannot grow memory.
const PARSED_MAX = 1024;
const parsed = new Map<string, ImageReference>();

export function parseReference(input: string): ImageReference {
  const known = typeof input === 'string' ? parsed.get(input) : undefined;
  if (known) return known;
  const ref = parseUncached(input);
  if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value as string);
  parsed.set(input, ref);
  return ref;
}

function parseUncached(input: string): ImageReference {
  if (typeof input !== 'string') {
    throw new ImageReferenceError(String(input), 'image reference must be a string');
  }
  const fail = (reason: string): never => {
    throw new ImageReferenceError(input, reason);
  };
  if (input.length === 0) fail('empty reference');
  if (input.length > INPUT_MAX) fail(`longer than ${INPUT_MAX} characters`);
  const bad = badCharacter(input);
  if (bad) fail(bad);
  if (HEX64.test(input)) fail('a 64-character hex string is an image ID, not a repository name');
  if (DIGEST_ID.test(input)) fail('a bare digest is an image ID, not a repository name');

  let rest = input;
  let digest: string | undefined;
  const at = input.indexOf('@');
  if (at >= 0) {
    rest = input.slice(0, at);
    digest = input.slice(at + 1);
    if (digest.includes('@')) fail("more than one '@'");
    const problem = digestProblem(digest);
    if (problem) fail(problem);
  }

  let domain = DEFAULT_DOMAIN;
  let remainder = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (looksLikeDomain(first)) {
      domain = first;
      remainder = rest.slice(slash + 1);
      const problem = domainProblem(domain);
      if (problem) fail(problem);
    }
  }
  // index.docker.io/nginx is docker.io/library/nginx to distribution; the others are not.
  const registryHost = domain !== LEGACY_DEFAULT_DOMAIN && DOCKER_HUB_ALIASES.includes(domain) ? domain : undefined;
  if (DOCKER_HUB_ALIASES.includes(domain)) domain = DEFAULT_DOMAIN;

  let path = remainder;
  let tag: string | undefined;
  const colon = remainder.indexOf(':');
  if (colon >= 0) {
    path = remainder.slice(0, colon);
    tag = remainder.slice(colon + 1);
    if (tag === '') fail("empty tag after ':'");
    if (tag.length > TAG_MAX) fail(`tag longer than ${TAG_MAX} characters`);
    if (!TAG.test(tag)) fail(`invalid tag ${quote(tag)}: must match [A-Za-z0-9_][A-Za-z0-9_.-]*`);
  }

  if (path === '') fail('empty repository name');
  if (HAS_UPPER.test(path)) fail(`repository name ${quote(path)} must be lowercase`);
  if (registryHost !== undefined && !path.includes('/')) {
    fail(`${registryHost} is Docker Hub, which names official images library/${path}: write ${quote(`docker.io/library/${remainder}${digest !== undefined ? `@${digest}` : ''}`)}`);
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  for (const component of path.split('/')) {
    if (component === '') fail(`empty path component in ${quote(path)} (doubled or trailing '/')`);
    if (!PATH_COMPONENT.test(component)) {
      fail(`invalid path component ${quote(component)}: lowercase letters and digits, joined by '.', '_', '__' or '-'`);
    }
  }

  const name = `${domain}/${path}`;
  if (name.length > NAME_MAX) fail(`repository name longer than ${NAME_MAX} characters`);

  const ref: ImageReference = { original: input, domain, path, name };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = 'latest';
  return Object.freeze(ref);
}

/** Fully qualified `name[:tag][@digest]`: the form policies match against. */
export function formatReference(ref: ImageReference): string {
  let s = ref.name;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/**
 * The same reference with the registry's explicit HTTPS default port dropped
 * (`registry.example.com:443/x` -> `registry.example.com/x`, `docker.io:443/nginx` ->
 * `docker.io/library/nginx`), or undefined when it names no `:443`. Both spellings reach one
 * repository over HTTPS, so a policy covering one must not be escaped through the other.
 */
export function withoutDefaultPort(ref: ImageReference): ImageReference | undefined {
  if (!ref.domain.endsWith(HTTPS_DEFAULT_PORT)) return undefined;
  let s = `${ref.domain.slice(0, -HTTPS_DEFAULT_PORT.length)}/${ref.path}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  // Throws for an alias that has no valid spelling (registry-1.docker.io:443/nginx): the
  // caller refuses the reference with that reason.
  return parseReference(s);
}

/** The last pin made of each (shared, frozen) parsed reference: warm admissions repeat it. */
const lastPin = new WeakMap<ImageReference, { digest: string; pinned: string }>();

/** `name:tag@digest` (no tag when the reference had none). */
export function pinnedReference(ref: ImageReference, digest: string): string {
  const last = lastPin.get(ref);
  if (last?.digest === digest) return last.pinned;
  const pinned = makePin(ref, digest);
  lastPin.set(ref, { digest, pinned });
  return pinned;
}

function makePin(ref: ImageReference, digest: string): string {
  const problem = digestProblem(digest);
  if (problem) throw new ImageReferenceError(formatReference(ref), `cannot pin: ${problem}`);
  // Swapping one digest for another would run something other than what was asked for.
  if (ref.digest !== undefined && ref.digest !== digest) {
    throw new ImageReferenceError(formatReference(ref), `cannot pin to ${digest}: reference already names a different digest`);
  }
  return ref.tag !== undefined ? `${ref.name}:${ref.tag}@${digest}` : `${ref.name}@${digest}`;
}

/**
 * The short name docker prints: `nginx`, `user/app`, `localhost:5000/x`. Unlike docker,
 * the result always parses back to the same repository: `docker.io/foo.com/x` stays whole
 * (`foo.com/x` is on foo.com) and `library/<64 hex>` keeps its prefix (else an image ID).
 */
export function familiarName(ref: ImageReference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return ref.name;
  if (ref.path.startsWith(OFFICIAL_PREFIX)) {
    const rest = ref.path.slice(OFFICIAL_PREFIX.length);
    // A bare 64-hex name would read as an image ID.
    if (!rest.includes('/')) return HEX64.test(rest) ? ref.path : rest;
  }
  const first = ref.path.slice(0, ref.path.indexOf('/'));
  return looksLikeDomain(first) ? ref.name : ref.path;
}

/** Why `digest` cannot be pinned to, or undefined when it is `sha256:<64 lowercase hex>`. */
export function digestProblem(digest: string): string | undefined {
  if (digest === '') return "empty digest after '@'";
  const sep = digest.indexOf(':');
  if (sep < 0) return `digest ${quote(digest)} must be algorithm:hex`;
  const algorithm = digest.slice(0, sep);
  const encoded = digest.slice(sep + 1);
  if (algorithm !== 'sha256') return `unsupported digest algorithm ${quote(algorithm)}: only sha256 is accepted`;
  if (!HEX64.test(encoded)) {
    return `sha256 digest must be 64 lowercase hex characters, got ${quote(encoded)} (${encoded.length} characters)`;
  }
  return undefined;
}

// A first component is a registry only when it cannot be a Docker Hub namespace.
function looksLikeDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || HAS_UPPER.test(first);
}

export function domainProblem(domain: string): string | undefined {
  let host = domain;
  let port: string | undefined;
  if (domain.startsWith('[')) {
    const close = domain.indexOf(']');
    if (close < 0) return `invalid registry host ${quote(domain)}`;
    host = domain.slice(0, close + 1);
    const after = domain.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return `invalid registry host ${quote(domain)}`;
      port = after.slice(1);
    }
    if (!IPV6_HOST.test(host)) return `invalid registry host ${quote(host)}`;
  } else {
    const colon = domain.indexOf(':');
    if (colon >= 0) {
      host = domain.slice(0, colon);
      port = domain.slice(colon + 1);
    }
    if (host === '') return `empty registry host in ${quote(domain)}`;
    for (const component of host.split('.')) {
      if (!DOMAIN_COMPONENT.test(component)) return `invalid registry host ${quote(host)}`;
    }
  }
  if (HAS_UPPER.test(host)) return `registry host ${quote(host)} must be lowercase`;
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535)) {
    return `invalid registry port ${quote(port)}: must be 1-65535 without leading zeros`;
  }
  return undefined;
}

function badCharacter(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x20 && c < 0x7f) continue;
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return `contains whitespace at position ${i}`;
    if (c < 0x20 || c === 0x7f) return `contains control character ${codePoint(c)} at position ${i}`;
    return `contains non-ASCII character ${codePoint(s.codePointAt(i)!)} at position ${i}`;
  }
  return undefined;
}

function codePoint(c: number): string {
  return `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

// Inputs come from pod specs; escape anything that could forge log lines or hide text.
function quote(s: string): string {
  const shown = s.length > 300 ? `${s.slice(0, 300)}...` : s;
  let out = '"';
  for (const ch of shown) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c < 0x20 || c >= 0x7f) out += c > 0xffff ? `\\u{${c.toString(16)}}` : `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}
