/**
 * TUF 1.0 repositories as a trust source for the engine. One verified repository per
 * (metadata URL, trusted root) serves every image it lists; it is refreshed and shared by
 * the same RepositoryCache rules as Notary repositories (single-flight, refresh interval,
 * served through an outage only while unexpired, failures backed off), and its high-water
 * marks live in the same VersionStore.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { ImageReference } from '../images/reference.js';
import type { PolicyScope, TrustServerLimits } from '../notary/server-limits.js';
import type { TrustPolicy } from '../policy/model.js';
import { pinFromPem } from '../tuf/index.js';
import { SpecHttpSource } from '../tufrepo/http-source.js';
import { FetchError, type FetchErrorKind, type SpecSource } from '../tufrepo/source.js';
import { NeedsRole, refreshSpecRepository, type SpecBootstrap, type SpecFetchLimit, type SpecRepository, type SpecUpdaterConfig } from '../tufrepo/updater.js';
import type { CachedRepository, RepositoryCache } from './repository-cache.js';
import type { ImageTarget, SignedDigest } from './signed-digest.js';
import { specRoleExpiries, type RoleExpiry } from './expiry.js';
import { tufSignedDigest, tufSignedDigestLoaded } from './tuf-digest.js';
import type { VersionStore } from './version-store.js';

export interface TufTrustOptions {
  cache: RepositoryCache<SpecRepository>;
  versions: VersionStore;
  clock: () => Date;
  /** Where a policy's TUF metadata comes from; default: its trustServer over HTTP(S). */
  sourceFor?: (policy: TrustPolicy) => SpecSource;
  config?: Partial<SpecUpdaterConfig>;
  /**
   * The engine's per-trust-server limits, shared with Notary loads: every fetch of a refresh
   * or of a lookup's delegated roles runs under those of the policy's scope. Default: none.
   */
  limits?: TrustServerLimits;
  onFetchError?: (server: string, kind: FetchErrorKind) => void;
  /** A load or a lookup verified trust data: its roles' expiries (the expiry gauge; a TUF repository's `repository` label is its URL). */
  onVerified?: (key: string, data: { server: string; repository: string; expiries: RoleExpiry[] }) => void;
}

const MAX_SOURCES = 256;

/** The same rule as Notary loads (verify/engine.ts): a TrustPolicy is a tenant's. */
function scopeOf(policy: TrustPolicy): PolicyScope {
  return policy.kind === 'TrustPolicy' ? 'namespaced' : 'cluster';
}

/**
 * The limits of one scope as the updater takes them. The trust server is the metadata URL
 * (source.server): each repository counts as its own server, so tenants whose repositories
 * share a host (a CDN, an object store) do not queue behind one another.
 */
function limitOf(limits: TrustServerLimits, scope: PolicyScope): SpecFetchLimit {
  return (source, work) => limits.runLoad(scope, source, work);
}

function imageOf(ref: ImageReference): ImageTarget {
  return { ...(ref.tag !== undefined ? { tag: ref.tag } : {}), ...(ref.digest !== undefined ? { digest: ref.digest } : {}) };
}

export class TufTrust {
  private readonly bootstraps = new WeakMap<TrustPolicy, { bootstrap: SpecBootstrap; id: string }>();
  /** HTTP sources by URL and CA, so connections are reused across policies and refreshes. */
  private readonly sources = new Map<string, SpecHttpSource>();
  /**
   * One connection pool per server and CA: repositories on one server share its open
   * connections, so a repository's first load does not start with a TLS handshake.
   */
  private readonly agents = new Map<string, http.Agent>();

  constructor(private readonly opts: TufTrustOptions) {}

  /** The repository this policy names, from the cache or a refresh; TufError / FetchError when it cannot be trusted. */
  repository(policy: TrustPolicy, maxAgeMs: number | undefined): Promise<CachedRepository<SpecRepository>> {
    const { bootstrap } = this.bootstrapOf(policy);
    return this.opts.cache.get(this.cacheKey(policy), () => this.load(policy, this.repositoryKey(policy), bootstrap), maxAgeMs);
  }

  /**
   * The warm path without a promise: what verified, fresh trust data alone says about this
   * image (the same answer signedDigest gives), or undefined when a refresh is due or a role
   * the search reaches is not loaded yet (signedDigest then does the I/O).
   */
  cachedDigest(policy: TrustPolicy, ref: ImageReference, maxAgeMs: number | undefined): SignedDigest | undefined {
    const repo = this.opts.cache.peek(this.cacheKey(policy), maxAgeMs)?.repo;
    if (!repo) return undefined;
    try {
      return tufSignedDigestLoaded(repo, ref.name, imageOf(ref), policy.spec.delegations);
    } catch (e) {
      if (e instanceof NeedsRole) return undefined;
      throw e;
    }
  }

