/**
 * Which digest a TUF 1.0 repository signs for an image, under one policy's requirements.
 * The image `name:tag` is the target path `<registry>/<repository>:<tag>`; its
 * `hashes.sha256` is the manifest digest. Without required roles the target is whatever the
 * specification's search finds (§5.6.7); with required roles, each counted role must be
 * reached by that search for the path (so its delegation trusts it for the path) and list it.
 */
import { TufError } from '../tuf/index.js';
import type { SpecRepository } from '../tufrepo/updater.js';
import type { TargetFile } from '../tuf/tuf1/metadata.js';
import { refusal, type DelegationRequirement, type ImageTarget, type SignedDigest } from './signed-digest.js';

export function tufSignedDigest(
  repo: SpecRepository,
  repository: string,
  image: ImageTarget,
  required: DelegationRequirement | undefined,
  signal?: AbortSignal,
): Promise<SignedDigest> {
  const path = image.tag !== undefined ? `${repository}:${image.tag}` : undefined;
  return repo.withRoles(() => tufSignedDigestLoaded(repo, repository, image, required), signal, path);
}

/**
 * The same answer from the roles already verified, without a promise (a warm admission);
 * throws NeedsRole when the search reaches a role that is not loaded yet.
 */
export function tufSignedDigestLoaded(repo: SpecRepository, repository: string, image: ImageTarget, required: DelegationRequirement | undefined): SignedDigest {
  try {
    repo.assertFresh();
    if (image.tag !== undefined) return byPath(repo, `${repository}:${image.tag}`, image, required);
    // By digest alone: some tag of this repository that the same rules accept must carry it.
    const hex = image.digest!.slice('sha256:'.length);
    const candidates = repo.candidatesByDigestLoaded(repository, hex);
    let firstRefusal: SignedDigest | undefined;
    for (const c of candidates) {
      const result = byPath(repo, c.target.path, { digest: image.digest! }, required);
      if (result.ok) return result;
      firstRefusal ??= result;
    }
    const by = required ? ` by ${required.roles.join(', ')}` : '';
    return firstRefusal ?? refusal('unsigned', required?.roles[0] ?? 'targets', `digest ${image.digest} is not signed${by} for any tag of ${repository}`);
  } catch (e) {
    if (e instanceof TufError) return refusal(e.code, e.role, e.message);
    throw e;
  }
}

function describe(path: string, image: ImageTarget): string {
  return image.tag !== undefined ? `tag "${image.tag}"` : `digest ${image.digest} (as ${path})`;
}

function digestOf(target: TargetFile, role: string): string {
  const hex = target.hashes['sha256'];
  if (!hex || !/^[0-9a-f]{64}$/.test(hex)) throw new TufError('malformed', role, `target ${target.path} has no sha256 manifest digest`);
  return `sha256:${hex}`;
}

function byPath(repo: SpecRepository, path: string, image: ImageTarget, required: DelegationRequirement | undefined): SignedDigest {
  if (!required) {
    const found = repo.findTargetLoaded(path);
    if (!found) return refusal('unsigned', 'targets', `${describe(path, image)} is not signed: no role trusted for ${path} lists it`);
    const digest = digestOf(found.target, found.role);
    if (image.digest && digest !== image.digest) return refusal('digest-mismatch', found.role, `${found.role} signs ${path} as ${digest}, not ${image.digest}`);
    return { ok: true, digest, roles: [found.role], targets: [] };
  }
  const reached = repo.rolesForPathLoaded(path);
  const byDigest = new Map<string, string[]>();
  const unsigned: string[] = [];
  const untrusted: string[] = [];
  for (const role of required.roles) {
    if (!reached.has(role)) {
      untrusted.push(role);
      continue;
    }
    const target = reached.get(role);
    if (!target) {
      unsigned.push(role);
      continue;
    }
    const d = digestOf(target, role);
    byDigest.set(d, [...(byDigest.get(d) ?? []), role]);
  }
  if (byDigest.size > 1) {
    const detail = [...byDigest].map(([d, roles]) => `${roles.join(', ')}: ${d}`).join('; ');
    return refusal('digest-mismatch', required.roles.join(','), `required roles sign different digests for ${path} (${detail})`);
  }
  const [digest, signers] = [...byDigest][0] ?? [undefined, [] as string[]];
  if (digest && image.digest && digest !== image.digest) {
    return refusal('digest-mismatch', signers[0]!, `${signers.join(', ')} sign ${path} as ${digest}, not ${image.digest}`);
  }
  if (!digest || signers.length < required.threshold) {
    const parts: string[] = [];
    if (unsigned.length) parts.push(`is not signed by ${unsigned.join(', ')} (required)`);
    if (untrusted.length) parts.push(`cannot be signed by ${untrusted.join(', ')}: no delegation trusts ${untrusted.length === 1 ? 'it' : 'them'} for ${path}`);
    const need = required.threshold < required.roles.length ? ` (${signers.length} of ${required.threshold} needed)` : '';
    return refusal('unsigned', unsigned[0] ?? untrusted[0] ?? required.roles[0]!, `${describe(path, image)} ${parts.join('; ')}${need}`);
  }
  return { ok: true, digest, roles: signers, targets: [] };
}
