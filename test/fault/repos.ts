/**
 * Signed repositories on the real stack for the fault and load suites: one notary init per
 * GUN (the CLI reuses its trust dir's root key, so one pinned key covers them all), images
 * pushed to the stack registry and their digests signed into targets.
 */
import { notaryOk, pushImage, rootPublicKeyPem, type SignedTarget, type Stack } from '../support/stack.js';

export interface SignedRepo {
  /** Repository path in the registry, e.g. faults/app. */
  repo: string;
  gun: string;
  /** tag -> what was signed for it. */
  tags: Map<string, SignedTarget>;
}

export async function createSignedRepo(stack: Stack, repo: string, tags: string[]): Promise<SignedRepo> {
  const gun = `${stack.registryHost}/${repo}`;
  await notaryOk(stack, ['init', gun]);
  const signed = new Map<string, SignedTarget>();
  for (const tag of tags) {
    const pushed = await pushImage(stack, repo, tag, `${repo} ${tag}`);
    await notaryOk(stack, ['addhash', gun, tag, String(pushed.size), '--sha256', pushed.digest.slice('sha256:'.length)]);
    signed.set(tag, pushed);
  }
  await notaryOk(stack, ['publish', gun]);
  return { repo, gun, tags: signed };
}

/** Sign one more tag into an existing repository and publish. */
export async function signTag(stack: Stack, r: SignedRepo, tag: string): Promise<SignedTarget> {
  const pushed = await pushImage(stack, r.repo, tag, `${r.repo} ${tag}`);
  await notaryOk(stack, ['addhash', r.gun, tag, String(pushed.size), '--sha256', pushed.digest.slice('sha256:'.length), '-p']);
  r.tags.set(tag, pushed);
  return pushed;
}

/** The root certificate a policy pins (shared by every GUN made with the stack's trust dir). */
export function pinnedRoot(stack: Stack, r: SignedRepo): Promise<string> {
  return rootPublicKeyPem(stack, r.gun);
}
