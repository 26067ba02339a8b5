// AdmissionReviews as a real API server sends them, built from the recorded fixtures
// (test/fixtures/admission), and the reading of the webhook's answers.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEMO_NAMESPACE = 'demo';

function fixture(root: string, name: string): any {
  return JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'admission', name), 'utf8'));
}

/** A container as the API server has it after defaulting: the fixture's first one, renamed. */
function container(template: any, name: string, image: string): any {
  const c = structuredClone(template);
  c.name = name;
  c.image = image;
  delete c.ports;
  return c;
}

/** managedFields of a client that set exactly these containers (the fixture's were for others). */
function managedFields(template: any, names: string[], prefix: string[]): any[] {
  const containers: Record<string, unknown> = {};
  for (const n of names) containers[`k:{"name":"${n}"}`] = { '.': {}, 'f:image': {}, 'f:name': {} };
  let fields: Record<string, unknown> = { 'f:containers': containers };
  for (const p of [...prefix].reverse()) fields = { [p]: fields };
  const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return [{ ...template, manager: 'kubectl-create', operation: 'Update', time, fieldsV1: { 'f:spec': fields } }];
}

function request(review: any, name: string, namespace: string): any {
  const r = review.request;
  r.uid = randomUUID();
  r.name = name;
  r.namespace = namespace;
  r.userInfo.username = 'newcomer@example.com';
  r.options.fieldManager = 'kubectl-create';
  const m = r.object.metadata;
  m.name = name;
  m.namespace = namespace;
  m.labels = { app: name };
  // kubectl create, unlike apply, records no last-applied configuration.
  delete m.annotations;
  return r;
}

/** Pod CREATE with one container running `image` (what /mutate sees for `kubectl run`). */
export function podCreate(root: string, name: string, image: string, namespace = DEMO_NAMESPACE): unknown {
  const review = fixture(root, 'pod-create.json');
  const r = request(review, name, namespace);
  const spec = r.object.spec;
  spec.containers = [container(spec.containers[0], 'app', image)];
  delete spec.initContainers;
  r.object.metadata.managedFields = managedFields(r.object.metadata.managedFields[0], ['app'], []);
  return review;
}

/** Deployment CREATE whose pod template runs these images, one container each (what /validate sees). */
export function deploymentCreate(root: string, name: string, images: string[], namespace = DEMO_NAMESPACE): unknown {
  const review = fixture(root, 'deployment-create.json');
  const r = request(review, name, namespace);
  r.object.spec.selector = { matchLabels: { app: name } };
  const template = r.object.spec.template;
  template.metadata.labels = { app: name };
  const names = images.map((_, i) => (i === 0 ? 'app' : `sidecar-${i}`));
  template.spec.containers = images.map((image, i) => container(template.spec.containers[0], names[i]!, image));
  delete template.spec.initContainers;
  r.object.metadata.managedFields = managedFields(r.object.metadata.managedFields[0], names, ['f:template', 'f:spec']);
  return review;
}

export interface Answer {
  allowed: boolean;
  /** The image the first container will run after the patch, when the webhook pinned it. */
  pinned?: string;
  /** The denial message as kubectl would print it after "denied the request:". */
  message?: string;
  warnings: string[];
}

/** Reads an AdmissionReview response; anything malformed throws (a real API server would reject it too). */
export function readAnswer(sent: any, status: number, body: any): Answer {
  if (status !== 200) throw new Error(`webhook answered HTTP ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  const res = body?.response;
  if (body?.apiVersion !== 'admission.k8s.io/v1' || body?.kind !== 'AdmissionReview' || typeof res !== 'object' || res === null) {
    throw new Error(`not an admission.k8s.io/v1 AdmissionReview: ${JSON.stringify(body).slice(0, 300)}`);
  }
  if (res.uid !== sent.request.uid) throw new Error(`response uid ${res.uid} does not match request uid ${sent.request.uid}`);
  if (typeof res.allowed !== 'boolean') throw new Error('response.allowed is not a boolean');
  const answer: Answer = { allowed: res.allowed, warnings: Array.isArray(res.warnings) ? res.warnings.map(String) : [] };
  if (!res.allowed) answer.message = String(res.status?.message ?? '(no message)');
  if (res.patch !== undefined) {
    if (res.patchType !== 'JSONPatch') throw new Error(`patchType ${res.patchType}, expected JSONPatch`);
    const ops = JSON.parse(Buffer.from(String(res.patch), 'base64').toString('utf8')) as Array<{ op: string; path: string; value?: unknown }>;
    const pin = ops.find((o) => o.op === 'replace' && o.path === '/spec/containers/0/image');
    if (pin && typeof pin.value === 'string') answer.pinned = pin.value;
  }
  return answer;
}
