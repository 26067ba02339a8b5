// trustgate_denials_total{webhook,cause}: a denial is counted under the layer that caused it,
// through the real admission handler and verification engine, so an operator can tell a trust
// server outage (transport) from stale trust data, an unsigned image or a bad reference.
import { expect } from 'chai';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { FetchError, type MetadataRequest, type MetadataSource } from '../../webhook/src/notary/source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { manifest, RepoForge, type ForgedRepo } from '../support/forge.js';
import { podReview } from '../bench/common.js';

const SERVER = 'https://notary.causes.test';

function served(repo: ForgedRepo): MetadataSource {
  return {
    server: SERVER,
    gun: 'causes.test/team/app',
    async fetch(req: MetadataRequest): Promise<Uint8Array> {
      const bytes = req.version ? repo.roots[req.version - 1] : repo.files.get(req.role);
      if (!bytes) throw new FetchError('not-found', SERVER, req.role, '404');
      return new Uint8Array(bytes);
    },
  };
}

const down: MetadataSource = {
  server: SERVER,
  gun: 'causes.test/team/app',
  async fetch(req: MetadataRequest): Promise<Uint8Array> {
    throw new FetchError('unreachable', SERVER, req.role, 'connect ECONNREFUSED 127.0.0.1:4443');
  },
};

function denials(m: Metrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of m.render().split('\n')) {
    const hit = /^trustgate_denials_total\{webhook="mutate",cause="([a-z-]+)"\} (\d+)$/.exec(line);
    if (hit) out[hit[1]!] = Number(hit[2]);
  }
  return out;
}

describe('denials by cause (trustgate_denials_total)', () => {
  const now = new Date();
  const forge = new RepoForge({ now, gun: 'causes.test/team/app', sharedKeys: true });
  forge.addTarget('targets/releases', 'v1', manifest('causes v1'));
  const fresh = forge.build();
  const policy: TrustPolicy = {
    kind: 'ClusterTrustPolicy',
    name: 'causes',
    source: 'test',
    spec: { images: ['causes.test/team/**'], trustServer: { url: SERVER }, root: { keys: fresh.rootPems, threshold: 1 }, mode: 'enforce' },
  };

  async function admit(source: MetadataSource, image: string, clock?: () => Date): Promise<Metrics> {
    const metrics = new Metrics();
    const engine = new VerificationEngine({ policies: { policiesFor: (ref) => (ref.startsWith('causes.test/team/') ? [policy] : []) }, sourceFor: () => source, metrics, workers: false, ...(clock ? { clock } : {}) });
    const handler = createAdmissionHandler({ verifier: engine, mutate: true, metrics });
    const out = await handler(JSON.parse(podReview([image, image, image])));
    expect(out.response.allowed, JSON.stringify(out.response.status)).to.equal(image === 'causes.test/team/app:v1' && source !== down && !clock);
    await engine.close();
    return metrics;
  }

  it('counts nothing for an admitted Pod', async () => {
    expect(denials(await admit(served(fresh), 'causes.test/team/app:v1'))).to.deep.equal({});
  });

  it('counts an unreachable trust server as transport', async () => {
    expect(denials(await admit(down, 'causes.test/team/app:v1'))).to.deep.equal({ transport: 1 });
  });

  it('counts an unsigned tag and an image no policy covers as policy', async () => {
    expect(denials(await admit(served(fresh), 'causes.test/team/app:v2'))).to.deep.equal({ policy: 1 });
    expect(denials(await admit(served(fresh), 'elsewhere.test/app:v1'))).to.deep.equal({ policy: 1 });
  });

  it('counts expired trust data as trust-data', async () => {
    // The same repository read a month later: its timestamp (two weeks) has expired.
    const later = new Date(now.getTime() + 30 * 24 * 3600 * 1000);
    expect(denials(await admit(served(fresh), 'causes.test/team/app:v1', () => later))).to.deep.equal({ 'trust-data': 1 });
  });

  it('counts a reference that cannot be verified as reference', async () => {
    expect(denials(await admit(served(fresh), 'causes.test/team/app:v1@sha256:xyz'))).to.deep.equal({ reference: 1 });
  });
});
