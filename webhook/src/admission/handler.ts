// AdmissionReview in, AdmissionReview out. One handler per webhook: the mutating one pins
// Pod images to signed digests, the validating one re-checks the final object (a later
// mutating webhook could have swapped an image) and workload pod templates.
import { parseReference } from '../images/reference.js';
import { imagesOf, isPodKind, podSpecPath, WorkloadError, type ImageUse } from '../images/workloads.js';
import type { ImageVerdict, ImageVerifier } from '../verify/types.js';
import { encodePatch, ORIGINAL_IMAGES_ANNOTATION, pinPatch, type Pin } from './patch.js';
import { auditAnnotations, decisionMode, denyLines, isDenied, policyLabel, unverifiedAnnotations, unverifiedWarnings, warnings, type ImageOutcome } from './report.js';
import { isObject, parseReview, review, ReviewError } from './review.js';
import {
  noMetrics,
  silentLogger,
  type AdmissionMetrics,
  type AdmissionRequest,
  type AdmissionResponse,
  type AdmissionReviewResponse,
  type DecisionMode,
  type Logger,
  type WebhookName,
} from './types.js';

export const DEFAULT_DEADLINE_MS = 8000;

export interface AdmissionHandlerOptions {
  verifier: ImageVerifier;
  /** true for /mutate (pins Pod images), false for /validate. */
  mutate: boolean;
  /** Per-request budget; keep it under the webhook's timeoutSeconds. */
  deadlineMs?: number;
  log?: Logger;
  metrics?: AdmissionMetrics;
  annotationKey?: string;
}

/**
 * Answers one review. Throws ReviewError (without uid) only when the review cannot be
 * answered in protocol; the HTTP layer turns that into a 400.
 */
export type AdmissionHandler = (review: unknown, signal?: AbortSignal, options?: RequestOptions) => Promise<AdmissionReviewResponse>;

export interface RequestOptions {
  /** A tighter budget for this request (e.g. from the API server's ?timeout=); the configured deadline still caps it. */
  deadlineMs?: number;
}

type Settled = { verdict: ImageVerdict; problem?: undefined } | { problem: string; verdict?: undefined };

interface Decision {
  response: AdmissionResponse;
  mode: DecisionMode;
  images: string[];
  note?: string;
  /** What the log line tells about each verified image: pinned digests, deciding policies, unverified images. */
  outcomes?: ImageOutcome[];
}

