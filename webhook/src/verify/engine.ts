/**
 * The verification engine: an image and the policies that apply to it in, a verdict out.
 * Every policy that matches must accept the image (AND); all accepting policies must agree
 * on one digest; failures keep the mode of the policy that raised them, so a namespaced
 * policy can add requirements but never soften a cluster policy's enforcement.
 */
import { createHash } from 'node:crypto';
import { parseReference, formatReference, withoutDefaultPort, type ImageReference } from '../images/reference.js';
import { raceAbort } from '../common/abort.js';
import { FetchError, type MetadataSource } from '../notary/source.js';
import { InvalidNameError } from '../notary/paths.js';
import { loadRepository } from '../notary/updater.js';
import { TrustServerLimits } from '../notary/server-limits.js';
import type { InvalidPolicy, TrustPolicy } from '../policy/model.js';
import { pinFromPem, TufError, type RootPin, type TrustedRepository } from '../tuf/index.js';
import { budgetedSource, LoadWorkers, OverBudget, WorkerLoadError } from './load-workers.js';
import { RepositoryCache, type Loader } from './repository-cache.js';
import { roleExpiries, type RoleExpiry } from './expiry.js';
import { TufTrust } from './tuf-trust.js';
import type { SpecSource } from '../tufrepo/source.js';
import type { SpecRepository } from '../tufrepo/updater.js';
import { signedDigest, type ImageTarget } from './signed-digest.js';
import { failure, trustServerErrorKind, type Failure } from './failure.js';
import type { ImageVerdict, ImageVerifier, PolicyFailure, PolicyRef } from './types.js';
import { MemoryVersionStore, type VersionStore } from './version-store.js';
import { aliasDenial, compose, denied, invalidFailure, policyRef, type PolicyOutcome } from './verdict.js';

export { policyRef } from './verdict.js';

export interface PolicyLookup {
  policiesFor(reference: string, namespace: string | undefined): TrustPolicy[];
  /**
   * Invalid policies that would apply: each fails the image in its own mode (enforce
   * when unreadable). Lookups over pre-validated policies (`trustgate verify --policy`)
   * have none.
   */
  invalidFor?(reference: string, namespace: string | undefined): InvalidPolicy[];
}

export interface EngineMetrics {
  cacheHit?(): void;
  cacheMiss?(): void;
  trustServerError?(server: string, kind: string): void;
  verificationSeconds?(seconds: number): void;
  /** Trust data of one repository was verified (`key` names the cache entry it lives in). */
  trustDataVerified?(key: string, data: { server: string; repository: string; expiries: RoleExpiry[] }): void;
  /** The cache let go of the entry `key`. */
  trustDataForgotten?(key: string): void;
  /** A trust server served metadata older than already trusted (TUF rollback), for this repository. */
  rollbackRefused?(server: string, repository: string): void;
}

export interface EngineOptions {
  policies: PolicyLookup;
  /** Where a policy's trust data comes from for one repository (HTTP server, directory). */
  sourceFor: (policy: TrustPolicy, gun: string) => MetadataSource | Promise<MetadataSource>;
  clock?: () => Date;
  cache?: RepositoryCache;
  versions?: VersionStore;
  /** Where a protocol-tuf policy's metadata comes from (a directory for offline checks); default: its URL. */
  tufSourceFor?: (policy: TrustPolicy) => SpecSource;
  /** Verified TUF 1.0 repositories; default: one with the Notary cache's settings. */
  tufCache?: RepositoryCache<SpecRepository>;
  /** Allow images no policy matches (default: deny). */
  allowUnmatched?: boolean;
  /** Images admitted without verification: exact normalized-pattern matches, decided by the caller. */
  isExempt?: (reference: string) => boolean;
  metrics?: EngineMetrics;
  /** Per-trust-server limits (loads at once, bytes held, file caps), lower for namespaced policies. */
  limits?: TrustServerLimits;
  /** Where loads past the main-thread budget run; false keeps every load on the main thread. */
  workers?: LoadWorkers | false;
  /** Bytes a load may fetch before it moves off the main thread (default 1 MiB). */
  mainThreadBytes?: number;
}

