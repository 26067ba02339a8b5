// trustgate's own CPU per warm admission, without TLS, HTTP or express: the real admission
// handler (mutate) and the real engine with a warm cache answer the bench's Pod (3 images
// from 3 forged repositories with delegations) in a loop. Quick to re-run after a change;
// prints one JSON line. Options: --calls N, --profile FILE (CPU profile of the timed loop),
// --log (JSON log lines to /dev/null as `serve` writes them, to see their cost).
import { openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { silentLogger } from '../../webhook/src/admission/types.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { createJsonLogger } from '../../webhook/src/server/log.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { manifest, RepoForge, type ForgedRepo } from '../support/forge.js';
import { podReview, startProfiler } from './common.js';

const { values } = parseArgs({
  options: { calls: { type: 'string', default: '20000' }, profile: { type: 'string' }, log: { type: 'boolean', default: false } },
});

function source(repo: ForgedRepo, gun: string): MetadataSource {
  return {
    server: 'https://notary.bench.test',
    gun,
    async fetch(req: MetadataRequest): Promise<Uint8Array> {
      const bytes = req.version ? repo.roots[req.version - 1] : repo.files.get(req.role);
      if (!bytes) throw new FetchError('not-found', this.server, req.role, '404');
      return new Uint8Array(bytes);
    },
  };
}

async function main(): Promise<void> {
  const now = new Date();
  const forge = new RepoForge({ now, gun: 'bench.test/micro/*', sharedKeys: true });
  forge.addTarget('targets/releases', 'v1', manifest('micro v1'));
  const repo = forge.build();
  const policy: TrustPolicy = {
    kind: 'ClusterTrustPolicy',
    name: 'micro',
    source: 'bench',
    spec: { images: ['bench.test/micro/**'], trustServer: { url: 'https://notary.bench.test' }, root: { keys: repo.rootPems, threshold: 1 }, mode: 'enforce' },
  };
  const metrics = new Metrics();
  const engine = new VerificationEngine({
    policies: { policiesFor: () => [policy] },
    sourceFor: (_p, gun) => source(repo, gun),
    cache: new RepositoryCache(),
    metrics,
  });
  const devnull = openSync('/dev/null', 'w');
  const log = values.log ? createJsonLogger('info', (l) => void writeSync(devnull, l)) : silentLogger;
  const handler = createAdmissionHandler({ verifier: engine, mutate: true, log, metrics });
  const images: [string, string, string] = ['bench.test/micro/a:v1', 'bench.test/micro/b:v1', 'bench.test/micro/c:v1'];
  const text = podReview(images);
  const check = (out: { response: { allowed: boolean; patch?: string } }) => {
    if (!out.response.allowed || !out.response.patch) throw new Error(`not admitted and pinned: ${JSON.stringify(out.response)}`);
  };
  // Warm the cache and the JIT.
  for (let i = 0; i < 2000; i++) check(await handler(JSON.parse(text), undefined));

  const calls = Number(values.calls);
  const profiler = values.profile ? await startProfiler() : undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) check(await handler(JSON.parse(text), undefined));
  const wallUs = ((performance.now() - t0) * 1000) / calls;
  const cpu = process.cpuUsage(cpu0);
  if (profiler) await profiler.stop(values.profile!);
  // JSON.parse of the body is the HTTP layer's job; measured apart so it can be subtracted.
  const p0 = performance.now();
  for (let i = 0; i < calls; i++) JSON.parse(text);
  const parseUs = ((performance.now() - p0) * 1000) / calls;
  process.stdout.write(
    JSON.stringify({ calls, usPerAdmission: wallUs, cpuUsPerAdmission: (cpu.user + cpu.system) / calls, bodyParseUs: parseUs, log: values.log }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
