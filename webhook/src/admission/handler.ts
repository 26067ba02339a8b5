// AdmissionReview in, AdmissionReview out. One handler per webhook: the mutating one pins
// Pod images to signed digests, the validating one re-checks the final object (a later
// mutating webhook could have swapped an image) and workload pod templates.
import { isObject } from '../common/is-object.js';
import { parseReference } from '../images/reference.js';
import { imagesOf, isPodKind, podSpecPath, WorkloadError, type ImageUse } from '../images/workloads.js';
import type { FailureCause } from '../verify/failure.js';
import type { ImageVerifier } from '../verify/types.js';
import { encodedPinPatch, ORIGINAL_IMAGES_ANNOTATION, type Pin } from './patch.js';
import { auditAnnotations, decisionMode, denyLines, isDenied, policyLabel, unverifiedAnnotations, unverifiedWarnings, warnings, type ImageOutcome } from './report.js';
import { parseReview, review, ReviewError } from './review.js';
import {
  noMetrics,
  secondsSince,
  silentLogger,
  type AdmissionMetrics,
  type AdmissionRequest,
  type AdmissionResponse,
  type AdmissionResult,
  type AdmissionReviewResponse,
  type DecisionMode,
  type LogFields,
  type Logger,
  type WebhookName,
} from './types.js';
import { verifyCached, verifyUnderDeadline, type Settled, type VerifyStep } from './verify-images.js';

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

interface Decision {
  response: AdmissionResponse;
  mode: DecisionMode;
  images: string[];
  note?: string;
  /** What the log line tells about each verified image: pinned digests, deciding policies, unverified images. */
  outcomes?: ImageOutcome[];
}

/** The images of a request that need trust, and where each is used. */
interface ImagesToVerify {
  pod: boolean;
  uses: ImageUse[];
  distinct: string[];
}

/** What every step may read: the handler's options, resolved once. */
interface Steps extends VerifyStep {
  log: Logger;
  webhook: WebhookName;
  mutate: boolean;
  annotationKey: string;
  deadlineMs: number;
}

/**
 * The chain every review goes through: parseReview -> imagesToVerify -> verifyCached (warm,
 * synchronous) and verifyUnderDeadline (the rest) -> decide (verdict, warnings, audit
 * annotations, pins) -> respond (metrics, log line, review). Only the images that need I/O
 * cost a promise or a timer.
 */
export function createAdmissionHandler(opts: AdmissionHandlerOptions): AdmissionHandler {
  const deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
  if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) throw new RangeError(`deadlineMs must be a positive number, got ${deadlineMs}`);
  const steps: Steps = {
    verifier: opts.verifier,
    metrics: opts.metrics ?? noMetrics,
    log: opts.log ?? silentLogger,
    webhook: opts.mutate ? 'mutate' : 'validate',
    mutate: opts.mutate,
    annotationKey: opts.annotationKey ?? ORIGINAL_IMAGES_ANNOTATION,
    deadlineMs,
  };

  return async (body, signal, requestOptions) => {
    const started = performance.now();
    let req: AdmissionRequest;
    try {
      req = parseReview(body);
    } catch (e) {
      return refuseReview(steps, e, started);
    }
    const work = imagesToVerify(req);
    if ('response' in work) return respond(steps, req, work, started);
    const namespace = req.namespace === '' ? undefined : req.namespace;
    const settled = new Map<string, Settled>();
    const waiting = verifyCached(steps, work.distinct, namespace, settled);
    const late = waiting.length > 0 ? await verifyUnderDeadline(steps, waiting, namespace, settled, signal, budgetOf(steps, requestOptions)) : undefined;
    return respond(steps, req, decide(steps, req, work, outcomesOf(work, settled, late)), started);
  };
}

