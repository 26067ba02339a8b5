// trustgate_policies{kind,state} from what the real Kubernetes policy source reports, through
// @kubernetes/client-node against the fake API server: valid, rejected, fixed, deleted.
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { KubernetesPolicySource } from '../../webhook/src/kube/policy-source.js';
import { PolicyStates, type PolicyTransition } from '../../webhook/src/policy/policy-states.js';
import { PolicyStore } from '../../webhook/src/policy/store.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { FakeApiServer } from '../support/fake-apiserver.js';

const KEY_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
const good = { images: ['registry.example.com/**'], trustServer: { url: 'https://notary.example.com:4443' }, root: { keys: [KEY_PEM], threshold: 1 } };
const broken = { ...good, root: { keys: ['not a key'], threshold: 1 } };

function gauge(m: Metrics, kind: string, state: string): number {
  const line = m.render().split('\n').find((l) => l.startsWith(`trustgate_policies{kind="${kind}",state="${state}"} `));
  return Number(line?.split(' ')[1]);
}

/** Resolves once `cond()` holds, checked every few milliseconds; bounded. */
async function settles(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('operators: policy states as metrics', () => {
  let api: FakeApiServer;
  let source: KubernetesPolicySource;
  after(async () => {
    source?.stop();
    await api?.close();
  });

  it('counts valid and invalid policies by kind, follows fixes and deletions, and reports each transition once', async () => {
    api = await FakeApiServer.start();
    api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: good });
    api.create('trustpolicies', { metadata: { name: 'bad', namespace: 'payments' }, spec: broken });
    const states = new PolicyStates();
    const transitions: PolicyTransition[] = [];
    states.onTransition((t) => transitions.push(t));
    const metrics = new Metrics();
    metrics.countPolicies(() => states.counts());
    const store = new PolicyStore();
    source = new KubernetesPolicySource({ kubeConfig: api.kubeConfig(), store, statusWriter: states });
    void source.start();
    await settles(() => gauge(metrics, 'TrustPolicy', 'invalid') === 1 && gauge(metrics, 'ClusterTrustPolicy', 'valid') === 1, 'first list counted');
    expect(gauge(metrics, 'TrustPolicy', 'valid')).to.equal(0);
    expect(gauge(metrics, 'ClusterTrustPolicy', 'invalid')).to.equal(0);

    api.update('trustpolicies', { metadata: { name: 'bad', namespace: 'payments' }, spec: good });
    await settles(() => gauge(metrics, 'TrustPolicy', 'valid') === 1, 'fixed policy counted valid');
    expect(gauge(metrics, 'TrustPolicy', 'invalid')).to.equal(0);

    api.delete('trustpolicies', 'bad', 'payments');
    await settles(() => gauge(metrics, 'TrustPolicy', 'valid') === 0, 'deleted policy no longer counted');
    expect(transitions.map((t) => `${t.object.kind}/${t.object.name} ${t.from ?? 'new'}->${t.to}`).sort()).to.deep.equal([
      'ClusterTrustPolicy/base new->valid',
      'TrustPolicy/bad invalid->valid',
      'TrustPolicy/bad new->invalid',
    ]);
  });
});
