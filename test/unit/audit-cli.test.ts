// `trustgate audit` once against a cluster: policies (list/watch) and Pods through
// @kubernetes/client-node from the fake API servers, trust data forged fresh for this run.
import { expect } from 'chai';
import { auditCommand } from '../../webhook/src/cli/audit.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { FakeOperatorApi } from '../support/fake-operator-api.js';
import { manifest, RepoForge, sha256hex } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';

const GUN = 'localhost:5000/demo/app';
const V2 = 'sha256:' + sha256hex(manifest('v2.0'));

describe('cli: trustgate audit', () => {
  let crds: FakeApiServer;
  let api: FakeOperatorApi;
  let source: ForgedSource;

  before(async () => {
    crds = await FakeApiServer.start();
    api = await FakeOperatorApi.start({ fallback: crds.url });
    const forge = new RepoForge({ now: new Date(), gun: GUN });
    source = new ForgedSource(forge.build());
    crds.create('clustertrustpolicies', { metadata: { name: 'demo' }, spec: { images: [GUN], trustServer: { url: 'https://notary.test:4443' }, root: { keys: forge.build().rootPems, threshold: 1 } } });
    api.addPod({ name: 'web', namespace: 'shop', containers: [{ name: 'app', image: `${GUN}:v2.0@${V2}` }] });
    api.addPod({ name: 'legacy', namespace: 'shop', containers: [{ name: 'app', image: `${GUN}:v1.0@sha256:${'ab'.repeat(32)}` }] });
    api.addPod({ name: 'tools', namespace: 'ops', containers: [{ name: 'sh', image: 'busybox:1.36' }] });
  });
  after(async () => {
    await api.close();
    await crds.close();
  });

  // The fake's token is not the one in the combined kubeconfig: authenticate as the CRD fake expects.
  function kubeConfig() {
    const kc = api.kubeConfig();
    kc.users[0] = { name: 'tester', token: crds.token } as (typeof kc.users)[0];
    return kc;
  }

  it('prints a table of what would be denied now and exits 1', async () => {
    let out = '';
    const code = await auditCommand([], {}, { kubeConfig: kubeConfig(), sourceFor: () => source, out: (t) => (out += t) });
    expect(code).to.equal(1);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).to.match(/^NAMESPACE\s+POD\s+IMAGE\s+RESULT\s+WHY$/);
    expect(lines.find((l) => l.startsWith('ops '))).to.match(/tools\s+busybox:1\.36\s+FAIL\s+no TrustPolicy or ClusterTrustPolicy matches docker\.io\/library\/busybox:1\.36/);
    expect(lines.find((l) => l.includes('legacy'))).to.match(/FAIL\s+ClusterTrustPolicy demo/);
    expect(out).to.not.match(/\bweb\b.*FAIL/);
    expect(lines.at(-1)).to.equal('3 running Pods, 3 images checked: 2 would be denied now, 0 at risk.');
  });

  it('prints the same as JSON, limited to one namespace', async () => {
    let out = '';
    const code = await auditCommand(['--output', 'json', '--namespace', 'shop', '--expiry-warning', '0'], {}, { kubeConfig: kubeConfig(), sourceFor: () => source, out: (t) => (out += t) });
    const report = JSON.parse(out) as { pods: number; findings: { pod: string; result: string }[]; passed: Record<string, number> };
    expect(report.pods).to.equal(2);
    expect(report.findings.map((f) => `${f.pod} ${f.result}`)).to.deep.equal(['legacy fail']);
    expect(report.passed).to.deep.equal({ shop: 1 });
    expect(code).to.equal(1);
  });

  it('says why when the cluster cannot be read, and exits 2', async () => {
    const kc = kubeConfig();
    kc.users[0] = { name: 'tester', token: 'wrong' } as (typeof kc.users)[0];
    let err = '';
    const code = await auditCommand(['--timeout', '1'], {}, { kubeConfig: kc, sourceFor: () => source, out: () => {}, err: (t) => (err += t) });
    expect(code).to.equal(2);
    expect(err).to.match(/^trustgate: the policies could not be read from http:\/\/127\.0\.0\.1:\d+ within 1s/);
  });
});
