// The policy webhook (/validate-policy): refuses at `kubectl apply` every TrustPolicy and
// ClusterTrustPolicy that `trustgate policy check` refuses, with the same lines. The CRD
// schema (and its CEL rules) is the first line; this is the second, for what a schema
// cannot see: keys that do not parse, one key pinned twice, globs the matcher refuses.
//
// It is registered with failurePolicy Ignore: when every replica is down an admin must
// still be able to fix or delete policies. A policy that slips past is held as invalid at
// run time and denies what it would cover (policy/store.ts), so Ignore never opens a hole.
import { isObject } from '../common/is-object.js';
import { GROUP, KINDS } from '../policy/crds.js';
import { policyObjectProblems, problemLines, type PolicyKind } from '../policy/model.js';
import type { AdmissionHandler } from './handler.js';
import { parseReview, review, ReviewError } from './review.js';
import { noMetrics, secondsSince, silentLogger, type AdmissionMetrics, type AdmissionRequest, type AdmissionResponse, type Logger } from './types.js';

export interface PolicyHandlerOptions {
  log?: Logger;
  metrics?: AdmissionMetrics;
}

/** Where the problems of an object under review are said to come from. */
const SOURCE = 'admission';

export function createPolicyHandler(opts: PolicyHandlerOptions = {}): AdmissionHandler {
  const log = opts.log ?? silentLogger;
  const metrics = opts.metrics ?? noMetrics;
  return async (body) => {
    const started = performance.now();
    let req: AdmissionRequest;
    try {
      req = parseReview(body);
    } catch (e) {
      metrics.admission({ operation: 'unknown', result: 'invalid', mode: 'none', webhook: 'policy' }, secondsSince(started));
      if (!(e instanceof ReviewError) || e.uid === undefined) {
        log.warn('malformed admission review', { webhook: 'policy', error: (e as Error).message });
        throw e;
      }
      return review({ uid: e.uid, allowed: false, status: { code: 400, reason: 'BadRequest', message: e.message } });
    }
    const { response, note } = decide(req);
    const result = response.allowed ? 'allowed' : 'denied';
    metrics.admission({ operation: req.operation, result, mode: 'none', webhook: 'policy' }, secondsSince(started));
    log.info('admission', {
      webhook: 'policy',
      uid: req.uid,
      kind: req.kind.kind,
      namespace: req.namespace,
      name: req.name,
      operation: req.operation,
      dryRun: req.dryRun,
      result,
      ...(note ? { note } : {}),
      ...(response.allowed ? {} : { message: response.status?.message }),
    });
    return review(response);
  };
}

function decide(req: AdmissionRequest): { response: AdmissionResponse; note?: string } {
  const allow = (note?: string) => ({ response: { uid: req.uid, allowed: true }, ...(note ? { note } : {}) });
  // Deleting a policy, even an invalid one, must always be possible.
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allow(`${req.operation} is never refused`);
  if (req.kind.group !== GROUP || !KINDS.includes(req.kind.kind as PolicyKind)) return allow(`kind ${req.kind.kind} is not a trustgate policy`);
  // trustgate's own status reports (and anyone's) change no spec.
  if (req.subResource !== undefined) return allow(`subresource ${req.subResource} is not checked`);
  const meta = isObject(req.object) && isObject(req.object['metadata']) ? req.object['metadata'] : undefined;
  // An object on its way out may still have its finalizers removed.
  if (req.operation === 'UPDATE' && meta?.['deletionTimestamp'] !== undefined && meta['deletionTimestamp'] !== null) return allow('the policy is being deleted');
  const problems = policyObjectProblems(req.object, SOURCE);
  if (problems.length === 0) return allow();
  const name = typeof meta?.['name'] === 'string' ? meta['name'] : req.name;
  const ns = typeof meta?.['namespace'] === 'string' && meta['namespace'] !== '' ? `${meta['namespace']}/` : '';
  const message = [`${req.kind.kind} ${ns}${name} is invalid (trustgate policy check reports the same):`, ...problemLines(problems)].join('\n');
  return { response: { uid: req.uid, allowed: false, status: { code: 422, reason: 'Invalid', message } } };
}