export const DEFAULT_MAIN_THREAD_BYTES = 1024 * 1024;

export class VerificationEngine implements ImageVerifier {
  private readonly clock: () => Date;
  private readonly cache: RepositoryCache;
  private readonly versions: VersionStore;
  private readonly pins = new WeakMap<TrustPolicy, { pin: RootPin; id: string }>();
  private readonly tuf: TufTrust;
  private readonly limits: TrustServerLimits;
  private workers: LoadWorkers | undefined;
  /** Repositories verified in a worker: too large for the main thread, so their refreshes go there too. */
  private readonly offloaded = new WeakSet<TrustedRepository>();

  constructor(private readonly opts: EngineOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.cache = opts.cache ?? new RepositoryCache({ clock: this.clock });
    this.versions = opts.versions ?? new MemoryVersionStore();
    this.cache.onEvict((key) => this.opts.metrics?.trustDataForgotten?.(key));
    const c = this.cache;
    const tufCache = opts.tufCache ?? new RepositoryCache<SpecRepository>({ clock: this.clock, refreshIntervalMs: c.refreshIntervalMs, maxEntries: c.maxEntries, retryMs: c.retryMs, refreshWaitMs: c.refreshWaitMs });
    tufCache.onEvict((key) => this.opts.metrics?.trustDataForgotten?.(key));
    this.limits = opts.limits ?? new TrustServerLimits();
    this.tuf = new TufTrust({
      cache: tufCache,
      versions: this.versions,
      clock: this.clock,
      limits: this.limits,
      ...(opts.tufSourceFor ? { sourceFor: opts.tufSourceFor } : {}),
      onFetchError: (server, kind) => opts.metrics?.trustServerError?.(server, trustServerErrorKind(failure('transport', kind))!),
      onVerified: (key, data) => opts.metrics?.trustDataVerified?.(key, data),
    });
    if (opts.workers) this.workers = opts.workers;
  }

  /** Stops the verification workers. */
  async close(): Promise<void> {
    await this.workers?.close();
  }

  async verifyImage(image: string, namespace: string | undefined, signal: AbortSignal): Promise<ImageVerdict> {
    const started = performance.now();
    try {
      const plan = this.plan(image, namespace);
      if (!('policies' in plan)) return plan;
      // Warm trust data answers without a promise per policy (the same answer as the I/O path).
      const outcomes = this.peekAll(plan.policies, plan.ref) ?? (await Promise.all(plan.policies.map((p) => this.checkPolicy(p, plan.ref, signal))));
      return compose(image, plan.reference, plan.ref, outcomes, plan.invalid);
    } finally {
      this.opts.metrics?.verificationSeconds?.((performance.now() - started) / 1000);
    }
  }

  /**
   * The verdict without I/O, when every policy's trust data is warm (or no trust data is
   * needed); undefined when verifyImage has to go to a trust server. Same answer either way.
   */
  verifyCached(image: string, namespace: string | undefined): ImageVerdict | undefined {
    const started = performance.now();
    const plan = this.plan(image, namespace);
    let verdict: ImageVerdict;
    if (!('policies' in plan)) verdict = plan;
    else {
      const outcomes = this.peekAll(plan.policies, plan.ref);
      if (!outcomes) return undefined;
      verdict = compose(image, plan.reference, plan.ref, outcomes, plan.invalid);
    }
    this.opts.metrics?.verificationSeconds?.((performance.now() - started) / 1000);
    return verdict;
  }

  /** Every policy's outcome from warm trust data, counted as cache hits; undefined (nothing counted) when any needs I/O. */
  private peekAll(policies: TrustPolicy[], ref: ImageReference): PolicyOutcome[] | undefined {
    const outcomes: PolicyOutcome[] = [];
    for (const policy of policies) {
      const outcome = this.peekPolicy(policy, ref);
      if (!outcome) return undefined;
      outcomes.push(outcome);
    }
    for (let i = 0; i < outcomes.length; i++) this.opts.metrics?.cacheHit?.();
    return outcomes;
  }

