// The JSON Patch that pins images. It must be a no-op-free patch: under
// reinvocationPolicy IfNeeded the API server calls us again after other webhooks, and a
// patch every time would make it look like the object keeps changing.
import { parseReference } from '../images/reference.js';
import { isObject } from '../common/is-object.js';

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
 * `annotationKey` (a JSON map pointer -> original), so the annotation describes the Pod as
 * it is after this admission:
 * - an entry written earlier in this same request (a re-invocation after another webhook
 *   swapped the image) is kept: it names what the user asked for;
 * - an entry carried over from `oldObject` is replaced when this UPDATE changed the image
 *   at its pointer, and dropped when the image there is no longer a pin of it.
 */
export function pinPatch(object: Record<string, unknown>, pins: Pin[], annotationKey = ORIGINAL_IMAGES_ANNOTATION, oldObject?: unknown): PatchOp[] {
  const ops: PatchOp[] = pins.map((p) => ({ op: 'replace', path: p.pointer, value: p.pinned }));

  const metadata = object['metadata'];
  const annotations = isObject(metadata) ? metadata['annotations'] : undefined;
  const existing = isObject(annotations) ? annotations[annotationKey] : undefined;
  if (pins.length === 0 && existing === undefined) return [];
  const recorded = parseRecorded(existing) ?? {};
  const inherited = isObject(oldObject) ? parseRecorded(annotationOf(oldObject, annotationKey)) : undefined;
  const pinned = new Map(pins.map((p) => [p.pointer, p]));
  const merged: Record<string, string> = {};
  for (const [pointer, original] of Object.entries(recorded)) {
    if (pinned.has(pointer)) {
      if (inherited?.[pointer] !== original) merged[pointer] = original;
    } else if (isPinOf(imageAt(object, pointer), original)) {
      merged[pointer] = original;
    }
  }
  for (const p of pins) if (!Object.hasOwn(merged, p.pointer)) merged[p.pointer] = p.original;

  const value = JSON.stringify(sortKeys(merged));
  if (typeof existing === 'string' && existing === value) return ops;
  if (Object.keys(merged).length === 0) {
    if (existing !== undefined) ops.push({ op: 'remove', path: `/metadata/annotations/${escapePointerToken(annotationKey)}` });
    return ops;
  }

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

function annotationOf(object: Record<string, unknown>, key: string): unknown {
  const md = object['metadata'];
  const ann = isObject(md) ? md['annotations'] : undefined;
  return isObject(ann) ? ann[key] : undefined;
}

/** The string at an RFC 6901 pointer, or undefined. */
function imageAt(object: Record<string, unknown>, pointer: string): string | undefined {
  let at: unknown = object;
  for (const raw of pointer.split('/').slice(1)) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(at)) at = /^\d+$/.test(token) ? at[Number(token)] : undefined;
    else if (isObject(at)) at = at[token];
    else return undefined;
  }
  return typeof at === 'string' ? at : undefined;
}

/** True when `image` is `original` pinned to a digest: same repository and tag, plus a digest. */
function isPinOf(image: string | undefined, original: string): boolean {
  if (image === undefined) return false;
  try {
    const now = parseReference(image);
    const asked = parseReference(original);
    return now.digest !== undefined && now.name === asked.name && now.tag === asked.tag;
  } catch {
    return false;
  }
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

/** Encoded patches of Pods that carry no annotation of ours yet, by what decides them. */
const fresh = new Map<string, string | undefined>();
const FRESH_MAX = 512;

/**
 * pinPatch, encoded for the AdmissionReview (base64 JSON), or undefined when nothing is to
 * change. A Pod created without our annotation (nearly every Pod) gets a patch decided by
 * its pins and by where its metadata stops, so those patches are made once: the same
 * Deployment's Pods repeat them.
 */
export function encodedPinPatch(object: Record<string, unknown>, pins: Pin[], annotationKey: string, oldObject?: unknown): string | undefined {
  const metadata = object['metadata'];
  const annotations = isObject(metadata) ? metadata['annotations'] : undefined;
  const own = oldObject === undefined && !(isObject(annotations) && annotations[annotationKey] !== undefined);
  if (!own) {
    const ops = pinPatch(object, pins, annotationKey, oldObject);
    return ops.length === 0 ? undefined : encodePatch(ops);
  }
  let key = `${!isObject(metadata) ? 'm' : !isObject(annotations) ? 'a' : 'k'}${annotationKey}`;
  for (const p of pins) key += `\n${p.pointer}\n${p.original}\n${p.pinned}`;
  if (fresh.has(key)) return fresh.get(key);
  const ops = pinPatch(object, pins, annotationKey);
  const encoded = ops.length === 0 ? undefined : encodePatch(ops);
  if (fresh.size >= FRESH_MAX) fresh.delete(fresh.keys().next().value as string);
  fresh.set(key, encoded);
  return encoded;
}
