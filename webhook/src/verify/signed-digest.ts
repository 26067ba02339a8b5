/**
 * Which digest the trust data signs for an image, under one policy's requirements. Pure:
 * a verified repository, a parsed reference and a clock in; a digest or a reason out.
 */
import { TufError, type SignedTarget, type TrustedRepository, type TufErrorCode } from '../tuf/index.js';
import { failure, type Failure } from './failure.js';

export interface DelegationRequirement {
  roles: string[];
  /** How many of `roles` must sign the same digest. */
  threshold: number;
}

export interface ImageTarget {
  tag?: string;
  digest?: string;
}

export type SignedDigest =
  | { ok: true; digest: string; roles: string[]; targets: SignedTarget[] }
  | ({ ok: false; role: string; reason: string } & Failure);

/** Trust data refused (a TufError's code), or valid trust data that does not vouch ('unsigned', 'digest-mismatch'). */
type RefusalCode = TufErrorCode | 'unsigned' | 'digest-mismatch';

/** A refusal with its cause: the policy's when the trust data was valid, else the trust data's. */
export function refusal(code: RefusalCode, role: string, reason: string): SignedDigest {
  const why = code === 'unsigned' || code === 'digest-mismatch' ? failure('policy', code) : failure('trust-data', code);
  return { ok: false, role, reason, ...why };
}

/** Docker's rule when no delegation is required: `targets/releases` first, then `targets`. */
const DOCKER_ROLES = ['targets/releases', 'targets'];

export function signedDigest(
  repo: TrustedRepository,
  image: ImageTarget,
  required: DelegationRequirement | undefined,
  now: Date,
): SignedDigest {
  try {
    repo.assertFresh(now);
  } catch (e) {
    if (e instanceof TufError) return refusal(e.code, e.role, e.message);
    throw e;
  }
  return required ? byRequiredRoles(repo, image, required, now) : byDockerRule(repo, image, now);
}

function describe(image: ImageTarget): string {
  return image.tag ? `tag "${image.tag}"` : `digest ${image.digest}`;
}

function byDockerRule(repo: TrustedRepository, image: ImageTarget, now: Date): SignedDigest {
  let misses: TufError[] | undefined;
  for (const role of DOCKER_ROLES) {
    const found = lookup(repo, role, image, now);
    if (found instanceof TufError) {
      (misses ??= []).push(found);
      continue;
    }
    if (image.digest && found.digest !== image.digest) {
      return refusal('digest-mismatch', role, `${role} signs ${describe(image)} as ${found.digest}, not ${image.digest}`);
    }
    return { ok: true, digest: found.digest, roles: [role], targets: [found] };
  }
  // Say why the preferred role could not vouch (expired? under-signed?) before "unsigned".
  const telling = misses?.find((m) => m.code !== 'not-found');
  if (telling) return refusal(telling.code, telling.role, telling.message);
  return refusal('unsigned', 'targets', `${describe(image)} is not signed in targets/releases or targets`);
}

function byRequiredRoles(repo: TrustedRepository, image: ImageTarget, req: DelegationRequirement, now: Date): SignedDigest {
  const signedBy = new Map<string, SignedTarget[]>();
  const problems: TufError[] = [];
  for (const role of req.roles) {
    const found = lookup(repo, role, image, now);
    if (found instanceof TufError) {
      problems.push(found);
      continue;
    }
    const list = signedBy.get(found.digest) ?? [];
    list.push(found);
    signedBy.set(found.digest, list);
  }
  if (signedBy.size > 1) {
    const detail = [...signedBy].map(([d, ts]) => `${ts.map((t) => t.role).join(', ')}: ${d}`).join('; ');
    return refusal('digest-mismatch', req.roles.join(','), `required roles sign different digests for ${describe(image)} (${detail})`);
  }
  const [digest, targets] = [...signedBy][0] ?? [undefined, []];
  if (digest && image.digest && digest !== image.digest) {
    return refusal('digest-mismatch', targets[0]!.role, `${targets.map((t) => t.role).join(', ')} sign ${describe(image)} as ${digest}, not ${image.digest}`);
  }
  if (!digest || targets.length < req.threshold) {
    const first = problems.find((p) => p.code !== 'not-found') ?? problems[0];
    return refusal(first && first.code !== 'not-found' ? first.code : 'unsigned', first?.role ?? req.roles[0]!, unmetReason(image, req, targets, problems));
  }
  return { ok: true, digest, roles: targets.map((t) => t.role), targets };
}

/**
 * Each fact once: which required roles do not sign the image, what is required, which roles
 * did sign (when that is not implied), and why a role could not be read (when not simply
 * "does not sign"). E.g. `tag "1.2-rc" is not signed by targets/releases (required)`.
 */
function unmetReason(image: ImageTarget, req: DelegationRequirement, signed: SignedTarget[], problems: TufError[]): string {
  const unsigned = problems.filter((p) => p.code === 'not-found').map((p) => p.role);
  const broken = problems.filter((p) => p.code !== 'not-found');
  const all = req.threshold === req.roles.length;
  const required = req.roles.length === 1 ? 'required' : all ? `required: all of ${req.roles.join(', ')}` : `required: ${req.threshold} of ${req.roles.join(', ')}`;
  const signers = !all && signed.length > 0 ? `; signed by ${signed.map((t) => t.role).join(', ')}` : '';
  const parts: string[] = [];
  if (unsigned.length > 0) parts.push(`is not signed by ${unsigned.join(', ')}`);
  if (broken.length > 0) parts.push(`has no valid signature from ${broken.map((p) => p.role).join(', ')}`);
  // TufError messages start with their role ("targets/qa: expired at ..."): that names it.
  const why = broken.length > 0 ? `: ${broken.map((p) => p.message).join('; ')}` : '';
  return `${describe(image)} ${parts.join(' and ')} (${required}${signers})${why}`;
}

/**
 * A tag is looked up by name; a bare digest must be some target's digest in that role.
 * `tag@digest` is looked up by tag and compared by the callers.
 */
function lookup(repo: TrustedRepository, role: string, image: ImageTarget, now: Date): SignedTarget | TufError {
  if (image.tag) return repo.findInRole(role, image.tag, now);
  const found = repo.findDigestInRole(role, image.digest!, now);
  if (found instanceof TufError) return found;
  return found[0] ?? new TufError('not-found', role, `signs no target with digest ${image.digest}`);
}