  /** A verdict that needs no trust data (bad reference, exempt, no policy), or what to check. */
  private plan(image: string, namespace: string | undefined): ImageVerdict | { ref: ImageReference; reference: string; policies: TrustPolicy[]; invalid: PolicyFailure[] } {
    let ref: ImageReference;
    let portless: ImageReference | undefined;
    try {
      ref = parseReference(image);
      portless = withoutDefaultPort(ref);
    } catch (e) {
      return denied(image, image, { ...failure('reference', 'invalid-reference'), reason: (e as Error).message });
    }
    const reference = formatReference(ref);
    if (this.opts.isExempt?.(reference)) return { image, reference, allowed: true, passed: [], failures: [], unverified: 'exempt' };
    // An invalid policy that covers the image (under either spelling of `host:443/x`) fails
    // it; an enforcing one decides without trust data, whatever broader valid policies say.
    const invalidPolicies = this.opts.policies.invalidFor?.(reference, namespace) ?? [];
    const aliased = portless ? (this.opts.policies.invalidFor?.(formatReference(portless), namespace) ?? []) : [];
    const invalid = invalidPolicies.length + aliased.length === 0 ? [] : [...new Set([...invalidPolicies, ...aliased])].map(invalidFailure);
    if (invalid.some((f) => f.mode === 'enforce')) return { image, reference, allowed: false, passed: [], failures: invalid };
    const policies = this.opts.policies.policiesFor(reference, namespace);
    if (portless) {
      const alias = aliasDenial(image, ref, reference, portless, policies, this.opts.policies.policiesFor(formatReference(portless), namespace));
      if (alias) return alias;
    }
    if (policies.length === 0) {
      if (this.opts.allowUnmatched) return { image, reference, allowed: true, passed: [], failures: invalid, unverified: 'unmatched' };
      const none = denied(image, reference, { ...failure('policy', 'no-policy'), reason: `no TrustPolicy or ClusterTrustPolicy matches ${reference}` });
      return { ...none, failures: [...none.failures, ...invalid] };
    }
    return { ref, reference, policies, invalid };
  }

  /** Verify under one policy; never throws. */
  async checkPolicy(policy: TrustPolicy, ref: ImageReference, signal: AbortSignal): Promise<PolicyOutcome> {
    if (policy.spec.trustServer.protocol === 'tuf') return this.checkTufPolicy(policy, ref, signal);
    try {
      const repository = repositoryOf(policy, ref);
      const { pin, id: pinId } = this.pinOf(policy);
      const key = `${repository}|${pinId}`;
      const cached = await raceAbort(this.cache.get(key, this.loader(policy, ref.name, repository, pin, key), maxAgeOf(policy)), signal, () => new DeadlineError());
      if (cached.hit) this.opts.metrics?.cacheHit?.();
      else this.opts.metrics?.cacheMiss?.();
      return this.judge(policy, ref, cached.repo);
    } catch (e) {
      return outcomeOfError(policy, e);
    }
  }

  /**
   * When what vouches for this image stops being trusted: the earliest expiry among the
   * top-level roles and the roles that signed it, under each policy that accepts it, from
   * warm trust data (call after verifying); undefined when nothing warm accepts it.
   */
  expiresAt(image: string, namespace: string | undefined): { at: Date; role: string; policy: PolicyRef } | undefined {
    const plan = this.plan(image, namespace);
    if (!('policies' in plan)) return undefined;
    let best: { at: Date; role: string; policy: PolicyRef } | undefined;
    for (const policy of plan.policies) {
      // Notary repositories only: TUF 1.0 (protocol tuf) trust data has no forecast yet.
      if (policy.spec.trustServer.protocol === 'tuf') continue;
      let repo: TrustedRepository | undefined;
      try {
        repo = this.cache.peek(`${repositoryOf(policy, plan.ref)}|${this.pinOf(policy).id}`, maxAgeOf(policy))?.repo;
      } catch {
        continue;
      }
      const outcome = repo && this.judge(policy, plan.ref, repo);
      if (!repo || !outcome?.digest) continue;
      const used = new Set(['root', 'timestamp', 'snapshot', 'targets', ...(outcome.roles ?? [])]);
      for (const e of roleExpiries(repo)) {
        if (used.has(e.role) && (!best || e.expires < best.at)) best = { at: e.expires, role: e.role, policy: policyRef(policy) };
      }
    }
    return best;
  }

