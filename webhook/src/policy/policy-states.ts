/**
 * Which policy objects of the cluster are in force and which were rejected, as the policy
 * source reports them to the status writer: the figures behind trustgate_policies and the
 * transitions Events are about (became invalid, became valid). Wraps the status writer, so
 * the source needs no second channel.
 */
import type { PolicyKind } from './model.js';
import type { LoadOutcome, PolicyObjectState, StatusWriter } from './status.js';

export type PolicyState = 'valid' | 'invalid';

export interface PolicyTransition {
  object: PolicyObjectState;
  /** undefined: first seen. */
  from: PolicyState | undefined;
  to: PolicyState;
  outcome: LoadOutcome;
}

export class PolicyStates implements StatusWriter {
  private readonly states = new Map<string, { kind: PolicyKind; state: PolicyState }>();
  private readonly listeners = new Set<(t: PolicyTransition) => void>();

  constructor(private readonly inner?: StatusWriter) {}

  report(obj: PolicyObjectState, outcome: LoadOutcome): Promise<void> {
    const key = keyOf(obj);
    const to: PolicyState = outcome.loaded ? 'valid' : 'invalid';
    const from = this.states.get(key)?.state;
    this.states.set(key, { kind: obj.kind, state: to });
    if (from !== to) for (const l of this.listeners) l({ object: obj, from, to, outcome });
    return this.inner?.report(obj, outcome) ?? Promise.resolve();
  }

  forget(obj: { kind: PolicyKind; name: string; namespace?: string }): void {
    this.states.delete(keyOf(obj));
    this.inner?.forget?.(obj);
  }

  onTransition(listener: (t: PolicyTransition) => void): void {
    this.listeners.add(listener);
  }

  counts(): { kind: PolicyKind; state: PolicyState; count: number }[] {
    const n = new Map<string, number>();
    for (const { kind, state } of this.states.values()) n.set(`${kind}|${state}`, (n.get(`${kind}|${state}`) ?? 0) + 1);
    const out: { kind: PolicyKind; state: PolicyState; count: number }[] = [];
    // Every combination is shown, at 0 too, so an alert on invalid > 0 has a series to watch.
    for (const kind of ['ClusterTrustPolicy', 'TrustPolicy'] as const) {
      for (const state of ['valid', 'invalid'] as const) out.push({ kind, state, count: n.get(`${kind}|${state}`) ?? 0 });
    }
    return out;
  }
}

function keyOf(o: { kind: PolicyKind; name: string; namespace?: string }): string {
  return `${o.kind}/${o.namespace ?? ''}/${o.name}`;
}