/** A review that cannot be read: answered as invalid when it has a uid, else thrown for the HTTP layer's 400. */
function refuseReview(steps: Steps, e: unknown, started: number): AdmissionReviewResponse {
  const { metrics, log, webhook } = steps;
  if (!(e instanceof ReviewError) || e.uid === undefined) {
    metrics.admission({ operation: 'unknown', result: 'invalid', mode: 'none', webhook }, secondsSince(started));
    log.warn('malformed admission review', { webhook, error: (e as Error).message });
    throw e;
  }
  const response = invalid(e.uid, e.message);
  metrics.admission({ operation: 'unknown', result: 'invalid', mode: 'none', webhook }, secondsSince(started));
  log.warn('admission', { webhook, uid: e.uid, result: 'invalid', reason: e.message, durationMs: ms(started) });
  return review(response);
}

/** This request's budget: the API server's own timeout may tighten the configured deadline, never widen it. */
function budgetOf(steps: Steps, requestOptions: RequestOptions | undefined): number {
  const given = requestOptions?.deadlineMs;
  return given !== undefined && Number.isFinite(given) && given > 0 ? Math.min(given, steps.deadlineMs) : steps.deadlineMs;
}

/** The images that need trust, or the decision when there are none (or they cannot be read). */
function imagesToVerify(req: AdmissionRequest): ImagesToVerify | Decision {
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
  let distinct = uses.length <= SMALL ? uniqueSmall(uses.map((u) => u.image)) : [...new Set(uses.map((u) => u.image))];
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
  return { pod, uses, distinct };
}

/** One outcome per distinct image, in order: its verdict, or the problem that stands in for it. */
function outcomesOf(work: ImagesToVerify, settled: Map<string, Settled>, late: string | undefined): ImageOutcome[] {
  return work.distinct.map((image): ImageOutcome => {
    const s = settled.get(image);
    const mine = work.uses.filter((u) => u.image === image);
    if (s?.verdict) return { image, uses: mine, verdict: s.verdict };
    return { image, uses: mine, problem: s ? s.problem : late! };
  });
}

/** Denies when any image may not run; otherwise allows, pinning a Pod's images when mutating. Either way with warnings and audit annotations. */
function decide(steps: Steps, req: AdmissionRequest, work: ImagesToVerify, outcomes: ImageOutcome[]): Decision {
  const denied = outcomes.some(isDenied);
  const response: AdmissionResponse = { uid: req.uid, allowed: !denied };
  if (denied) response.status = { code: 403, reason: 'Forbidden', message: denyLines(outcomes).join('\n') };
  report(steps, req, outcomes, response);
  if (denied) return { response, mode: 'enforce', images: work.distinct, outcomes };
  if (steps.mutate && work.pod) pin(steps, req, outcomes, response);
  return { response, mode: decisionMode(outcomes), images: work.distinct, outcomes };
}

/** Warnings for kubectl, audit annotations for the audit log (and a log line for each). */
function report(steps: Steps, req: AdmissionRequest, outcomes: ImageOutcome[], response: AdmissionResponse): void {
  // Nearly every admission: nothing failed and everything was verified, so nothing to say.
  if (outcomes.every((o) => o.verdict !== undefined && o.verdict.failures.length === 0 && o.verdict.unverified === undefined)) return;
  const warn = warnings(outcomes);
  for (const w of unverifiedWarnings(outcomes)) warn.push(w);
  const audit = Object.assign(auditAnnotations(outcomes), unverifiedAnnotations(outcomes));
  let annotated = false;
  for (const detail in audit) {
    annotated = true;
    steps.log.warn('audit-mode policy failure', { uid: req.uid, webhook: steps.webhook, detail: audit[detail] });
  }
  if (warn.length > 0) response.warnings = warn;
  if (annotated) response.auditAnnotations = audit;
}

