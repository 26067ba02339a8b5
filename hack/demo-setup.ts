// The demo's trust data, made with the real tools against the local stack: images pushed to
// the registry, signed (or deliberately not) with the notary CLI, and one delegation left to
// lapse. What each image should get from the webhook is decided here, next to how it was made.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { republishDelegation } from '../test/support/publish.js';
import {
  makeEcdsaCert,
  notaryOk,
  pushImage,
  rootPublicKeyPem,
  type KeyMaterial,
  type SignedTarget,
  type Stack,
} from '../test/support/stack.js';

export type Expected = 'allowed' | 'denied';

export interface DemoImage {
  /** What this image demonstrates, for the table. */
  label: string;
  /** Full reference as a Pod would name it. */
  image: string;
  expected: Expected;
  /** For a denial: what the webhook's message must say (denied for another reason is a failure too). */
  because?: RegExp;
  /** The digest the registry holds for it (what an allowed tag must be pinned to). */
  digest: string;
}

export interface DemoRepository {
  gun: string;
  /** Root certificate served right after `notary init`: what the policy pins. */
  rootPem: string;
}

export interface DemoSetup {
  app: DemoRepository;
  stale: DemoRepository;
  images: DemoImage[];
  /** When the stale repository's targets/releases stops being valid. */
  staleExpiresAt: Date;
}

// Denial reasons are matched by their stable parts (the tag, "not sign", the role and
// "expired"), so that rewording a message does not turn a right answer into a wrong one.

/** A denial because no accepted role signs `tag`. */
export function notSigned(tag: string): RegExp {
  return new RegExp(`^(?=[\\s\\S]*"${escape(tag)}")(?=[\\s\\S]*\\bnot sign)`);
}

/** A denial because `role`'s metadata has expired. */
export function expiredRole(role: string): RegExp {
  return new RegExp(`\\b${escape(role)}:? expired\\b`);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Roles the demo policy requires; targets/ci exists in the repository but is not accepted. */
export const REQUIRED_ROLES = ['targets/releases'] as const;

/** How long the stale delegation stays valid after it is republished (the server refuses expired files). */
const STALE_LIFETIME_MS = 3000;

/**
 * Two repositories on the stack's registry:
 *   demo/app    targets/releases (ECDSA certificate) and targets/ci; 1.0 and 1.1 signed in
 *               releases, ci-build signed only by ci, 1.2-rc pushed and never signed.
 *   demo/stale  1.0 signed in targets/releases, which is then re-signed to expire seconds later.
 * The stale repository goes first so its clock runs while the other one is prepared.
 */
export async function prepareDemo(stack: Stack, log: (line: string) => void = () => {}, signal?: AbortSignal): Promise<DemoSetup> {
  const keys = mkdtempSync(join(stack.dir, 'demo-keys-'));
  const host = stack.registryHost;
  // Once interrupted, start nothing new: the stack is being torn down underneath.
  const cli = (args: string[]) => {
    signal?.throwIfAborted();
    return notaryOk(stack, args);
  };

  // Registry pushes need no trust data; start them all now and sign as they land.
  const push = (repo: string, tag: string) => pushImage(stack, repo, tag, `trustgate demo ${repo}:${tag}`);
  const pushes = {
    stale10: push('demo/stale', '1.0'),
    app10: push('demo/app', '1.0'),
    app11: push('demo/app', '1.1'),
    app12rc: push('demo/app', '1.2-rc'),
    appCi: push('demo/app', 'ci-build'),
  };
  // A rejected push is awaited later; keep Node from calling it unhandled in the meantime.
  for (const p of Object.values(pushes)) p.catch(() => undefined);

  const addhash = (gun: string, tag: string, t: SignedTarget, role: string) =>
    cli(['addhash', gun, tag, String(t.size), '--sha256', t.digest.slice('sha256:'.length), '--roles', role]);
  const delegate = async (gun: string, role: string, name: string): Promise<KeyMaterial> => {
    const key = makeEcdsaCert(keys, name);
    await cli(['delegation', 'add', gun, role, key.publicFile, '--all-paths']);
    await cli(['key', 'import', key.keyFile, '--role', role]);
    return key;
  };

  // --- demo/stale -------------------------------------------------------------------------
  const staleGun = `${host}/demo/stale`;
  log(`signing ${staleGun}:1.0 in targets/releases, then letting that delegation expire`);
  await cli(['init', '-p', staleGun]);
  const staleRoot = await rootPublicKeyPem(stack, staleGun);
  // The server must own the snapshot key so that it re-signs the snapshot when the
  // hand-signed delegation is published alone.
  await cli(['key', 'rotate', staleGun, 'snapshot', '-r']);
  const staleKey = await delegate(staleGun, 'targets/releases', 'stale-releases');
  const stale10 = await pushes.stale10;
  await addhash(staleGun, '1.0', stale10, 'targets/releases');
  await cli(['publish', staleGun]);
  const staleExpiresAt = new Date(Date.now() + STALE_LIFETIME_MS);
  signal?.throwIfAborted();
  await republishDelegation(stack, staleGun, 'targets/releases', staleKey.keyFile, staleExpiresAt);

  // --- demo/app ---------------------------------------------------------------------------
  const appGun = `${host}/demo/app`;
  log(`signing ${appGun}: 1.0 and 1.1 in targets/releases, ci-build in targets/ci only`);
  await cli(['init', '-p', appGun]);
  const appRoot = await rootPublicKeyPem(stack, appGun);
  await delegate(appGun, 'targets/releases', 'app-releases');
  await delegate(appGun, 'targets/ci', 'app-ci');
  await cli(['publish', appGun]);
  const [app10, app11, app12rc, appCi] = await Promise.all([pushes.app10, pushes.app11, pushes.app12rc, pushes.appCi]);
  await addhash(appGun, '1.0', app10, 'targets/releases');
  await addhash(appGun, '1.1', app11, 'targets/releases');
  await addhash(appGun, 'ci-build', appCi, 'targets/ci');
  await cli(['publish', appGun]);

  return {
    app: { gun: appGun, rootPem: appRoot },
    stale: { gun: staleGun, rootPem: staleRoot },
    staleExpiresAt,
    images: [
      { label: 'signed in releases', image: `${appGun}:1.0`, expected: 'allowed', digest: app10.digest },
      { label: 'signed, by digest', image: `${appGun}@${app11.digest}`, expected: 'allowed', digest: app11.digest },
      { label: 'pushed, never signed', image: `${appGun}:1.2-rc`, expected: 'denied', because: notSigned('1.2-rc'), digest: app12rc.digest },
      { label: 'signed by ci role only', image: `${appGun}:ci-build`, expected: 'denied', because: notSigned('ci-build'), digest: appCi.digest },
      { label: 'releases role expired', image: `${staleGun}:1.0`, expected: 'denied', because: expiredRole('targets/releases'), digest: stale10.digest },
    ],
  };
}
