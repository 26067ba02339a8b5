// `trustgate serve --kubernetes --audit-interval` as a process, against the fake API servers
// through its kubeconfig: it takes the audit Lease as POD_NAME, records an Event for a
// rejected policy, and gives the Lease up when stopped.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { spawnWebhook, type WebhookProcess } from '../support/e2e-webhook.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { FakeOperatorApi } from '../support/fake-operator-api.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond(), what).to.equal(true);
}

describe('serve in the cluster: Lease and Events', () => {
  it('holds the audit Lease, records PolicyInvalid, and releases the Lease on SIGTERM', async () => {
    const crds = await FakeApiServer.start();
    const api = await FakeOperatorApi.start({ fallback: crds.url });
    const work = mkdtempSync(join(tmpdir(), 'tg-serve-ops-'));
    let webhook: WebhookProcess | undefined;
    try {
      crds.create('trustpolicies', { metadata: { name: 'broken', namespace: 'team' }, spec: { images: ['registry.example.com/**'], trustServer: { url: 'https://notary.example.com' }, root: { keys: ['not a key'], threshold: 1 } } });
      const kubeconfig = join(work, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'fake', cluster: { server: api.url, 'insecure-skip-tls-verify': true } }],
          users: [{ name: 'tester', user: { token: crds.token } }],
          contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'tester' } }],
          'current-context': 'fake',
        }),
      );
      webhook = await spawnWebhook(['--kubernetes', '--port', '0', '--host', '127.0.0.1', '--audit-interval', '3600'], {
        KUBECONFIG: kubeconfig,
        POD_NAMESPACE: 'trust-ops',
        POD_NAME: 'trustgate-0',
        TRUSTGATE_AUDIT_LEASE: 'tg-audit',
        TRUSTGATE_STATE_CONFIGMAP: '',
      });
      await until(() => api.get("leases", "trust-ops", "tg-audit")?.spec?.holderIdentity === "trustgate-0", "the Lease is held by POD_NAME");
      await until(() => api.list('events', 'team').some((e) => e.reason === 'PolicyInvalid'), 'a PolicyInvalid Event');
      const ev = api.list('events', 'team').find((e) => e.reason === 'PolicyInvalid')!;
      expect(ev).to.deep.include({ reportingInstance: 'trustgate-0', type: 'Warning' });
      expect(ev.regarding).to.include({ kind: 'TrustPolicy', name: 'broken', namespace: 'team' });
      await webhook.stop();
      expect(api.get("leases", "trust-ops", "tg-audit")!.spec.holderIdentity).to.equal(undefined);
    } finally {
      await webhook?.stop();
      await api.close();
      await crds.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
