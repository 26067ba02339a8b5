/**
 * One image's verdict from what each policy said, without I/O: every policy that matches must
 * accept the image (AND), accepting policies must agree on one digest, failures keep the mode
 * of the policy that raised them; and the verdicts that need no trust data (an invalid policy
 * covering the image, a registry alias, a reference that does not parse).
 */
import { formatReference, pinnedReference, type ImageReference } from '../images/reference.js';
import { problemLines, type InvalidPolicy, type TrustPolicy } from '../policy/model.js';
import { failure, type Failure } from './failure.js';
import type { ImageVerdict, PolicyFailure, PolicyRef } from './types.js';

export interface PolicyOutcome {
  policy: TrustPolicy;
  digest?: string;
  roles?: string[];
  failure?: PolicyFailure;
}

const refs = new WeakMap<TrustPolicy, PolicyRef>();

/** Made once per policy (frozen: verdicts share it) since every verdict names its policies. */
export function policyRef(p: TrustPolicy): PolicyRef {
  let ref = refs.get(p);
  if (!ref) refs.set(p, (ref = Object.freeze(p.namespace ? { kind: p.kind, name: p.name, namespace: p.namespace } : { kind: p.kind, name: p.name })));
  return ref;
}

/** At most this many of an invalid policy's problems go into a denial; the policy's status and `policy check` list them all. */
const PROBLEMS_SHOWN = 3;

export function invalidFailure(p: InvalidPolicy): PolicyFailure {
  const lines = problemLines(p.problems);
  const shown = lines.slice(0, PROBLEMS_SHOWN).join('; ') + (lines.length > PROBLEMS_SHOWN ? `; and ${lines.length - PROBLEMS_SHOWN} more` : '');
  const scope =
    p.kind === 'ClusterTrustPolicy' ? 'in every namespace' : p.namespace !== undefined ? `in namespace ${p.namespace}` : 'in every namespace (its namespace is unknown)';
  const covers = p.images !== undefined ? 'it covers this image' : `its spec.images cannot be read, so it covers every image ${scope}`;
  return {
    policy: p.namespace !== undefined ? { kind: p.kind, name: p.name, namespace: p.namespace } : { kind: p.kind, name: p.name },
    mode: p.mode,
    ...failure('policy', 'invalid-policy'),
    reason: `the policy is invalid and ${covers}, which cannot be verified until the policy is fixed (trustgate policy check lists every problem): ${shown}`,
  };
}

/**
 * `host:443/x` reaches the repository `host/x` over HTTPS. When a policy covers the spelling
 * without the port but not the one written, the image is refused and told how to write it
 * (not admitted as unmatched, not verified under another GUN than its publisher signed).
 * Enforced whatever the policy's mode: the fix is a spelling, and a warning would let the
 * alias run unverified.
 */
export function aliasDenial(image: string, ref: ImageReference, reference: string, portless: ImageReference, asWritten: TrustPolicy[], coveringPortless: TrustPolicy[]): ImageVerdict | undefined {
  const escaped = coveringPortless.filter((p) => !asWritten.includes(p));
  if (escaped.length === 0) return undefined;
  const canonical = formatReference(portless);
  return {
    image,
    reference,
    allowed: false,
    passed: [],
    failures: escaped.map((p) => ({
      policy: policyRef(p),
      mode: 'enforce' as const,
      ...failure('policy', 'registry-alias'),
      reason: `${ref.domain} is ${portless.domain} spelled with its default HTTPS port, and this policy covers ${canonical}: write the image as ${JSON.stringify(canonical)}`,
    })),
  };
}

export function denied(image: string, reference: string, f: Failure & { reason: string }): ImageVerdict {
  return {
    image,
    reference,
    allowed: false,
    passed: [],
    failures: [{ policy: { kind: 'ClusterTrustPolicy', name: '(none)' }, mode: 'enforce', ...f }],
  };
}

export function compose(image: string, reference: string, ref: ImageReference, outcomes: PolicyOutcome[], invalid: PolicyFailure[]): ImageVerdict {
  // Plain loops: this runs for every image of every admission, nearly always with one policy.
  const failures = invalid.slice();
  const passed: PolicyOutcome[] = [];
  let digest: string | undefined;
  let disagree = false;
  for (const o of outcomes) {
    if (o.failure) failures.push(o.failure);
    if (!o.digest) continue;
    passed.push(o);
    if (digest === undefined) digest = o.digest;
    else if (o.digest !== digest) disagree = true;
  }
  const results = (pass: boolean) => {
    const out: NonNullable<ImageVerdict['policyResults']> = invalid.map((f) => ({ policy: f.policy, mode: f.mode, result: 'fail' as const }));
    for (const o of outcomes) out.push({ policy: policyRef(o.policy), mode: o.policy.spec.mode, result: pass && o.digest ? 'pass' : 'fail' });
    return out;
  };
  if (disagree) {
    // Two trust sources disagree on what this tag is: nothing can be pinned safely.
    const detail = passed.map((o) => `${policyRef(o.policy).name}: ${o.digest}`).join('; ');
    for (const o of passed) {
      failures.push({
        policy: policyRef(o.policy),
        mode: 'enforce',
        ...failure('policy', 'digest-mismatch'),
        server: o.policy.spec.trustServer.url,
        reason: `policies sign different digests for ${reference} (${detail})`,
      });
    }
    return { image, reference, allowed: false, passed: [], failures, policyResults: results(false) };
  }
  const allowed = !failures.some((f) => f.mode === 'enforce');
  const verdict: ImageVerdict = { image, reference, allowed, passed: passed.map((o) => policyRef(o.policy)), failures, policyResults: results(true) };
  // Pin only what every enforcing policy vouched for.
  if (allowed && digest) {
    verdict.digest = digest;
    verdict.pinned = pinnedReference(ref, digest);
  }
  return verdict;
}
