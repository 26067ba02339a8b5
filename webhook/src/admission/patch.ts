// The JSON Patch that pins images. It must be a no-op-free patch: under
// reinvocationPolicy IfNeeded the API server calls us again after other webhooks, and a
// patch every time would make it look like the object keeps changing.
import { isObject } from './review.js';

export const ORIGINAL_IMAGES_ANNOTATION = 'trustgate.dev/original-images';

export interface PatchOp {
  op: 'add' | 'replace' | 'remove' | 'test';
  path: string;
  value?: unknown;
}

export interface Pin {
  /** Pointer to the image field. */
  pointer: string;
  original: string;
  pinned: string;
}

/** RFC 6901 escaping of one reference token. */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Operations replacing each pinned image and recording the originals under
 * `annotationKey` (a JSON map pointer -> original). Entries already recorded are kept:
 * they name what the user first asked for, before any earlier pinning.
 */
export function pinPatch(object: Record<string, unknown>, pins: Pin[], annotationKey = ORIGINAL_IMAGES_ANNOTATION): PatchOp[] {
  if (pins.length === 0) return [];
  const ops: PatchOp[] = pins.map((p) => ({ op: 'replace', path: p.pointer, value: p.pinned }));

  const metadata = object['metadata'];
  const annotations = isObject(metadata) ? metadata['annotations'] : undefined;
  const existing = isObject(annotations) ? annotations[annotationKey] : undefined;
  const recorded = parseRecorded(existing);
  const merged: Record<string, string> = { ...(recorded ?? {}) };
  for (const p of pins) {
    if (!Object.hasOwn(merged, p.pointer)) merged[p.pointer] = p.original;
  }
  const value = JSON.stringify(sortKeys(merged));
  if (typeof existing === 'string' && existing === value) return ops;

  if (!isObject(metadata)) {
    ops.push({ op: 'add', path: '/metadata', value: { annotations: { [annotationKey]: value } } });
  } else if (!isObject(annotations)) {
    ops.push({ op: 'add', path: '/metadata/annotations', value: { [annotationKey]: value } });
  } else {
    // 'add' on an existing member replaces it (RFC 6902 4.1), so one op covers both cases.
    ops.push({ op: 'add', path: `/metadata/annotations/${escapePointerToken(annotationKey)}`, value });
  }
  return ops;
}

/** A recorded map of strings, or undefined when absent or not ours to read (then rewritten whole). */
function parseRecorded(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    const parsed: unknown = JSON.parse(v);
    if (!isObject(parsed)) return undefined;
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(parsed)) if (typeof val === 'string') out[k] = val;
    return out;
  } catch {
    return undefined;
  }
}

function sortKeys(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function encodePatch(ops: PatchOp[]): string {
  return Buffer.from(JSON.stringify(ops), 'utf8').toString('base64');
}
