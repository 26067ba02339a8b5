// Where a cold verification's time goes: one repository with three delegations published
// on the real stack, then loadRepository through an HttpSource wrapped to time every fetch.
// Prints a timeline per run (fetch start/end relative to the start, and what was left
// for verification in between) and the median total.
//
//   node dist/test/bench/cold-trace.js [--runs 7]
import https from 'node:https';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import type { MetadataRequest, MetadataSource } from '../../webhook/src/notary/source.js';
import { loadRepository } from '../../webhook/src/notary/updater.js';
import { pinFromPem } from '../../webhook/src/tuf/index.js';
import { makeEcdsaCert, makeRsaCert, notaryOk, pushImage, rootPublicKeyPem, startStack } from '../support/stack.js';
import { fmt, median } from './common.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });

class TracingSource implements MetadataSource {
  readonly events: { file: string; start: number; end: number; bytes: number }[] = [];
  constructor(
    private readonly inner: MetadataSource,
    private readonly t0: number,
  ) {}
  get server(): string {
    return this.inner.server;
  }
  get gun(): string {
    return this.inner.gun;
  }
  async fetch(req: MetadataRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const start = performance.now() - this.t0;
    const bytes = await this.inner.fetch(req, signal);
    this.events.push({ file: `${req.version ? `${req.version}.` : ''}${req.role}`, start, end: performance.now() - this.t0, bytes: bytes.length });
    return bytes;
  }
}

async function main(): Promise<void> {
  const stack = await startStack();
  try {
    const repo = 'bench/trace';
    const gun = `${stack.registryHost}/${repo}`;
    const dir = mkdtempSync(join(stack.dir, 'trace-'));
    const keys = [makeEcdsaCert(dir, 'releases'), makeRsaCert(dir, 'qa'), makeEcdsaCert(dir, 'ops')];
    await notaryOk(stack, ['init', '-p', gun]);
    await notaryOk(stack, ['delegation', 'add', gun, 'targets/releases', keys[0]!.publicFile, '--all-paths']);
    await notaryOk(stack, ['delegation', 'add', gun, 'targets/qa', keys[1]!.publicFile, '--paths', 'qa/']);
    await notaryOk(stack, ['delegation', 'add', gun, 'targets/ops', keys[2]!.publicFile, '--paths', 'ops/', '-p']);
    const roles = ['targets/releases', 'targets/qa', 'targets/ops'];
    for (let i = 0; i < 3; i++) await notaryOk(stack, ['key', 'import', keys[i]!.keyFile, '--role', roles[i]!]);
    const pushed = await pushImage(stack, repo, 'v1', 'trace v1');
    // A target in every delegation, so each has a file the client must fetch and verify.
    const hash = [String(pushed.size), '--sha256', pushed.digest.slice(7)];
    await notaryOk(stack, ['addhash', gun, 'v1', ...hash, '--roles', 'targets/releases']);
    await notaryOk(stack, ['addhash', gun, 'qa/v1', ...hash, '--roles', 'targets/qa']);
    await notaryOk(stack, ['addhash', gun, 'ops/v1', ...hash, '--roles', 'targets/ops', '-p']);
    const pin = pinFromPem([await rootPublicKeyPem(stack, gun)]);

    // One pool for all runs, as the webhook has: connections are warm after the first.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 32 });
    const totals: number[] = [];
    const runs = Number(values.runs);
    for (let r = 0; r < runs + 1; r++) {
      const t0 = performance.now();
      const source = new TracingSource(new HttpSource({ url: stack.notaryUrl, gun, caBundle: stack.caPem, agent }), t0);
      const trusted = await loadRepository(source, { pin, now: new Date() });
      const total = performance.now() - t0;
      for (const role of roles) if (!trusted.parts.delegations.has(role)) throw new Error(`${role} was not verified`);
      if (r === 0) continue; // the first run opens the connections
      totals.push(total);
      if (r <= 2) {
        console.log(`run ${r}: ${fmt(total, 2)} ms`);
        let last = 0;
        for (const e of [...source.events].sort((a, b) => a.start - b.start)) {
          const gap = e.start - last;
          console.log(`  ${e.file.padEnd(18)} ${fmt(e.start, 2).padStart(6)} -> ${fmt(e.end, 2).padStart(6)} ms  (${fmt(e.end - e.start, 2)} ms, ${e.bytes} B; ${fmt(Math.max(0, gap), 2)} ms of work before it)`);
          last = Math.max(last, e.end);
        }
        console.log(`  verification after the last fetch: ${fmt(total - last, 2)} ms`);
      }
    }
    agent.destroy();
    console.log(`median of ${totals.length} cold loads (warm connections): ${fmt(median(totals), 2)} ms`);
  } finally {
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
