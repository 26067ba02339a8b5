/**
 * Fuzzing the admission handler: faithful AdmissionReviews (Pods, a Deployment, an update,
 * ephemeral containers, a delete) whose images are drawn from signed and unsigned ones, then
 * mutated, into the real handler over a real engine verifying forged metadata. The handler
 * must always answer a well-formed AdmissionReview carrying the request's uid (or refuse,
 * with a ReviewError, only a review that has no readable uid), and must never allow a review
 * in which an unsigned image would run or pin an image to a digest nobody signed.
 */
import { createAdmissionHandler, type AdmissionHandler } from '../../webhook/src/admission/handler.js';
import { ReviewError } from '../../webhook/src/admission/review.js';
import { matchesImage } from '../../webhook/src/policy/match.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { fixture } from '../fixtures/admission/support.js';
import { manifest, RepoForge, sha256hex } from '../support/forge.js';
import { FUZZ_NOW, MapSource } from './metadata-fuzz.js';
import { BYTE_MUTATIONS, mutateBytes, mutateTree, parseTree, serialize, TREE_MUTATIONS, type Node } from './mutate.js';
import type { Prng } from './prng.js';

const FIXTURES = ['pod-create.json', 'pod-create-dryrun.json', 'deployment-create.json', 'pod-update.json', 'pod-ephemeralcontainers.json', 'pod-delete.json'];

export interface ReviewOutcome {
  label: string;
  note: string;
  finding?: string;
  /** The mutated review text, for the reproducer. */
  text: string;
}

