/**
 * A MetadataSource over a forged repository (python-tuf's RepositorySimulator, for us): the
 * TUF suites and the engine tests drive the real updater through it. The bytes are real
 * signed metadata from the forge; only the transport is simulated, and tests can steer it
 * (switch content, go down, stall) and count what is fetched.
 */
import { loadRepository } from '../../webhook/src/notary/updater.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import {
  TufError,
  type DelegatedRole,
  type RootPin,
  type TrustedRepository,
  type VerifiedDelegation,
  type VerifiedRoot,
  type VersionFloor,
} from '../../webhook/src/tuf/index.js';
import type { ForgedRepo } from './forge.js';

export type Behaviour = 'serve' | 'down' | 'stall';

export class ForgedSource implements MetadataSource {
  readonly fetches = new Map<string, number>();
  /** Every request in the order made: `3.root`, `timestamp`, `snapshot#hash`, ... */
  readonly requests: string[] = [];
  behaviour: Behaviour = 'serve';
  /**
   * Stop at `maxBytes` as every real source does. Off, the whole file is handed over, as a
   * source that failed to stop would: tuf/'s own caps are then what must hold.
   */
  honoursMaxBytes = true;

  constructor(
    public repo: ForgedRepo,
    readonly server = 'https://notary.test:4443',
  ) {}

  get gun(): string {
    return this.repo.gun;
  }

  total(): number {
    return [...this.fetches.values()].reduce((a, b) => a + b, 0);
  }

  async fetch(req: MetadataRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const name = req.version ? `${req.version}.${req.role}` : req.role;
    this.fetches.set(name, (this.fetches.get(name) ?? 0) + 1);
    this.requests.push(req.sha256Hex ? `${name}#hash` : name);
    // Let concurrent callers pile up, as they would on a real network.
    await new Promise((r) => setImmediate(r));
    if (this.behaviour === 'down') throw new FetchError('unreachable', this.server, req.role, 'connection refused');
    if (this.behaviour === 'stall') {
      return new Promise((_, reject) => {
        signal?.addEventListener('abort', () => reject(new FetchError('timeout', this.server, req.role, 'deadline reached')), { once: true });
      });
    }
    const bytes = req.version ? this.repo.roots[req.version - 1] : this.repo.files.get(req.role);
    if (!bytes) throw new FetchError('not-found', this.server, req.role, '404');
    if (this.honoursMaxBytes && bytes.length > req.maxBytes) throw new FetchError('too-large', this.server, req.role, `more than ${req.maxBytes} bytes`);
    return bytes;
  }
}

export interface UpdateOptions {
  pin: RootPin;
  /** Default: the forge's clock. */
  now?: Date;
  floor?: VersionFloor;
  /** What an earlier update trusted (a warm refresh). */
  previous?: TrustedRepository;
  /** Serve these bytes for these roles instead of the forged ones (role -> bytes). */
  serve?: Map<string, Buffer>;
  maxDelegations?: number;
  maxRootVersions?: number;
}

export interface Updated {
  repo: TrustedRepository;
  root: VerifiedRoot;
  /** Delegations the walk reached, in pre-order, with what came of each. */
  visited: [string, VerifiedDelegation | TufError][];
  source: ForgedSource;
}

/**
 * One run of the real updater (notary/updater.ts) against a forged repository. The source
 * does not stop at the byte caps, so that the attack suites test tuf/'s own caps.
 */
export async function update(r: ForgedRepo, opts: UpdateOptions): Promise<Updated> {
  const served: ForgedRepo = opts.serve ? { ...r, files: new Map([...r.files, ...opts.serve]) } : r;
  const source = new ForgedSource(served);
  source.honoursMaxBytes = false;
  const repo = await loadRepository(source, {
    pin: opts.pin,
    now: opts.now ?? r.now,
    ...(opts.floor && { floor: opts.floor }),
    ...(opts.previous && { previous: opts.previous }),
    ...(opts.maxDelegations !== undefined && { maxDelegations: opts.maxDelegations }),
    ...(opts.maxRootVersions !== undefined && { maxRootVersions: opts.maxRootVersions }),
  });
  return { repo, root: repo.parts.root, visited: visitedOf(repo), source };
}

/**
 * The delegations a repository's walk reached, in pre-order, read off its result: verified
 * roles with their subtrees, skipped roles with the reason. Checks that the updater trusted
 * every delegation after its parent.
 */
export function visitedOf(repo: TrustedRepository): [string, VerifiedDelegation | TufError][] {
  const { delegations, skipped, targets } = repo.parts;
  const out: [string, VerifiedDelegation | TufError][] = [];
  const visit = (roles: DelegatedRole[]) => {
    for (const role of roles) {
      const outcome = delegations.get(role.name) ?? skipped.get(role.name);
      if (!outcome) continue;
      out.push([role.name, outcome]);
      if (!(outcome instanceof TufError)) visit(outcome.meta.delegations);
    }
  };
  visit(targets.meta.delegations);
  const order = [...delegations.keys()];
  for (const [name, d] of delegations) {
    if (d.parent !== 'targets' && !(order.indexOf(d.parent) < order.indexOf(name))) {
      throw new Error(`updater trusted ${name} before its parent ${d.parent}`);
    }
  }
  return out;
}