  /** Verify under one TUF 1.0 policy; never throws. */
  private async checkTufPolicy(policy: TrustPolicy, ref: ImageReference, signal: AbortSignal): Promise<PolicyOutcome> {
    try {
      const verdict = raceAbort(
        (async () => {
          const cached = await this.tuf.repository(policy, maxAgeOf(policy));
          if (cached.hit) this.opts.metrics?.cacheHit?.();
          else this.opts.metrics?.cacheMiss?.();
          return this.tuf.signedDigest(policy, cached.repo, ref);
        })(),
        signal,
        () => new DeadlineError(),
      );
      const result = await verdict;
      if (!result.ok) return failedOutcome(policy, result, result.role, result.reason);
      return { policy, digest: result.digest, roles: result.roles };
    } catch (e) {
      return outcomeOfError(policy, e);
    }
  }

  /** The outcome from warm trust data alone, or undefined (also when anything is off: verifyImage then reports it). */
  private peekPolicy(policy: TrustPolicy, ref: ImageReference): PolicyOutcome | undefined {
    try {
      if (policy.spec.trustServer.protocol === 'tuf') {
        const result = this.tuf.cachedDigest(policy, ref, maxAgeOf(policy));
        if (!result) return undefined;
        return result.ok ? { policy, digest: result.digest, roles: result.roles } : failedOutcome(policy, result, result.role, result.reason);
      }
      const repo = this.cache.peek(`${repositoryOf(policy, ref)}|${this.pinOf(policy).id}`, maxAgeOf(policy))?.repo;
      return repo && this.judge(policy, ref, repo);
    } catch {
      return undefined;
    }
  }

  /** What the verified trust data says about this reference under this policy. */
  private judge(policy: TrustPolicy, ref: ImageReference, repo: TrustedRepository): PolicyOutcome {
    try {
      const target: ImageTarget = {};
      if (ref.tag !== undefined) target.tag = ref.tag;
      if (ref.digest !== undefined) target.digest = ref.digest;
      const result = signedDigest(repo, target, policy.spec.delegations, this.clock());
      if (!result.ok) return failedOutcome(policy, result, result.role, result.reason);
      return { policy, digest: result.digest, roles: result.roles };
    } catch (e) {
      return outcomeOfError(policy, e);
    }
  }

  private loader(policy: TrustPolicy, gun: string, repository: string, pin: RootPin, key: string): Loader {
    return async (previous) => {
      const source = await this.opts.sourceFor(policy, gun);
      const server = policy.spec.trustServer.url;
      try {
        const scope = policy.kind === 'TrustPolicy' ? 'namespaced' : 'cluster';
        const repo = await this.limits.runLoad(scope, source, (limited) => this.load(limited, pin, repository, previous));
        this.versions.record(repository, repo);
        this.opts.metrics?.trustDataVerified?.(key, { server, repository: gun, expiries: roleExpiries(repo) });
        return repo;
      } catch (e) {
        if (e instanceof TufError && e.code === 'rollback') this.opts.metrics?.rollbackRefused?.(server, gun);
        // A server that could not be read, or whose data a worker could not verify within its memory or time.
        const kind = e instanceof FetchError || e instanceof WorkerLoadError ? trustServerErrorKind(failureOf(e)) : undefined;
        if (kind) this.opts.metrics?.trustServerError?.(server, kind);
        throw e;
      }
    };
  }

