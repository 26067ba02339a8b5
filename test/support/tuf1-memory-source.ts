// A SpecSource over files held in memory (what TufRepo.publish returns), recording every
// request, with caps enforced as a server's reader would. For driving the real updater.
import { FetchError, type SpecFileRequest, type SpecSource } from '../../webhook/src/tufrepo/source.js';

export class MemorySpecSource implements SpecSource {
  readonly server: string = 'memory://repo/';
  readonly requests: string[] = [];

  constructor(public files: Map<string, Buffer>) {}

  async fetch(req: SpecFileRequest): Promise<Uint8Array> {
    this.requests.push(req.file);
    const bytes = this.files.get(req.file) ?? (req.fallback ? this.files.get(req.fallback) : undefined);
    if (!bytes) throw new FetchError('not-found', this.server, req.role, `no ${req.file}`);
    if (bytes.length > req.maxBytes) throw new FetchError('too-large', this.server, req.role, `more than ${req.maxBytes} bytes`);
    return bytes;
  }
}
