// The demo's TUF 1.0 repository, next to the Notary one: static files built with
// @tufjs/models (the test suite's builder, independent of trustgate's client) and signed with
// fresh keys, listing images pushed to the demo's registry under the manifest digests and
// sizes the registry answered with, so that a pinned reference really pulls.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TargetFile } from '@tufjs/models';
import { pushImage, type SignedTarget, type Stack } from '../test/support/stack.js';
import { TufRepo } from '../test/support/tuf1-repo.js';
import { expiredRole, notSigned, type DemoImage } from './demo-setup.js';

/** The delegated role the demo policy requires for demo/tuf/app. */
export const TUF_RELEASE_ROLE = 'demo-release';
/** A delegated role whose metadata is signed to lapse while the demo runs. */
export const TUF_NIGHTLY_ROLE = 'demo-nightly';

/**
 * How long demo-nightly's metadata stays valid after it is signed. Static files need no
 * server to accept them while valid (notary-server does), so a second is enough.
 */
const NIGHTLY_LIFETIME_MS = 1000;

export interface TufDemo {
  /** registry/repository of the image each policy covers. */
  app: string;
  nightly: string;
  /** 1.root.json as its publisher hands it out: what the policies trust. */
  trustedRoot: string;
  images: DemoImage[];
  /** When demo-nightly's metadata stops being valid. */
  nightlyExpiresAt: Date;
}

/**
 * One repository, published into `metadataDir` (consistent snapshots, hashes in the snapshot):
 *   targets       delegates demo/tuf/app:* to demo-release and demo/tuf/nightly:* to demo-nightly
 *   demo-release  lists demo/tuf/app:1.0; demo/tuf/app:1.1-rc is pushed and never listed
 *   demo-nightly  lists demo/tuf/nightly:1.0 and expires seconds after it is signed
 */
export async function prepareTufDemo(stack: Stack, metadataDir: string, log: (line: string) => void = () => {}, signal?: AbortSignal): Promise<TufDemo> {
  const host = stack.registryHost;
  const app = `${host}/demo/tuf/app`;
  const nightly = `${host}/demo/tuf/nightly`;
  const push = (repo: string, tag: string) => pushImage(stack, repo, tag, `trustgate demo ${repo}:${tag}`);
  const pushes = [push('demo/tuf/app', '1.0'), push('demo/tuf/app', '1.1-rc'), push('demo/tuf/nightly', '1.0')];
  for (const p of pushes) p.catch(() => undefined);
  const [app10, app11rc, nightly10] = (await Promise.all(pushes)) as [SignedTarget, SignedTarget, SignedTarget];
  signal?.throwIfAborted();

  log(`publishing TUF 1.0 metadata for ${host}/demo/tuf: app:1.0 in ${TUF_RELEASE_ROLE}, nightly:1.0 in ${TUF_NIGHTLY_ROLE} (expiring)`);
  const repo = new TufRepo({ kinds: { root: 'ecdsa-p256', timestamp: 'ed25519', snapshot: 'ed25519', targets: 'ecdsa-p384' } });
  repo.delegate(TUF_RELEASE_ROLE, { paths: [`${app}:*`], kind: 'ecdsa-p256' });
  repo.delegate(TUF_NIGHTLY_ROLE, { paths: [`${nightly}:*`], kind: 'ed25519' });
  list(repo, TUF_RELEASE_ROLE, `${app}:1.0`, app10);
  list(repo, TUF_NIGHTLY_ROLE, `${nightly}:1.0`, nightly10);
  // The specification's dates have whole seconds: round up, so it never expires early.
  const nightlyExpiresAt = new Date(Math.ceil((Date.now() + NIGHTLY_LIFETIME_MS) / 1000) * 1000);
  (repo.targets.get(TUF_NIGHTLY_ROLE)!.signed as { expires: string }).expires = nightlyExpiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (const [name, bytes] of repo.publish({ hashes: true })) writeFileSync(join(metadataDir, name), bytes);

  return {
    app,
    nightly,
    trustedRoot: repo.roots.get(1)!.toString('utf8'),
    nightlyExpiresAt,
    images: [
      { label: 'TUF: signed in release', image: `${app}:1.0`, expected: 'allowed', digest: app10.digest },
      { label: 'TUF: never listed', image: `${app}:1.1-rc`, expected: 'denied', because: notSigned('1.1-rc'), digest: app11rc.digest },
      { label: 'TUF: role expired', image: `${nightly}:1.0`, expected: 'denied', because: expiredRole(TUF_NIGHTLY_ROLE), digest: nightly10.digest },
    ],
  };
}

/** The target entry of an image: path registry/repository:tag, the manifest's size and digest. */
function list(repo: TufRepo, role: string, path: string, pushed: SignedTarget): void {
  const sha256 = pushed.digest.slice('sha256:'.length);
  repo.targets.get(role)!.signed.addTarget(new TargetFile({ path, length: pushed.size, hashes: { sha256 } }));
}