/** Pins each verified tag of a Pod to its signed digest with a JSON Patch. */
function pin(steps: Steps, req: AdmissionRequest, outcomes: ImageOutcome[], response: AdmissionResponse): void {
  if (!isObject(req.object)) return;
  const patch = encodedPinPatch(req.object, pinsFor(outcomes), steps.annotationKey, req.operation === 'UPDATE' ? req.oldObject : undefined);
  if (patch === undefined) return;
  response.patchType = 'JSONPatch';
  response.patch = patch;
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

/** Records the decision (metrics, one log line) and wraps it in an AdmissionReview. */
function respond(steps: Steps, req: AdmissionRequest, decision: Decision, started: number): AdmissionReviewResponse {
  const unverified = (decision.outcomes ?? []).filter((o) => o.verdict?.unverified !== undefined);
  const result = resultOf(decision.response, unverified.length > 0);
  steps.metrics.admission({ operation: req.operation, result, mode: decision.mode, webhook: steps.webhook }, secondsSince(started));
  if (result === 'denied') steps.metrics.denial?.(steps.webhook, denialCause(decision.outcomes));
  for (const o of decision.outcomes ?? []) for (const r of o.verdict?.policyResults ?? []) steps.metrics.policyResult?.(policyLabel(r.policy), r.mode, r.result);
  // A denial is something an operator may have to act on; an allow is routine.
  steps.log[result === 'allowed' ? 'info' : 'warn']('admission', logFields(steps, req, decision, result, unverified, started));
  return review(decision.response);
}

/** What denied: the first denied image's first enforcing failure; a deadline or a verifier error is ours. */
function denialCause(outcomes: ImageOutcome[] | undefined): FailureCause {
  const first = outcomes?.find(isDenied);
  return first?.verdict?.failures.find((f) => f.mode === 'enforce')?.cause ?? 'internal';
}

function resultOf(response: AdmissionResponse, unverified: boolean): AdmissionResult {
  if (response.allowed) return unverified ? 'unverified' : 'allowed';
  return response.status?.code === 400 ? 'invalid' : 'denied';
}

/** The admission's log line; fields are added in a fixed order, only when they say something. */
function logFields(steps: Steps, req: AdmissionRequest, decision: Decision, result: AdmissionResult, unverified: ImageOutcome[], started: number): LogFields {
  const { response } = decision;
  const fields: LogFields = {
    webhook: steps.webhook,
    uid: req.uid,
    kind: req.kind.kind,
    namespace: req.namespace,
    name: objectName(req),
    operation: req.operation,
  };
  if (req.subResource) fields['subResource'] = req.subResource;
  fields['dryRun'] = req.dryRun;
  fields['images'] = decision.images;
  fields['result'] = result;
  fields['mode'] = decision.mode;
  if (decision.note) fields['note'] = decision.note;
  if (response.patch) fields['patched'] = true;
  addPinnedAndPolicies(fields, decision.outcomes);
  if (unverified.length > 0) fields['unverified'] = Object.fromEntries(unverified.map((o) => [o.image, o.verdict!.unverified!]));
  if (!response.allowed) fields['message'] = response.status?.message;
  if (response.warnings) fields['warnings'] = response.warnings;
  fields['durationMs'] = ms(started);
  return fields;
}

/** The log line's account of verified images: each pinned digest, and each policy's result. */
function addPinnedAndPolicies(fields: LogFields, outcomes: ImageOutcome[] | undefined): void {
  const pinned: Record<string, string> = {};
  const policies: string[] = [];
  let anyPinned = false;
  for (const o of outcomes ?? []) {
    if (o.verdict?.digest) {
      pinned[o.image] = o.verdict.digest;
      anyPinned = true;
    }
    for (const r of o.verdict?.policyResults ?? []) policies.push(`${policyLabel(r.policy)} ${r.mode} ${r.result}`);
  }
  if (anyPinned) fields['pinned'] = pinned;
  if (policies.length > 0) fields['policies'] = policies.length <= SMALL ? uniqueSmall(policies) : [...new Set(policies)];
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

/** Up to this many items, a list is made unique without a Set (quicker for a Pod's few images); past it, with one (linear). */
const SMALL = 16;

function uniqueSmall(items: string[]): string[] {
  const out: string[] = [];
  for (const i of items) if (!out.includes(i)) out.push(i);
  return out;
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

function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}
