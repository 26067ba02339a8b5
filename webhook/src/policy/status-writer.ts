/**
 * Tells policy authors whether trustgate loaded their policy, through a `Ready` condition
 * in the object's status (`kubectl get trustpolicy -o yaml`, `kubectl wait
 * --for=condition=Ready`). Status is a report, not a control path: a failed write is
 * logged and forgotten, it never stops policies from loading or the webhook from serving.
 */
import { CustomObjectsApi, Observable, PatchStrategy, type ConfigurationOptions, type KubeConfig } from '@kubernetes/client-node';

import { GROUP, type PolicyKind } from './model.js';

export const POLICY_GROUP = GROUP;
/** The API version trustgate reads and writes (the CRDs' storage version). */
export const POLICY_VERSION = 'v1alpha1';

export const PLURALS: Record<PolicyKind, string> = {
  TrustPolicy: 'trustpolicies',
  ClusterTrustPolicy: 'clustertrustpolicies',
};

/** The object as last seen from the API server: identity plus what status already says. */
export interface PolicyObjectState {
  kind: PolicyKind;
  name: string;
  /** Set for TrustPolicy only. */
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  /** `status.conditions` as observed (anything; malformed entries are kept as they are). */
  conditions?: unknown;
}

export interface LoadProblem {
  path: string;
  message: string;
}

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

export interface KubernetesStatusWriterOptions {
  kubeConfig: KubeConfig;
  log?: (event: object) => void;
  /** Per write (default 10 s). */
  timeoutMs?: number;
  now?: () => Date;
}

interface Job {
  obj: PolicyObjectState;
  outcome: LoadOutcome;
  done: Array<() => void>;
}

/**
 * Writes through the status subresource with a JSON merge patch. The patch carries the
 * resourceVersion it was computed from: if the object moved on meanwhile the server
 * answers 409 and we drop the write, because the change that moved it arrives as a
 * watch event and is reported afresh. Writes for one object run one at a time and only
 * the newest outcome waiting is written, so an older outcome can never land last.
 */
export class KubernetesStatusWriter implements StatusWriter {
  private readonly api: CustomObjectsApi;
  private readonly log: (event: object) => void;
  private readonly timeoutMs: number;
  private readonly now: () => Date;
  private readonly running = new Set<string>();
  private readonly waiting = new Map<string, Job>();
  private readonly aborter = new AbortController();

  constructor(opts: KubernetesStatusWriterOptions) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.log = opts.log ?? (() => {});
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.now = opts.now ?? (() => new Date());
  }

  report(obj: PolicyObjectState, outcome: LoadOutcome): Promise<void> {
    if (this.aborter.signal.aborted) return Promise.resolve();
    const key = `${obj.kind}/${obj.namespace ?? ''}/${obj.name}`;
    return new Promise<void>((resolve) => {
      const superseded = this.waiting.get(key);
      this.waiting.set(key, { obj, outcome, done: [...(superseded?.done ?? []), resolve] });
      if (!this.running.has(key)) void this.drain(key);
    });
  }

  /** Aborts writes in flight and refuses new ones (their promises resolve). */
  close(): void {
    this.aborter.abort();
  }

  private async drain(key: string): Promise<void> {
    this.running.add(key);
    try {
      for (let job = this.waiting.get(key); job; job = this.waiting.get(key)) {
        this.waiting.delete(key);
        await this.write(job.obj, job.outcome);
        for (const d of job.done) d();
      }
    } finally {
      this.running.delete(key);
    }
  }

  private async write(obj: PolicyObjectState, outcome: LoadOutcome): Promise<void> {
    const conditions = nextConditions(obj.conditions, outcome, obj.generation, this.now());
    if (!conditions || this.aborter.signal.aborted) return;
    const body = {
      metadata: obj.resourceVersion ? { resourceVersion: obj.resourceVersion } : {},
      // status.observedGeneration says which spec the whole status describes (the CRD
      // has it beside conditions); it moves with the condition's, so one write serves both.
      status: { conditions, ...(obj.generation !== undefined ? { observedGeneration: obj.generation } : {}) },
    };
    const signal = AbortSignal.any([this.aborter.signal, AbortSignal.timeout(this.timeoutMs)]);
    const options: ConfigurationOptions = {
      middleware: [
        {
          pre: (ctx) => {
            // The generated client defaults to JSON Patch for PATCH; this body is a merge patch.
            ctx.setHeaderParam('Content-Type', PatchStrategy.MergePatch);
            ctx.setSignal(signal);
            return new Observable(Promise.resolve(ctx));
          },
          post: (res) => new Observable(Promise.resolve(res)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
    const common = { group: POLICY_GROUP, version: POLICY_VERSION, plural: PLURALS[obj.kind], name: obj.name, body };
    try {
      if (obj.kind === 'TrustPolicy') {
        await this.api.patchNamespacedCustomObjectStatus({ ...common, namespace: obj.namespace ?? '' }, options);
      } else {
        await this.api.patchClusterCustomObjectStatus(common, options);
      }
      this.log({
        level: 'info',
        event: 'policy-status-written',
        kind: obj.kind,
        namespace: obj.namespace,
        name: obj.name,
        ready: outcome.loaded,
      });
    } catch (err) {
      if (this.aborter.signal.aborted) return;
      const code = (err as { code?: unknown }).code;
      this.log({
        level: 'warn',
        event: 'policy-status-write-failed',
        kind: obj.kind,
        namespace: obj.namespace,
        name: obj.name,
        ...(typeof code === 'number' ? { code } : {}),
        error: (err as Error).message?.split('\n')[0] ?? String(err),
      });
    }
  }
}
