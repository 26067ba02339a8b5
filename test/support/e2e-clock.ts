// `trustgate serve` wired like the real command, except that the verification engine reads
// a clock running ahead of real time. A real notary-server re-signs its timestamp whenever
// it has expired, so this is the only way to watch a real server's timestamp go stale.
import type { ServeDeps } from '../../webhook/src/cli/serve.js';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import { PolicyDirSource } from '../../webhook/src/policy/dir-source.js';
import { PolicyStore } from '../../webhook/src/policy/store.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';

export function clockAheadVerifier(aheadMs: number): ServeDeps['createVerifier'] {
  return async (options, ctx) => {
    if (options.policyDir === undefined) throw new Error('clockAheadVerifier serves --policy-dir only');
    const store = new PolicyStore();
    const source = new PolicyDirSource(options.policyDir, store, () => undefined);
    await source.start();
    const engine = new VerificationEngine({
      policies: store,
      sourceFor: (p, gun) =>
        new HttpSource({ url: p.spec.trustServer.url, gun, ...(p.spec.trustServer.caBundle ? { caBundle: p.spec.trustServer.caBundle } : {}) }),
      clock: () => new Date(Date.now() + aheadMs),
      metrics: ctx.metrics,
    });
    return { verifier: engine, ready: () => store.ready, close: () => source.stop() };
  };
}
