/**
 * Events on policies: rejected, valid again, trust server unreachable, trust data expiring.
 * The recorder turns repeats into one series, so an outage seen by every admission is one
 * Event with a count, not a flood.
 */
import type { PolicyTransition } from '../policy/policy-states.js';
import { readyMessage } from '../policy/status.js';
import { POLICY_GROUP, POLICY_VERSION } from './policy-api.js';
import type { ImageVerdict, ImageVerifier, PolicyRef } from '../verify/types.js';
import type { FailureCode } from '../verify/failure.js';
import type { EventRecorder, EventTarget } from './events.js';

/** Fetch failures that mean the trust server could not be used at all (not a verdict about the image). */
const UNREACHABLE = new Set<FailureCode>(['unreachable', 'timeout', 'tls', 'auth', 'http']);

export function policyTarget(p: PolicyRef & { uid?: string }): EventTarget {
  return { apiVersion: `${POLICY_GROUP}/${POLICY_VERSION}`, kind: p.kind, name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}), ...(p.uid ? { uid: p.uid } : {}) };
}

/** An Event for each change of a policy's state: rejected (Warning), or loaded after being rejected (Normal). */
export function recordPolicyTransition(events: EventRecorder, t: PolicyTransition): void {
  if (t.to === 'invalid') {
    events.record({ regarding: policyTarget(t.object), type: 'Warning', reason: 'PolicyInvalid', action: 'Load', note: readyMessage(t.outcome) });
  } else if (t.from === 'invalid') {
    events.record({ regarding: policyTarget(t.object), type: 'Normal', reason: 'PolicyValid', action: 'Load', note: 'policy loaded: it applies again' });
  }
}

/** The verifier, plus an Event on the policy whenever its trust server cannot be reached. Same verdicts. */
export function withTrustServerEvents(verifier: ImageVerifier, events: EventRecorder): ImageVerifier {
  const observe = <T extends ImageVerdict | undefined>(v: T): T => {
    if (v === undefined || v.failures.length === 0) return v;
    for (const f of v.failures) {
      if (!UNREACHABLE.has(f.code) || f.policy.name === '(none)') continue;
      events.record({ regarding: policyTarget(f.policy), type: 'Warning', reason: 'TrustServerUnreachable', action: 'Verify', note: `${f.server ?? 'trust server'}: ${f.reason}` });
    }
    return v;
  };
  const cached = verifier.verifyCached?.bind(verifier);
  return {
    verifyImage: async (image, namespace, signal) => observe(await verifier.verifyImage(image, namespace, signal)),
    ...(cached ? { verifyCached: (image: string, namespace: string | undefined) => observe(cached(image, namespace)) } : {}),
  };
}