export function createAdmissionHandler(opts: AdmissionHandlerOptions): AdmissionHandler {
  const deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
  if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) throw new RangeError(`deadlineMs must be a positive number, got ${deadlineMs}`);
  const log = opts.log ?? silentLogger;
  const metrics = opts.metrics ?? noMetrics;
  const webhook: WebhookName = opts.mutate ? 'mutate' : 'validate';
  const annotationKey = opts.annotationKey ?? ORIGINAL_IMAGES_ANNOTATION;

  return async (body, signal, requestOptions) => {
    const given = requestOptions?.deadlineMs;
    const budget = given !== undefined && Number.isFinite(given) && given > 0 ? Math.min(given, deadlineMs) : deadlineMs;
    const started = performance.now();
    let req: AdmissionRequest;
    try {
      req = parseReview(body);
    } catch (e) {
      if (!(e instanceof ReviewError) || e.uid === undefined) {
        metrics.admission({ operation: 'unknown', result: 'invalid', mode: 'none', webhook }, seconds(started));
        log.warn('malformed admission review', { webhook, error: (e as Error).message });
        throw e;
      }
      const response = invalid(e.uid, e.message);
      metrics.admission({ operation: 'unknown', result: 'invalid', mode: 'none', webhook }, seconds(started));
      log.warn('admission', { webhook, uid: e.uid, result: 'invalid', reason: e.message, durationMs: ms(started) });
      return review(response);
    }

    const decision = await decide(req, signal, budget);
    const unverified = (decision.outcomes ?? []).filter((o) => o.verdict?.unverified !== undefined);
    const result = decision.response.allowed ? (unverified.length > 0 ? 'unverified' : 'allowed') : decision.response.status?.code === 400 ? 'invalid' : 'denied';
    metrics.admission({ operation: req.operation, result, mode: decision.mode, webhook }, seconds(started));
    for (const o of decision.outcomes ?? []) for (const r of o.verdict?.policyResults ?? []) metrics.policyResult?.(policyLabel(r.policy), r.mode, r.result);
    // A denial is something an operator may have to act on; an allow is routine.
    const level = result === 'allowed' ? 'info' : 'warn';
    log[level]('admission', {
      webhook,
      uid: req.uid,
      kind: req.kind.kind,
      namespace: req.namespace,
      name: objectName(req),
      operation: req.operation,
      ...(req.subResource ? { subResource: req.subResource } : {}),
      dryRun: req.dryRun,
      images: decision.images,
      result,
      mode: decision.mode,
      ...(decision.note ? { note: decision.note } : {}),
      ...(decision.response.patch ? { patched: true } : {}),
      ...pinnedAndPolicies(decision.outcomes),
      ...(unverified.length > 0 ? { unverified: Object.fromEntries(unverified.map((o) => [o.image, o.verdict!.unverified!])) } : {}),
      ...(decision.response.allowed ? {} : { message: decision.response.status?.message }),
      ...(decision.response.warnings ? { warnings: decision.response.warnings } : {}),
      durationMs: ms(started),
    });
    return review(decision.response);
  };

  async function decide(req: AdmissionRequest, signal: AbortSignal | undefined, budget: number): Promise<Decision> {
    const allow = (note: string, images: string[] = []): Decision => ({ response: { uid: req.uid, allowed: true }, mode: 'none', images, note });
    if (req.operation === 'DELETE' || req.operation === 'CONNECT') return allow(`${req.operation} is not checked`);
    const gk = { group: req.kind.group, kind: req.kind.kind };
    if (podSpecPath(gk) === undefined) return allow(`kind ${req.kind.kind} is not checked`);
    const pod = isPodKind(gk);
    // Pod subresources other than ephemeralcontainers (status, binding, eviction...) cannot
    // change what runs; neither can a workload's scale or status.
    if (req.subResource !== undefined && !(pod && req.subResource === 'ephemeralcontainers')) {
      return allow(`subresource ${req.subResource} is not checked`);
    }

    let uses: ImageUse[];
    try {
      uses = imagesOf(gk, req.object);
    } catch (e) {
      if (!(e instanceof WorkloadError)) throw e;
      return { response: invalid(req.uid, `trustgate cannot read the images of this ${req.kind.kind}: ${e.message}`), mode: 'none', images: [] };
    }
    let distinct = [...new Set(uses.map((u) => u.image))];
    if (req.operation === 'UPDATE') {
      // Only images new in this update need trust. Leaving the others alone also matters for
      // pinning: the kubelet restarts a running container whose image field changes.
      const old = imagesOfOld(gk, req.oldObject);
      if (old) {
        distinct = distinct.filter((i) => !old.has(i));
        uses = uses.filter((u) => !old.has(u.image));
        if (distinct.length === 0) return allow('no new images', []);
      }
    }
    if (distinct.length === 0) return allow('no images', distinct);

    const outcomes = await verifyAll(req, uses, distinct, signal, budget);
    const denied = outcomes.filter(isDenied);
    const warn = [...warnings(outcomes), ...unverifiedWarnings(outcomes)];
    const audit = { ...auditAnnotations(outcomes), ...unverifiedAnnotations(outcomes) };
    for (const value of Object.values(audit)) log.warn('audit-mode policy failure', { uid: req.uid, webhook, detail: value });
    const extras: Partial<AdmissionResponse> = {};
    if (warn.length > 0) extras.warnings = warn;
    if (Object.keys(audit).length > 0) extras.auditAnnotations = audit;

    if (denied.length > 0) {
      return {
        response: { uid: req.uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: denyLines(outcomes).join('\n') }, ...extras },
        mode: 'enforce',
        images: distinct,
        outcomes,
      };
    }
    const mode: DecisionMode = decisionMode(outcomes);
    const response: AdmissionResponse = { uid: req.uid, allowed: true, ...extras };
    if (opts.mutate && pod && isObject(req.object)) {
      const ops = pinPatch(req.object, pinsFor(outcomes), annotationKey, req.operation === 'UPDATE' ? req.oldObject : undefined);
      if (ops.length > 0) {
        response.patchType = 'JSONPatch';
        response.patch = encodePatch(ops);
      }
    }
    return { response, mode, images: distinct, outcomes };
  }

  /**
   * Verifies each distinct image once: from warm trust data without waiting where the
   * verifier can, the rest all at once under the deadline.
   */
  async function verifyAll(req: AdmissionRequest, uses: ImageUse[], distinct: string[], outer: AbortSignal | undefined, budget: number): Promise<ImageOutcome[]> {
    const namespace = req.namespace === '' ? undefined : req.namespace;
    const settled = new Map<string, Settled>();
    const waiting: string[] = [];
    for (const image of distinct) {
      const t0 = performance.now();
      let verdict: ImageVerdict | undefined;
      try {
        verdict = opts.verifier.verifyCached?.(image, namespace);
      } catch {
        // verifyImage gives the same error with its full account.
      }
      if (verdict === undefined) {
        waiting.push(image);
        continue;
      }
      metrics.imageVerificationSeconds(seconds(t0));
      const bad = verdictProblem(verdict, image);
      settled.set(image, bad ? { problem: bad } : { verdict });
    }
    const late = waiting.length > 0 ? await waitFor(waiting, namespace, settled, outer, budget) : undefined;
    return distinct.map((image): ImageOutcome => {
      const s = settled.get(image);
      const mine = uses.filter((u) => u.image === image);
      if (s?.verdict) return { image, uses: mine, verdict: s.verdict };
      return { image, uses: mine, problem: s ? s.problem : late! };
    });
  }

  /**
   * Verifies images that need I/O, all at once, and stops waiting at the deadline even if
   * the verifier ignores the abort signal. Fills `settled` with what was known in time and
   * returns the problem to report for images without a verdict.
   */
  async function waitFor(images: string[], namespace: string | undefined, settled: Map<string, Settled>, outer: AbortSignal | undefined, budget: number): Promise<string> {
    const controller = new AbortController();
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const abort = (why: string) => {
      controller.abort(new Error(why));
      stop();
    };
    const timer = setTimeout(() => abort('deadline'), budget);
    const onOuter = () => abort('cancelled');
    if (outer?.aborted) onOuter();
    else outer?.addEventListener('abort', onOuter, { once: true });

    const found = new Map<string, Settled>();
    // Each image's wait is observed once: when its verdict arrives, or when we stop waiting.
    const timed = new Set<string>();
    const t0 = performance.now();
    const observe = (image: string) => {
      if (timed.has(image)) return;
      timed.add(image);
      metrics.imageVerificationSeconds(seconds(t0));
    };
    const one = async (image: string) => {
      try {
        const verdict = await opts.verifier.verifyImage(image, namespace, controller.signal);
        const bad = verdictProblem(verdict, image);
        // An allow that comes back after the deadline was not known in time; a denial is kept,
        // since the verifier's own account of the timeout names the policy and the server.
        if (controller.signal.aborted && (bad || verdict.allowed !== false)) return;
        found.set(image, bad ? { problem: bad } : { verdict });
      } catch (e) {
        if (controller.signal.aborted) return;
        found.set(image, { problem: `verification failed: ${(e as Error)?.message ?? String(e)}` });
      } finally {
        observe(image);
      }
    };
    try {
      await Promise.race([Promise.all(images.map(one)), stopped]);
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
      images.forEach(observe);
    }
    // A verifier that honours the signal settles within a turn of the event loop after it.
    if (controller.signal.aborted && found.size < images.length) await new Promise((r) => setImmediate(r));
    // Freeze what was known when we stopped waiting; late verdicts must not change the answer.
    for (const [image, s] of found) settled.set(image, s);
    return outer?.aborted === true ? 'the request was cancelled before verification finished' : `verification did not finish within ${formatSeconds(budget)}`;
  }

  function pinsFor(outcomes: ImageOutcome[]): Pin[] {
    const pins: Pin[] = [];
    for (const o of outcomes) {
      const pinned = o.verdict?.pinned;
      // Digest references are already immutable; the verifier checked that the digest is signed.
      if (!pinned || o.image.includes('@') || pinned === o.image || !samePinnedRepository(o.image, pinned, o.verdict?.digest)) continue;
      for (const u of o.uses) pins.push({ pointer: u.pointer, original: u.image, pinned });
    }
    return pins;
  }
}

