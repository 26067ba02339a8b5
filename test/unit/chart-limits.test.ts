// The chart's limits on loading trust data (server.trustServerLimits), rendered by real Helm 3
// and 4 and read back by trustgate's own settings parser: namespaced (tenant) servers get
// lower limits than cluster ones by default, overrides arrive as given, the schema refuses
// what the binary would.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { loadLimitsOf, parseServeArgs } from '../../webhook/src/cli/settings.js';
import { CHART, HelmError, helms, ofKind, template, type Obj } from '../support/helm.js';

const HELMS = await helms();
const MiB = 1024 * 1024;
const defaults = YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Obj;

function serveArgs(docs: ReturnType<typeof template>): string[] {
  const [dep] = ofKind(docs, 'Deployment');
  return (dep!.spec.template.spec.containers[0].args as string[]).slice(1);
}

for (const h of HELMS) {
  describe(`chart trust-server limits with ${h.name} (${h.version})`, function () {
    this.timeout(60_000);

    it('passes the limits to the binary, namespaced lower than cluster by default', () => {
      const limits = loadLimitsOf(parseServeArgs(serveArgs(template(h)), { POD_NAMESPACE: 'trust-ops' }));
      const { cluster, namespaced } = limits;
      expect(namespaced.maxMetadataBytes).to.be.below(cluster.maxMetadataBytes);
      expect(namespaced.maxBytesInFlight).to.be.below(cluster.maxBytesInFlight);
      expect(namespaced.maxConcurrentLoads).to.be.below(cluster.maxConcurrentLoads);
      const v = (defaults.server as Obj).trustServerLimits as Obj;
      expect(limits).to.deep.equal({
        workers: v.workers,
        workerMemoryMb: v.workerMemoryMb,
        maxTotalBytesInFlight: v.totalMiBInFlight * MiB,
        cluster: { maxConcurrentLoads: v.cluster.maxLoads, maxBytesInFlight: v.cluster.maxMiBInFlight * MiB, maxMetadataBytes: v.cluster.maxMetadataMiB * MiB },
        namespaced: { maxConcurrentLoads: v.namespaced.maxLoads, maxBytesInFlight: v.namespaced.maxMiBInFlight * MiB, maxMetadataBytes: v.namespaced.maxMetadataMiB * MiB },
      });
    });

    it('passes overrides as given', () => {
      const parsed = loadLimitsOf(parseServeArgs(serveArgs(template(h, { server: { trustServerLimits: { workerMemoryMb: 96, namespaced: { maxMetadataMiB: 2 } } } })), { POD_NAMESPACE: 'trust-ops' }));
      const v = (defaults.server as Obj).trustServerLimits as Obj;
      expect(parsed.workerMemoryMb).to.equal(96);
      expect(parsed.namespaced).to.deep.equal({ maxConcurrentLoads: v.namespaced.maxLoads, maxBytesInFlight: v.namespaced.maxMiBInFlight * MiB, maxMetadataBytes: 2 * MiB });
    });

    it('refuses a metadata cap above the 64 MiB the verifier allows', () => {
      let err: unknown;
      try {
        template(h, { server: { trustServerLimits: { namespaced: { maxMetadataMiB: 65 } } } });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(HelmError);
      expect((err as Error).message).to.match(/maxMetadataMiB/);
    });
  });
}
