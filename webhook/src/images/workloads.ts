// Every image a Pod or a workload's pod template would run, with the JSON pointer of the
// field it came from so admission can patch exactly that field.
//
// Input is whatever the API server (or an earlier mutating webhook) sent: mutating
// webhooks run before schema validation, so any field may be missing or of the wrong type.
// A wrong type is an error (we cannot tell what would run); a missing list is no images.
import { isObject } from '../common/is-object.js';

export type ImageKind = 'container' | 'initContainer' | 'ephemeralContainer' | 'volume';

/** One field of a pod spec that names an image the kubelet pulls. */
export interface ImageField {
  /** The pod spec list whose items may carry an image. */
  list: string;
  kind: ImageKind;
  /** Where the image reference sits inside one item. */
  image: readonly string[];
}

/**
 * Every image-bearing field of a pod spec: what the kubelet pulls is exactly what is listed
 * here. A new image-bearing field in Kubernetes is one more line (README "What it checks"
 * lists the same fields; the tests enumerate this table).
 */
export const IMAGE_FIELDS: readonly ImageField[] = Object.freeze([
  { list: 'containers', kind: 'container', image: ['image'] },
  { list: 'initContainers', kind: 'initContainer', image: ['image'] },
  { list: 'ephemeralContainers', kind: 'ephemeralContainer', image: ['image'] },
  // Image volumes (KEP-4639): the kubelet pulls the reference and mounts it into containers.
  { list: 'volumes', kind: 'volume', image: ['image', 'reference'] },
]);

export interface ImageUse {
  kind: ImageKind;
  /** The container's or volume's name, or `<list>[<index>]` when it has no usable name. */
  name: string;
  image: string;
  /** RFC 6901 pointer to the image field, e.g. /spec/containers/0/image or /spec/volumes/1/image/reference. */
  pointer: string;
}

export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadError';
  }
}

export interface GroupKind {
  group: string;
  kind: string;
}

const TEMPLATE = ['spec', 'template', 'spec'];

// Keyed by "group/kind" (core group is ""): a Deployment from some other API group is not ours.
const POD_SPEC_PATHS: ReadonlyMap<string, readonly string[]> = new Map([
  ['/Pod', ['spec']],
  ['/ReplicationController', TEMPLATE],
  ['apps/Deployment', TEMPLATE],
  ['apps/ReplicaSet', TEMPLATE],
  ['apps/StatefulSet', TEMPLATE],
  ['apps/DaemonSet', TEMPLATE],
  ['batch/Job', TEMPLATE],
  ['batch/CronJob', ['spec', 'jobTemplate', 'spec', 'template', 'spec']],
]);

/** Path of the pod spec inside an object of this kind, or undefined when the kind carries no pod spec we know. */
export function podSpecPath(gk: GroupKind): readonly string[] | undefined {
  return POD_SPEC_PATHS.get(`${gk.group}/${gk.kind}`);
}

export function isPodKind(gk: GroupKind): boolean {
  return gk.group === '' && gk.kind === 'Pod';
}

/**
 * Images of an object of kind `gk`. Throws WorkloadError for a kind without a pod spec and
 * for an object whose shape does not let us see every image.
 */
export function imagesOf(gk: GroupKind, object: unknown): ImageUse[] {
  const path = podSpecPath(gk);
  if (path === undefined) throw new WorkloadError(`kind ${describeKind(gk)} has no pod spec trustgate knows`);
  if (!isObject(object)) throw new WorkloadError(`${gk.kind} object must be a JSON object, got ${typeName(object)}`);
  let node: unknown = object;
  for (let i = 0; i < path.length; i++) {
    const field = path[i]!;
    const next: unknown = (node as Record<string, unknown>)[field];
    const where = path.slice(0, i + 1).join('.');
    if (next === undefined || next === null) throw new WorkloadError(`${gk.kind} has no ${where}`);
    if (!isObject(next)) throw new WorkloadError(`${gk.kind} ${where} must be an object, got ${typeName(next)}`);
    node = next;
  }
  return imagesOfPodSpec(node, '/' + path.join('/'), path.join('.'));
}

/** Images of one pod spec found at `pointer` (display name `where` in errors). */
export function imagesOfPodSpec(spec: unknown, pointer = '/spec', where = 'spec'): ImageUse[] {
  if (!isObject(spec)) throw new WorkloadError(`${where} must be an object, got ${typeName(spec)}`);
  const out: ImageUse[] = [];
  for (const field of IMAGE_FIELDS) {
    const list = spec[field.list];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new WorkloadError(`${where}.${field.list} must be a list, got ${typeName(list)}`);
    // Error texts are built only on the error path: this runs for every Pod the cluster creates.
    for (let i = 0; i < list.length; i++) {
      const item: unknown = list[i];
      if (!isObject(item)) throw new WorkloadError(`${itemAt(where, field, i)} must be an object, got ${typeName(item)}`);
      const image = imageAt(item, field.image, where, field, i);
      // A Pod without an image fails API validation later; a workload template may leave
      // it to be filled in. Either way nothing runs from this field yet.
      if (image === undefined) continue;
      const name = item['name'];
      if (name !== undefined && name !== null && typeof name !== 'string') {
        throw new WorkloadError(`${itemAt(where, field, i)}.name must be a string, got ${typeName(name)}`);
      }
      out.push({
        kind: field.kind,
        name: typeof name === 'string' && name !== '' ? name : `${field.list}[${i}]`,
        image,
        pointer: `${pointer}/${field.list}/${i}/${field.image.join('/')}`,
      });
    }
  }
  return out;
}

function itemAt(where: string, field: ImageField, i: number): string {
  return `${where}.${field.list}[${i}]`;
}

/** The image string at `path` inside one item; undefined when the item names none (e.g. a volume of another type). */
function imageAt(item: Record<string, unknown>, path: readonly string[], where: string, field: ImageField, index: number): string | undefined {
  let node: unknown = item;
  const at = (i: number) => `${itemAt(where, field, index)}.${path.slice(0, i + 1).join('.')}`;
  for (let i = 0; i < path.length; i++) {
    const next: unknown = (node as Record<string, unknown>)[path[i]!];
    if (next === undefined || next === null) return undefined;
    if (i === path.length - 1) {
      if (next === '') return undefined;
      if (typeof next !== 'string') throw new WorkloadError(`${at(i)} must be a string, got ${typeName(next)}`);
      return next;
    }
    if (!isObject(next)) throw new WorkloadError(`${at(i)} must be an object, got ${typeName(next)}`);
    node = next;
  }
  return undefined;
}

function describeKind(gk: GroupKind): string {
  return gk.group === '' ? gk.kind : `${gk.kind}.${gk.group}`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}