  /** On the main thread while the load stays within its byte budget, else in a worker. */
  private async load(source: MetadataSource, pin: RootPin, repository: string, previous: TrustedRepository | undefined): Promise<TrustedRepository> {
    const now = this.clock();
    const floor = this.versions.floor(repository);
    if (this.opts.workers === false) return loadRepository(source, { pin, now, floor, previous });
    let prefetched: Map<string, Uint8Array> | undefined;
    if (!previous || !this.offloaded.has(previous)) {
      const budget = budgetedSource(source, this.opts.mainThreadBytes ?? DEFAULT_MAIN_THREAD_BYTES);
      try {
        return await loadRepository(budget.source, { pin, now, floor, previous });
      } catch (e) {
        if (!(e instanceof OverBudget)) throw e;
        prefetched = budget.fetched;
      }
    }
    // Made when first needed and not kept warm: engines without a pool of their own (the
    // self-check's, the CLI's) mostly never need one.
    const workers = (this.workers ??= new LoadWorkers({ keepWarm: false }));
    const repo = await workers.load(source, { pin, now, floor }, prefetched);
    this.offloaded.add(repo);
    return repo;
  }

  private pinOf(policy: TrustPolicy): { pin: RootPin; id: string } {
    let p = this.pins.get(policy);
    if (!p) {
      const pin = pinFromPem(policy.spec.root.keys, policy.spec.root.threshold);
      const h = createHash('sha256');
      for (const k of [...pin.keys].sort(Buffer.compare)) h.update(k);
      h.update(String(pin.threshold));
      p = { pin, id: h.digest('hex').slice(0, 32) };
      this.pins.set(policy, p);
    }
    return p;
  }
}

/** One repository on one trust server: what high-water marks are kept for (the cache key adds the root pin). */
function repositoryOf(policy: TrustPolicy, ref: ImageReference): string {
  return `${policy.spec.trustServer.url}|${ref.name}`;
}

function maxAgeOf(policy: TrustPolicy): number | undefined {
  const seconds = policy.spec.freshness?.maxMetadataAgeSeconds;
  return seconds === undefined ? undefined : seconds * 1000;
}

/** The outcome of a policy that did not vouch for the image: the failure as admission reports it. */
function failedOutcome(policy: TrustPolicy, why: Failure, role: string | undefined, reason: string): PolicyOutcome {
  const { cause, code } = why;
  return { policy, failure: { policy: policyRef(policy), mode: policy.spec.mode, code, cause, reason, server: policy.spec.trustServer.url, ...(role ? { role } : {}) } };
}

/** Which layer an error of a policy check comes from, and its code. */
function failureOf(e: unknown): Failure {
  if (e instanceof TufError) return failure('trust-data', e.code);
  if (e instanceof FetchError) return failure('transport', e.kind);
  if (e instanceof WorkerLoadError) return failure('internal', e.code);
  if (e instanceof DeadlineError) return failure('internal', 'timeout');
  if (e instanceof InvalidNameError) return failure('reference', 'invalid-reference');
  return failure('internal', 'error');
}

/** Every error of a policy check as a failure of that policy. */
function outcomeOfError(policy: TrustPolicy, e: unknown): PolicyOutcome {
  const server = policy.spec.trustServer.url;
  const why = failureOf(e);
  if (e instanceof TufError || e instanceof FetchError) return failedOutcome(policy, why, e.role, e.message);
  if (e instanceof WorkerLoadError) return failedOutcome(policy, why, undefined, `${e.message} (${server})`);
  if (e instanceof DeadlineError) return failedOutcome(policy, why, undefined, `verification did not finish before the deadline (${server})`);
  // A reference Docker accepts but Notary cannot name (an IPv6 registry, say).
  if (e instanceof InvalidNameError) return failedOutcome(policy, why, undefined, `the trust server cannot serve this repository: ${e.message}`);
  return failedOutcome(policy, why, undefined, `unexpected error: ${(e as Error).message ?? String(e)}`);
}

class DeadlineError extends Error {}