type Json = any;

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ReviewFuzzer {
  private constructor(
    private readonly handlers: { mutate: AdmissionHandler; validate: AdmissionHandler },
    private readonly signed: ReadonlySet<string>,
    private readonly unsigned: readonly string[],
    private readonly signedDigests: ReadonlySet<string>,
    private readonly reviews: Json[],
  ) {}

  static async create(): Promise<ReviewFuzzer> {
    const forge = new RepoForge({ now: FUZZ_NOW });
    const repo = forge.build();
    const gun = repo.gun;
    const d = (label: string) => `sha256:${sha256hex(manifest(label))}`;
    const helloDigest = `sha256:${sha256hex('hello world\n')}`;
    const signed = new Set([
      `${gun}:v1.0`, `${gun}:v2.0`, `${gun}:hello-file`, `${gun}@${d('v2.0')}`, `${gun}@${d('v1.0')}`, `${gun}:v2.0@${d('v2.0')}`, `${gun}:hello-file@${helloDigest}`,
    ]);
    const unsigned = [
      `${gun}:v9`, `${gun}:latest`, `${gun}`, `${gun}@sha256:${'ab'.repeat(32)}`, `${gun}:v2.0@${d('v1.0')}`, `${gun}:qa`, `${gun}:nightly`,
      'docker.io/library/nginx:1.25', 'nginx', `${gun}/sub:v2.0`, 'localhost:5000/demo/other:v1.0', `${gun.toUpperCase()}:v2.0`, '', ' ', `${gun}:v2.0 `,
    ];
    const policy: TrustPolicy = {
      kind: 'ClusterTrustPolicy',
      name: 'fuzz',
      source: 'fuzz',
      spec: { images: [gun], trustServer: { url: 'https://notary.fuzz:4443' }, root: { keys: repo.rootPems, threshold: 1 }, mode: 'enforce' },
    };
    const source = new MapSource(gun, repo.files, repo.roots);
    const clock = () => FUZZ_NOW;
    const engine = new VerificationEngine({
      policies: { policiesFor: (reference) => (policy.spec.images.some((p) => matchesImage(p, reference)) ? [policy] : []) },
      // Any other repository has no trust data at all.
      sourceFor: (_p, g) => (g === gun ? source : new MapSource(g, new Map(), [])),
      clock,
      cache: new RepositoryCache({ clock, refreshIntervalMs: 3_600_000 }),
    });
    const handlers = {
      mutate: createAdmissionHandler({ verifier: engine, mutate: true, deadlineMs: 10_000 }),
      validate: createAdmissionHandler({ verifier: engine, mutate: false, deadlineMs: 10_000 }),
    };
    const digests = new Set([d('v1.0'), d('v2.0'), helloDigest]);
    return new ReviewFuzzer(handlers, signed, unsigned, digests, FIXTURES.map((f) => fixture(f)));
  }

  async runCase(rng: Prng): Promise<ReviewOutcome> {
    const pool = [...this.signed];
    const review = structuredClone(rng.pick(this.reviews));
    // Every image of the review, new and old, from the signed and unsigned pools.
    const pickImage = () => (rng.chance(0.6) ? rng.pick(pool) : rng.pick(this.unsigned));
    const assign = (v: Json): void => {
      if (Array.isArray(v)) v.forEach(assign);
      else if (isObject(v)) for (const k of Object.keys(v)) (k === 'image' && typeof v[k] === 'string' ? (v[k] = pickImage()) : assign(v[k]));
    };
    assign(review);
    let text = JSON.stringify(review);
    const notes: string[] = [];
    const rounds = rng.int(4);
    for (let i = 0; i < rounds; i++) {
      if (rng.chance(0.9)) {
        let tree: { value: Node };
        try {
          tree = { value: parseTree(text) };
        } catch {
          break; // nested too deep for the tree parser: mutate no further
        }
        notes.push(mutateTree(tree, rng, rng.pick(TREE_MUTATIONS)));
        text = serialize(tree.value);
      } else {
        const m = mutateBytes(Buffer.from(text, 'utf8'), rng, rng.pick(BYTE_MUTATIONS));
        notes.push(m.note);
        text = m.bytes.toString('utf8');
      }
      try {
        JSON.parse(text);
      } catch {
        break;
      }
    }
    const mutate = rng.chance(0.5);
    const label = mutate ? 'mutate' : 'validate';
    const note = notes.join('; ') || 'unmutated';
    let body: Json;
    try {
      // What the HTTP layer hands over: only parseable JSON reaches the handler.
      body = JSON.parse(text);
    } catch {
      return { label: `${label}:not-json`, note, text };
    }
    let out: Json;
    try {
      out = await (mutate ? this.handlers.mutate : this.handlers.validate)(body);
    } catch (e) {
      if (e instanceof ReviewError && e.uid === undefined && !answerable(body)) return { label: `${label}:refused`, note, text };
      return { label, note, text, finding: `handler threw on ${answerable(body) ? 'an answerable' : 'an unanswerable'} review: ${(e as Error)?.stack ?? String(e)}` };
    }
    const finding = this.checkAnswer(body, out, mutate);
    return { label: `${label}:${out?.response?.allowed ? 'allowed' : 'denied'}`, note, text, ...(finding ? { finding } : {}) };
  }

  private checkAnswer(body: Json, out: Json, mutate: boolean): string | undefined {
    if (!isObject(out) || out['apiVersion'] !== 'admission.k8s.io/v1' || out['kind'] !== 'AdmissionReview' || !isObject(out['response'])) {
      return `malformed answer ${JSON.stringify(out)?.slice(0, 300)}`;
    }
    const r = out['response'];
    if (!answerable(body)) return `answered a review without a readable uid: ${JSON.stringify(r).slice(0, 200)}`;
    if (r['uid'] !== body.request.uid) return `answer uid ${JSON.stringify(r['uid'])} is not the request uid ${JSON.stringify(body.request.uid)}`;
    if (typeof r['allowed'] !== 'boolean') return `answer without a boolean allowed: ${JSON.stringify(r).slice(0, 200)}`;
    if (!r['allowed']) {
      if (!isObject(r['status']) || typeof r['status']['message'] !== 'string' || typeof r['status']['code'] !== 'number') return `denial without a status message: ${JSON.stringify(r).slice(0, 200)}`;
      return undefined;
    }
    if (r['patch'] !== undefined) {
      if (!mutate) return 'the validating webhook returned a patch';
      if (r['patchType'] !== 'JSONPatch') return `patch with patchType ${JSON.stringify(r['patchType'])}`;
      let ops: Json;
      try {
        ops = JSON.parse(Buffer.from(String(r['patch']), 'base64').toString('utf8'));
      } catch {
        return 'patch is not base64 JSON';
      }
      if (!Array.isArray(ops)) return 'patch is not a JSON array';
      for (const op of ops) {
        const v = op?.value;
        if (typeof v === 'string' && v.includes('@sha256:') && !this.signedDigests.has(v.slice(v.indexOf('@') + 1))) {
          return `pinned to a digest nobody signed: ${v}`;
        }
      }
    }
    const runs = imagesThatWouldRun(body.request);
    const bad = runs.find((i) => !this.signed.has(i));
    return bad === undefined ? undefined : `allowed although image ${JSON.stringify(bad)} is not signed`;
  }
}

