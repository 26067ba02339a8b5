/**
 * The policies in force, from any number of sources (each policy file, the Kubernetes
 * informer), and the answer to "which policies apply to this image in this namespace".
 *
 * A policy is held per source: the same name from two sources (two files, or a file and
 * the cluster) is kept twice rather than one replacing the other, because policies compose
 * by AND and dropping either would loosen what applies.
 *
 * Invalid policies are held too, for the same reason: dropping one would leave its images
 * to a broader policy (or to "no policy"). What an invalid policy covers is its images when
 * they parse, its whole scope (namespace, or cluster) when they do not; `invalidFor` names
 * them and the engine denies with their problems.
 */
import { compileImagePattern, type ImagePattern } from './match.js';
import { isInvalidPolicy, policyId, type InvalidPolicy, type PolicyKind, type TrustPolicy } from './model.js';

/** The source name the Kubernetes informer uses; `remove` defaults to it. */
export const KUBERNETES_SOURCE = 'kubernetes';

export interface StoreChange {
  /** The source whose policies changed. */
  source: string;
}

const ANSWERS_MAX = 1024;

export type ChangeListener = (change: StoreChange) => void;

interface Entry {
  policy: TrustPolicy | InvalidPolicy;
  /** undefined: the whole scope (an invalid policy whose images do not parse). */
  patterns: ImagePattern[] | undefined;
}

interface Answer {
  valid: TrustPolicy[];
  invalid: InvalidPolicy[];
}

export class PolicyStore {
  private readonly sources = new Map<string, Map<string, Entry>>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly answers = new Map<string, Answer>();
  private readyFlag = false;
  private readonly readyWaiters: (() => void)[] = [];

  /** Makes `policies` the whole contribution of `source` (an empty list removes the source). */
  replaceSource(source: string, policies: Array<TrustPolicy | InvalidPolicy>): void {
    const next = new Map<string, Entry>();
    for (const p of policies) next.set(policyId(p), entry(p));
    const before = this.sources.get(source);
    if (before && sameEntries(before, next)) return;
    if (!before && next.size === 0) return;
    if (next.size === 0) this.sources.delete(source);
    else this.sources.set(source, next);
    this.emit(source);
  }

  /** Adds or replaces one policy within its own source (`p.source`). */
  upsert(p: TrustPolicy | InvalidPolicy): void {
    let map = this.sources.get(p.source);
    const id = policyId(p);
    const old = map?.get(id);
    if (old && JSON.stringify(old.policy) === JSON.stringify(p)) return;
    if (!map) this.sources.set(p.source, (map = new Map()));
    map.set(id, entry(p));
    this.emit(p.source);
  }

  /**
   * Removes one policy from one source (the Kubernetes informer's unless told otherwise;
   * file sources use replaceSource). `namespace` is ignored for ClusterTrustPolicy.
   */
  remove(kind: PolicyKind, namespace: string | undefined, name: string, source: string = KUBERNETES_SOURCE): void {
    const map = this.sources.get(source);
    const id = policyId({ kind, name, ...(kind === 'TrustPolicy' ? { namespace: namespace ?? '' } : {}) });
    if (!map || !map.delete(id)) return;
    if (map.size === 0) this.sources.delete(source);
    this.emit(source);
  }

  /**
   * Every ClusterTrustPolicy matching `reference`, and every TrustPolicy of `namespace`
   * matching it (none when namespace is undefined: a cluster-scoped view). Ordered by
   * kind (cluster first), namespace, name, source, so verdicts list failures stably.
   */
  policiesFor(reference: string, namespace: string | undefined): TrustPolicy[] {
    return this.answer(reference, namespace).valid;
  }

  /**
   * The invalid policies that would apply to `reference` in `namespace`: those whose images
   * match it, and those whose images cannot be read, anywhere in their scope. An invalid
   * TrustPolicy of unknown namespace counts in every namespace. Same order as policiesFor.
   */
  invalidFor(reference: string, namespace: string | undefined): InvalidPolicy[] {
    return this.answer(reference, namespace).invalid;
  }