  /** What the repository signs for this image under the policy's delegation requirements. */
  async signedDigest(policy: TrustPolicy, repo: SpecRepository, ref: ImageReference): Promise<SignedDigest> {
    const verified = repo.rolesVerified;
    try {
      return await tufSignedDigest(repo, ref.name, imageOf(ref), policy.spec.delegations);
    } catch (e) {
      // A delegated role the lookup could not fetch (over a cap, server down) counts like a failed refresh.
      if (e instanceof FetchError) this.opts.onFetchError?.(e.server, e.kind);
      throw e;
    } finally {
      // Lookups load delegated roles lazily: their versions become marks too. Only then:
      // the marks of a warm lookup are those already recorded (and computing them hashes keys).
      if (repo.rolesVerified !== verified) {
        this.opts.versions.recordVersions(this.repositoryKey(policy), repo.versionFloor());
        this.verified(policy, repo);
      }
    }
  }

  /** The expiry forecast of what was just verified (the gauge's series for this repository). */
  private verified(policy: TrustPolicy, repo: SpecRepository): void {
    const url = policy.spec.trustServer.url;
    this.opts.onVerified?.(this.cacheKey(policy), { server: url, repository: url, expiries: specRoleExpiries(repo) });
  }

  /** The repository's high-water marks: one set per URL, whoever loads it. */
  private repositoryKey(policy: TrustPolicy): string {
    return `tuf|${policy.spec.trustServer.url}`;
  }

  /**
   * One verified repository per URL, trusted root and policy scope. The scope is part of it
   * because lookups load delegated roles later, under the limits of the repository's
   * loader: a namespaced policy naming the same repository as a cluster policy must not
   * have its lookups fetch under the cluster's larger caps.
   */
  private cacheKey(policy: TrustPolicy): string {
    return `${this.repositoryKey(policy)}|${this.bootstrapOf(policy).id}|${scopeOf(policy)}`;
  }

  private async load(policy: TrustPolicy, key: string, bootstrap: SpecBootstrap): Promise<SpecRepository> {
    const source = this.sourceOf(policy);
    try {
      const repo = await refreshSpecRepository(source, {
        bootstrap,
        now: this.opts.clock(),
        clock: this.opts.clock,
        floor: this.opts.versions.floor(key),
        ...(this.opts.config ? { config: this.opts.config } : {}),
        ...(this.opts.limits ? { limit: limitOf(this.opts.limits, scopeOf(policy)) } : {}),
      });
      this.opts.versions.recordVersions(key, repo.versionFloor());
      this.verified(policy, repo);
      return repo;
    } catch (e) {
      if (e instanceof FetchError) this.opts.onFetchError?.(source.server, e.kind);
      throw e;
    }
  }

  private sourceOf(policy: TrustPolicy): SpecSource {
    if (this.opts.sourceFor) return this.opts.sourceFor(policy);
    const { url, caBundle } = policy.spec.trustServer;
    const key = `${url}|${caBundle ?? ''}`;
    let source = this.sources.get(key);
    if (!source) {
      source = new SpecHttpSource({ url, ...(caBundle !== undefined ? { caBundle } : {}), agent: this.agentFor(url, caBundle) });
      this.sources.set(key, source);
      if (this.sources.size > MAX_SOURCES) this.sources.delete(this.sources.keys().next().value as string);
    }
    return source;
  }

  private agentFor(url: string, caBundle: string | undefined): http.Agent {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      origin = url; // SpecHttpSource refuses it with a message naming the URL
    }
    const key = `${origin}|${caBundle ?? ''}`;
    let agent = this.agents.get(key);
    if (!agent) {
      const options = { keepAlive: true, maxSockets: 16 };
      agent = origin.startsWith('https:') ? new https.Agent(options) : new http.Agent(options);
      this.agents.set(key, agent);
      if (this.agents.size > MAX_SOURCES) {
        const oldest = this.agents.keys().next().value as string;
        this.agents.get(oldest)?.destroy();
        this.agents.delete(oldest);
      }
    }
    return agent;
  }

  private bootstrapOf(policy: TrustPolicy): { bootstrap: SpecBootstrap; id: string } {
    let b = this.bootstraps.get(policy);
    if (!b) {
      const { trustedRoot, keys, threshold } = policy.spec.root;
      const h = createHash('sha256');
      let bootstrap: SpecBootstrap;
      if (trustedRoot !== undefined) {
        bootstrap = { trustedRoot: Buffer.from(trustedRoot, 'utf8') };
        h.update('root:').update(trustedRoot);
      } else {
        const pin = pinFromPem(keys, threshold);
        bootstrap = { pin };
        h.update('keys:');
        for (const k of [...pin.keys].sort(Buffer.compare)) h.update(k);
        h.update(String(pin.threshold));
      }
      b = { bootstrap, id: h.digest('hex').slice(0, 32) };
      this.bootstraps.set(policy, b);
    }
    return b;
  }
}
