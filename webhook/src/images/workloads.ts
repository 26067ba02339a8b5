// Every image a Pod or a workload's pod template would run, with the JSON pointer of the
// field it came from so admission can patch exactly that field.
//
// Input is whatever the API server (or an earlier mutating webhook) sent: mutating
// webhooks run before schema validation, so any field may be missing or of the wrong type.
// A wrong type is an error (we cannot tell what would run); a missing list is no images.

export type ContainerKind = 'container' | 'initContainer' | 'ephemeralContainer';

export interface ContainerImage {
  /** Container name, or `<list>[<index>]` when the container has no usable name. */
  containerName: string;
  kind: ContainerKind;
  image: string;
  /** RFC 6901 pointer to the image field, e.g. /spec/containers/0/image. */
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

const LISTS: ReadonlyArray<[field: string, kind: ContainerKind]> = [
  ['containers', 'container'],
  ['initContainers', 'initContainer'],
  ['ephemeralContainers', 'ephemeralContainer'],
];

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
export function imagesOf(gk: GroupKind, object: unknown): ContainerImage[] {
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
export function imagesOfPodSpec(spec: unknown, pointer = '/spec', where = 'spec'): ContainerImage[] {
  if (!isObject(spec)) throw new WorkloadError(`${where} must be an object, got ${typeName(spec)}`);
  const out: ContainerImage[] = [];
  for (const [field, kind] of LISTS) {
    const list = spec[field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new WorkloadError(`${where}.${field} must be a list, got ${typeName(list)}`);
    list.forEach((c: unknown, i: number) => {
      const at = `${where}.${field}[${i}]`;
      if (!isObject(c)) throw new WorkloadError(`${at} must be an object, got ${typeName(c)}`);
      const image = c['image'];
      // A Pod without an image fails API validation later; a workload template may leave
      // it to be filled in. Either way nothing runs from this field yet.
      if (image === undefined || image === null || image === '') return;
      if (typeof image !== 'string') throw new WorkloadError(`${at}.image must be a string, got ${typeName(image)}`);
      const name = c['name'];
      if (name !== undefined && name !== null && typeof name !== 'string') {
        throw new WorkloadError(`${at}.name must be a string, got ${typeName(name)}`);
      }
      out.push({
        containerName: typeof name === 'string' && name !== '' ? name : `${field}[${i}]`,
        kind,
        image,
        pointer: `${pointer}/${field}/${i}/image`,
      });
    });
  }
  return out;
}

function describeKind(gk: GroupKind): string {
  return gk.group === '' ? gk.kind : `${gk.kind}.${gk.group}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}