/** What parseReview needs to answer in protocol (mirrors the admission contract, not the code). */
function answerable(body: Json): boolean {
  if (!isObject(body) || body['apiVersion'] !== 'admission.k8s.io/v1' || body['kind'] !== 'AdmissionReview') return false;
  const r = body['request'];
  return isObject(r) && typeof r['uid'] === 'string' && r['uid'] !== '' && r['uid'].length <= 256;
}

/**
 * Images a checked request would start, read independently of the webhook's extractor:
 * container lists at the pod spec of the kind, minus (for UPDATE) any image already present
 * in the old object. Requests the contract does not check (DELETE, CONNECT, other kinds,
 * subresources other than a Pod's ephemeralcontainers) start nothing here.
 */
function imagesThatWouldRun(req: Json): string[] {
  const op = req['operation'];
  if (op !== 'CREATE' && op !== 'UPDATE') return [];
  const kind = isObject(req['kind']) ? req['kind'] : {};
  const group = kind['group'] ?? '';
  const name = kind['kind'];
  let path: string[] | undefined;
  if (group === '' && name === 'Pod') path = ['spec'];
  else if ((group === 'apps' && ['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet'].includes(name)) || (group === '' && name === 'ReplicationController') || (group === 'batch' && name === 'Job')) {
    path = ['spec', 'template', 'spec'];
  } else if (group === 'batch' && name === 'CronJob') path = ['spec', 'jobTemplate', 'spec', 'template', 'spec'];
  if (!path) return [];
  const sub = req['subResource'];
  if (typeof sub === 'string' && sub !== '' && !(path.length === 1 && sub === 'ephemeralcontainers')) return [];
  let spec: Json = req['object'];
  for (const p of path) spec = isObject(spec) ? spec[p] : undefined;
  if (!isObject(spec)) return [];
  const old = op === 'UPDATE' ? imageStrings(req['oldObject']) : new Set<string>();
  const out: string[] = [];
  for (const list of ['containers', 'initContainers', 'ephemeralContainers']) {
    const l = spec[list];
    if (!Array.isArray(l)) continue;
    for (const c of l) {
      // An empty image runs nothing (the API server refuses it for a Pod; a template may leave it to be filled).
      if (isObject(c) && typeof c['image'] === 'string' && c['image'] !== '' && !old.has(c['image'])) out.push(c['image']);
    }
  }
  return out;
}

/** Every string under an `image` key anywhere in `root` (iterative: inputs may nest deeply). */
function imageStrings(root: Json): Set<string> {
  const out = new Set<string>();
  const stack: Json[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) stack.push(...v);
    else if (isObject(v)) {
      for (const k of Object.keys(v)) {
        if (k === 'image' && typeof v[k] === 'string') out.add(v[k]);
        else stack.push(v[k]);
      }
    }
  }
  return out;
}
