/**
 * Turns TrustPolicy and ClusterTrustPolicy objects read from the cluster into the store's
 * contents and their status reports. It knows nothing of how the objects are fetched
 * (kube/policy-source.ts lists and watches them); it is told "this is the whole list of a
 * kind", "this object was added or changed", "this one was deleted".
 *
 * Failing closed: an object that does not validate is logged, reported in its status,
 * and replaces its previous version in the store as an invalid policy, which denies what
 * it would cover (its images, or its whole scope when they cannot be read) until it is
 * fixed. Dropping it instead would hand its images to a broader valid policy, so a typo
 * would quietly lower enforcement; keeping the older version would enforce something the
 * author believes is gone. The policy webhook (/validate-policy) refuses most such objects
 * at the door; this covers the ones that get past it (webhook down, failurePolicy Ignore).
 */
import { isInvalidPolicy, readPolicy, type InvalidPolicy, type PolicyKind, type TrustPolicy } from './model.js';
import type { LoadOutcome, LoadProblem, StatusWriter } from './status.js';
import { KUBERNETES_SOURCE, type PolicyStore } from './store.js';

/** A policy object as the API server sends it; nothing in it is trusted to have the right type. */
export interface PolicyObject {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: {
    name?: unknown;
    namespace?: unknown;
    uid?: unknown;
    resourceVersion?: unknown;
    generation?: unknown;
    labels?: unknown;
    annotations?: unknown;
  };
  spec?: unknown;
  status?: { conditions?: unknown };
}

/** A non-empty string, or undefined. */
export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

export class PolicyObjectSync {
  /** Policies per kind, valid and invalid, keyed namespace/name: what this source has put in the store. */
  private readonly loaded: Record<PolicyKind, Map<string, TrustPolicy | InvalidPolicy>> = {
    TrustPolicy: new Map(),
    ClusterTrustPolicy: new Map(),
  };
  /** What each object last parsed was and what came of it, so writes that touch only status are not re-applied. */
  private readonly fingerprints: Record<PolicyKind, Map<string, { print: string; outcome: LoadOutcome }>> = {
    TrustPolicy: new Map(),
    ClusterTrustPolicy: new Map(),
  };

  constructor(
    private readonly store: PolicyStore,
    private readonly log: (event: object) => void,
    private readonly statusWriter: StatusWriter | undefined,
  ) {}

  /** `items` is every object of `kind` there is (as of `resourceVersion`): replaces what the store held of that kind. */
  replaceKind(kind: PolicyKind, items: PolicyObject[], resourceVersion: string): void {
    const next = new Map<string, TrustPolicy | InvalidPolicy>();
    const prints = new Map<string, { print: string; outcome: LoadOutcome }>();
    const reports: Array<[PolicyObject, LoadOutcome]> = [];
    for (const item of items) {
      const key = this.key(item);
      const parsed = this.parse(kind, item);
      if (key) prints.set(key, { print: this.fingerprint(item), outcome: parsed.outcome });
      if (key) next.set(key, parsed.held);
      reports.push([item, parsed.outcome]);
    }
    this.loaded[kind] = next;
    this.fingerprints[kind] = prints;
    // The list is the whole truth for this kind: objects deleted while we were not
    // watching disappear here. Both kinds go in together because the store replaces
    // everything this source ever gave it.
    this.store.replaceSource(KUBERNETES_SOURCE, [...this.loaded.ClusterTrustPolicy.values(), ...this.loaded.TrustPolicy.values()]);
    const invalid = [...next.values()].filter(isInvalidPolicy).length;
    this.log({ level: 'info', event: 'policy-list-applied', kind, resourceVersion, objects: items.length, loaded: next.size - invalid, invalid });
    for (const [item, outcome] of reports) this.report(kind, item, outcome);
  }

  /** An object of `kind` was added or changed. */
  apply(kind: PolicyKind, o: PolicyObject): void {
    const key = this.key(o);
    if (!key) {
      this.log({ level: 'warn', event: 'policy-event-ignored', kind, reason: 'object has no name' });
      return;
    }
    const print = this.fingerprint(o);
    const seen = this.fingerprints[kind].get(key);
    if (seen && seen.print === print) {
      // A status-only write (often our own): the store already reflects this object.
      this.report(kind, o, seen.outcome);
      return;
    }
    const parsed = this.parse(kind, o);
    this.fingerprints[kind].set(key, { print, outcome: parsed.outcome });
    this.loaded[kind].set(key, parsed.held);
    this.store.upsert(parsed.held);
    if (!isInvalidPolicy(parsed.held)) {
      this.log({ level: 'info', event: 'policy-loaded', kind, namespace: str(o.metadata?.namespace), name: str(o.metadata?.name), generation: o.metadata?.generation });
    }
    this.report(kind, o, parsed.outcome);
  }

  /** An object of `kind` was deleted. */
  delete(kind: PolicyKind, o: PolicyObject): void {
    const key = this.key(o);
    if (!key) return;
    this.fingerprints[kind].delete(key);
    const had = this.loaded[kind].delete(key);
    const namespace = kind === 'TrustPolicy' ? str(o.metadata?.namespace) : undefined;
    // Removing what is not there is harmless, and covers a store changed behind our back.
    this.store.remove(kind, namespace, str(o.metadata?.name) ?? '');
    if (had) this.log({ level: 'info', event: 'policy-removed', kind, namespace, name: str(o.metadata?.name) });
    const name = str(o.metadata?.name);
    if (name) this.statusWriter?.forget?.({ kind, name, ...(namespace ? { namespace } : {}) });
  }

  private key(o: PolicyObject): string | undefined {
    const name = str(o?.metadata?.name);
    return name ? `${str(o.metadata?.namespace) ?? ''}/${name}` : undefined;
  }

  private fingerprint(o: PolicyObject): string {
    const m = o.metadata ?? {};
    return JSON.stringify([m.uid, m.labels, m.annotations, o.spec]);
  }

  private parse(kind: PolicyKind, o: PolicyObject): { held: TrustPolicy | InvalidPolicy; outcome: LoadOutcome } {
    const held = readPolicy(o, KUBERNETES_SOURCE, kind);
    if (!isInvalidPolicy(held)) return { held, outcome: { loaded: true } };
    const problems: LoadProblem[] = held.problems;
    const covers = held.images ?? `every image in ${held.kind === 'TrustPolicy' && held.namespace ? `namespace ${held.namespace}` : 'the cluster'}`;
    this.log({ level: 'error', event: 'policy-invalid', kind, namespace: str(o?.metadata?.namespace), name: str(o?.metadata?.name), problems, effect: 'fails what it covers', covers, mode: held.mode });
    return { held, outcome: { loaded: false, problems } };
  }

  private report(kind: PolicyKind, o: PolicyObject, outcome: LoadOutcome): void {
    if (!this.statusWriter) return;
    const name = str(o?.metadata?.name);
    if (!name) return;
    const generation = o.metadata?.generation;
    void this.statusWriter.report(
      {
        kind,
        name,
        ...(kind === 'TrustPolicy' && str(o.metadata?.namespace) ? { namespace: str(o.metadata?.namespace) } : {}),
        ...(str(o.metadata?.uid) ? { uid: str(o.metadata?.uid) } : {}),
        ...(typeof generation === 'number' ? { generation } : {}),
        ...(str(o.metadata?.resourceVersion) ? { resourceVersion: str(o.metadata?.resourceVersion) } : {}),
        conditions: o.status?.conditions,
      },
      outcome,
    );
  }
}
