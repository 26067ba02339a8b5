/**
 * What trustgate tells policy authors about their policy: the outcome of loading it and the
 * `Ready` condition that reports it (`kubectl get trustpolicy -o yaml`, `kubectl wait
 * --for=condition=Ready`). Pure: the write to the API server lives in kube/policy-status-writer.ts.
 */
import type { PolicyKind, PolicyProblem, TrustPolicy } from './model.js';

/** The object as last seen from the API server: its identity (namespace set for TrustPolicy only) plus what status already says. */
export type PolicyObjectState = Pick<TrustPolicy, 'kind' | 'name' | 'namespace' | 'uid' | 'generation' | 'resourceVersion'> & {
  /** `status.conditions` as observed (anything; malformed entries are kept as they are). */
  conditions?: unknown;
};

/** A problem with a policy, where it is and what is wrong: the same a policy check reports. */
export type LoadProblem = PolicyProblem;

export type LoadOutcome = { loaded: true } | { loaded: false; problems: LoadProblem[] };

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface StatusWriter {
  /** Records the outcome of loading `obj`. Never rejects. */
  report(obj: PolicyObjectState, outcome: LoadOutcome): Promise<void>;
  /** The object was deleted: nothing more will be reported about it. */
  forget?(obj: { kind: PolicyKind; name: string; namespace?: string }): void;
}

/** metav1.Condition allows 32768; a policy with hundreds of problems should not push that. */
const MAX_MESSAGE = 4096;

export function readyMessage(outcome: LoadOutcome): string {
  if (outcome.loaded) return 'policy loaded';
  const text = outcome.problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ');
  const full = `policy rejected, images it would cover are denied until it is fixed: ${text || 'invalid'}`;
  return full.length > MAX_MESSAGE ? `${full.slice(0, MAX_MESSAGE - 3)}...` : full;
}

function isCondition(c: unknown): c is Condition {
  return c !== null && typeof c === 'object' && typeof (c as { type?: unknown }).type === 'string';
}

/**
 * The conditions array to write, or undefined when the Ready condition already says
 * the same thing. lastTransitionTime moves only when status flips, as
 * apimachinery's meta.SetStatusCondition does, so `kubectl` shows since when a policy
 * has been broken rather than when it was last re-read.
 */
export function nextConditions(current: unknown, outcome: LoadOutcome, generation: number | undefined, now: Date): Condition[] | undefined {
  const existing = Array.isArray(current) ? current : [];
  const prev = existing.find((c): c is Condition => isCondition(c) && c.type === 'Ready');
  const status = outcome.loaded ? 'True' : 'False';
  const wanted = {
    type: 'Ready',
    status,
    reason: outcome.loaded ? 'Loaded' : 'Invalid',
    message: readyMessage(outcome),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  } as const;
  if (
    prev &&
    prev.status === wanted.status &&
    prev.reason === wanted.reason &&
    prev.message === wanted.message &&
    prev.observedGeneration === wanted.observedGeneration
  ) {
    return undefined;
  }
  const lastTransitionTime =
    prev && prev.status === status && typeof prev.lastTransitionTime === 'string'
      ? prev.lastTransitionTime
      : now.toISOString().replace(/\.\d+Z$/, 'Z');
  const ready: Condition = { ...wanted, lastTransitionTime };
  // A merge patch replaces arrays whole, so conditions other writers own are carried over.
  return [...existing.filter((c) => !(isCondition(c) && c.type === 'Ready')), ready] as Condition[];
}
