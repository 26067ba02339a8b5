/**
 * Writes the `Ready` condition that policy/status.ts computes into the policy object's
 * status subresource. Status is a report, not a control path: a failed write is
 * logged and forgotten, it never stops policies from loading or the webhook from serving.
 */
import { CustomObjectsApi, PatchStrategy, type KubeConfig } from '@kubernetes/client-node';

import { nextConditions, type LoadOutcome, type PolicyObjectState, type StatusWriter } from '../policy/status.js';
import { PLURALS, POLICY_GROUP, POLICY_VERSION, requestOptions } from './policy-api.js';

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
    // The generated client defaults to JSON Patch for PATCH; this body is a merge patch.
    const options = requestOptions(signal, PatchStrategy.MergePatch);
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
