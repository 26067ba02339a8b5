// What the demo sends and what it accepts back: one Pod per image, one Deployment of the
// images that should pass, and the check of each answer against how the image was made.
import type { Answer } from './demo-reviews.js';
import type { DemoImage } from './demo-setup.js';
import { shortDigest, shortReason } from './demo-table.js';

export interface Case {
  label: string;
  /** Images of the request, in container order. */
  images: DemoImage[];
  kind: 'Pod' | 'Deployment';
}

export function cases(images: DemoImage[]): Case[] {
  const pods: Case[] = images.map((i) => ({ label: i.label, images: [i], kind: 'Pod' }));
  const good = images.filter((i) => i.expected === 'allowed');
  return [...pods, { label: 'Deployment, /validate', images: good, kind: 'Deployment' }];
}

/** allowed when every image is; a tag must come back pinned to the digest the registry holds. */
export function judge(c: Case, answer: Answer): { ok: boolean; detail: string } {
  const expectAllowed = c.images.every((i) => i.expected === 'allowed');
  if (!answer.allowed) {
    const message = answer.message ?? '';
    const ok = !expectAllowed && c.images.every((i) => i.because === undefined || i.because.test(message));
    return { ok, detail: shortReason(message) };
  }
  if (!expectAllowed) return { ok: false, detail: 'allowed, but this image should have been denied' };
  if (c.kind === 'Deployment') return { ok: true, detail: `${c.images.length === 2 ? 'both' : `all ${c.images.length}`} signed (validate: no patch)` };
  const img = c.images[0]!;
  if (img.image.includes('@')) {
    // A digest is already immutable: nothing to pin, the webhook only checked it is signed.
    return answer.pinned === undefined
      ? { ok: true, detail: 'signed digest, left as is' }
      : { ok: false, detail: `unexpected pin ${answer.pinned}` };
  }
  const want = `${img.image}@${img.digest}`;
  if (answer.pinned === want) return { ok: true, detail: `pinned to ${shortDigest(img.digest)}` };
  return { ok: false, detail: answer.pinned ? `pinned to ${answer.pinned}, expected ${img.digest}` : 'allowed without pinning the tag' };
}
