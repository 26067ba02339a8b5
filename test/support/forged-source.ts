/**
 * A MetadataSource over a forged repository, for engine tests that need to steer what the
 * "server" does (switch content, go down, stall) and count what is fetched. The bytes are
 * real signed metadata from the forge; only the transport is simulated.
 */
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import type { ForgedRepo } from './forge.js';

export type Behaviour = 'serve' | 'down' | 'stall';

export class ForgedSource implements MetadataSource {
  readonly fetches = new Map<string, number>();
  behaviour: Behaviour = 'serve';

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
    if (bytes.length > req.maxBytes) throw new FetchError('too-large', this.server, req.role, `more than ${req.maxBytes} bytes`);
    return bytes;
  }
}