  private answer(reference: string, namespace: string | undefined): Answer {
    // Admissions repeat the same images: answers are remembered until the policies change.
    const key = namespace === undefined ? reference : `${reference}\n${namespace}`;
    const known = this.answers.get(key);
    if (known) return known;
    const out = this.match(reference, namespace);
    if (this.answers.size >= ANSWERS_MAX) this.answers.delete(this.answers.keys().next().value as string);
    this.answers.set(key, out);
    return out;
  }

  private match(reference: string, namespace: string | undefined): Answer {
    const valid: TrustPolicy[] = [];
    const invalid: InvalidPolicy[] = [];
    for (const map of this.sources.values()) {
      for (const { policy, patterns } of map.values()) {
        const bad = isInvalidPolicy(policy);
        if (policy.kind === 'TrustPolicy' && (namespace === undefined || policy.namespace !== namespace) && !(bad && policy.namespace === undefined)) continue;
        if (patterns !== undefined && !patterns.some((p) => p.matches(reference))) continue;
        if (bad) invalid.push(policy);
        else valid.push(policy);
      }
    }
    return { valid: valid.sort(order), invalid: invalid.sort(order) };
  }

  /** Every valid policy. */
  all(): TrustPolicy[] {
    const out: TrustPolicy[] = [];
    for (const map of this.sources.values()) for (const e of map.values()) if (!isInvalidPolicy(e.policy)) out.push(e.policy);
    return out.sort(order);
  }

  /** Every invalid policy held (each denies what it would cover until fixed). */
  invalid(): InvalidPolicy[] {
    const out: InvalidPolicy[] = [];
    for (const map of this.sources.values()) for (const e of map.values()) if (isInvalidPolicy(e.policy)) out.push(e.policy);
    return out.sort(order);
  }

  /** Sources currently contributing at least one policy. */
  sourceNames(): string[] {
    return [...this.sources.keys()].sort();
  }

  /** Calls `listener` after every change; returns a function that unsubscribes it. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Policies have been loaded once (the initial directory scan, or the first list from the cluster). */
  markReady(): void {
    if (this.readyFlag) return;
    this.readyFlag = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  get ready(): boolean {
    return this.readyFlag;
  }

  whenReady(): Promise<void> {
    return this.readyFlag ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private emit(source: string): void {
    this.answers.clear();
    for (const l of [...this.listeners]) {
      try {
        l({ source });
      } catch {
        // A failing listener must not stop the source that is feeding the store.
      }
    }
  }
}

function entry(policy: TrustPolicy | InvalidPolicy): Entry {
  if (isInvalidPolicy(policy)) {
    // invalidPolicy() keeps images only when every pattern is usable; if one still fails
    // to compile here, the whole scope is covered rather than less.
    try {
      return { policy, patterns: policy.images?.map((img) => compileImagePattern(img)) };
    } catch {
      return { policy, patterns: undefined };
    }
  }
  // parsePolicy has already rejected any pattern that does not compile; a hand-built
  // policy with a bad pattern matches nothing rather than throwing on every lookup.
  const patterns = policy.spec.images.flatMap((img) => {
    try {
      return [compileImagePattern(img)];
    } catch {
      return [];
    }
  });
  return { policy, patterns };
}

function sameEntries(a: Map<string, Entry>, b: Map<string, Entry>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, e] of a) {
    const other = b.get(id);
    if (!other || JSON.stringify(other.policy) !== JSON.stringify(e.policy)) return false;
  }
  return true;
}

const KIND_ORDER: Record<PolicyKind, number> = { ClusterTrustPolicy: 0, TrustPolicy: 1 };

function order(a: TrustPolicy | InvalidPolicy, b: TrustPolicy | InvalidPolicy): number {
  return (
    KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
    (a.namespace ?? '').localeCompare(b.namespace ?? '') ||
    a.name.localeCompare(b.name) ||
    a.source.localeCompare(b.source)
  );
}