/** The log line's account of verified images: each pinned digest, and each policy's result. */
function pinnedAndPolicies(outcomes: ImageOutcome[] | undefined): Record<string, unknown> {
  const pinned: Record<string, string> = {};
  const policies: string[] = [];
  for (const o of outcomes ?? []) {
    if (o.verdict?.digest) pinned[o.image] = o.verdict.digest;
    for (const r of o.verdict?.policyResults ?? []) policies.push(`${policyLabel(r.policy)} ${r.mode} ${r.result}`);
  }
  return {
    ...(Object.keys(pinned).length > 0 ? { pinned } : {}),
    ...(policies.length > 0 ? { policies: [...new Set(policies)] } : {}),
  };
}

/** Images of the object before the update, or undefined when they cannot be read (then everything is checked). */
function imagesOfOld(gk: { group: string; kind: string }, oldObject: unknown): Set<string> | undefined {
  if (!isObject(oldObject)) return undefined;
  try {
    return new Set(imagesOf(gk, oldObject).map((u) => u.image));
  } catch {
    return undefined;
  }
}

function verdictProblem(v: unknown, image: string): string | undefined {
  if (!isObject(v) || typeof v['allowed'] !== 'boolean' || !Array.isArray(v['failures'])) return 'the verifier returned a malformed verdict';
  if (v['image'] !== image) return `the verifier answered for ${JSON.stringify(v['image'])} instead`;
  return undefined;
}

/** A pin must name the same repository and tag as the original, and the verdict's digest if it gave one. */
function samePinnedRepository(image: string, pinned: string, digest: string | undefined): boolean {
  try {
    const a = parseReference(image);
    const b = parseReference(pinned);
    return b.digest !== undefined && a.name === b.name && a.tag === b.tag && (digest === undefined || digest === b.digest);
  } catch {
    return false;
  }
}

function invalid(uid: string, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { code: 400, reason: 'BadRequest', message } };
}

function objectName(req: AdmissionRequest): string {
  if (req.name) return req.name;
  const obj = isObject(req.object) ? req.object : isObject(req.oldObject) ? req.oldObject : undefined;
  const md = obj && isObject(obj['metadata']) ? obj['metadata'] : undefined;
  if (md && typeof md['name'] === 'string' && md['name']) return md['name'];
  if (md && typeof md['generateName'] === 'string') return `${md['generateName']}*`;
  return '';
}

function formatSeconds(msValue: number): string {
  return `${Number((msValue / 1000).toFixed(3))}s`;
}

function seconds(t0: number): number {
  return (performance.now() - t0) / 1000;
}

function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}
