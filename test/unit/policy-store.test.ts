// PolicyStore: namespace scoping, several sources side by side, change notifications, readiness.
import { expect } from 'chai';
import { readPolicy, type InvalidPolicy, type PolicyKind, type TrustPolicy } from '../../webhook/src/policy/model.js';
import { KUBERNETES_SOURCE, PolicyStore, type StoreChange } from '../../webhook/src/policy/store.js';

function policy(kind: PolicyKind, name: string, images: string[], opts: { namespace?: string; source?: string; mode?: TrustPolicy['spec']['mode'] } = {}): TrustPolicy {
  return {
    kind,
    name,
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    source: opts.source ?? KUBERNETES_SOURCE,
    spec: { images, trustServer: { url: 'https://notary.example.com' }, root: { keys: ['k'], threshold: 1 }, mode: opts.mode ?? 'enforce' },
  };
}

const names = (ps: TrustPolicy[]) => ps.map((p) => `${p.kind}/${p.namespace ?? ''}/${p.name}`);

describe('policy store', () => {
  describe('policiesFor', () => {
    const store = new PolicyStore();
    store.replaceSource('files', [
      policy('ClusterTrustPolicy', 'hub', ['docker.io/library/**'], { source: 'files' }),
      policy('ClusterTrustPolicy', 'payments-cluster', ['registry.example.com/payments/**'], { source: 'files' }),
      policy('TrustPolicy', 'payments', ['registry.example.com/payments/**'], { namespace: 'payments', source: 'files' }),
      policy('TrustPolicy', 'nginx-in-web', ['docker.io/library/nginx:1.*'], { namespace: 'web', source: 'files' }),
    ]);

    it('returns matching cluster policies and the matching policies of the namespace only', () => {
      expect(names(store.policiesFor('registry.example.com/payments/api:1', 'payments'))).to.deep.equal([
        'ClusterTrustPolicy//payments-cluster',
        'TrustPolicy/payments/payments',
      ]);
      expect(names(store.policiesFor('registry.example.com/payments/api:1', 'web'))).to.deep.equal(['ClusterTrustPolicy//payments-cluster']);
      expect(names(store.policiesFor('docker.io/library/nginx:1.25', 'web'))).to.deep.equal(['ClusterTrustPolicy//hub', 'TrustPolicy/web/nginx-in-web']);
      expect(names(store.policiesFor('docker.io/library/nginx:2.0', 'web'))).to.deep.equal(['ClusterTrustPolicy//hub']);
    });
    it('a cluster-scoped view (no namespace) sees cluster policies only', () => {
      expect(names(store.policiesFor('registry.example.com/payments/api:1', undefined))).to.deep.equal(['ClusterTrustPolicy//payments-cluster']);
    });
    it('an image nothing matches gets no policy (the engine then denies)', () => {
      expect(store.policiesFor('registry.example.com/payments-evil/api:1', 'payments')).to.deep.equal([]);
      expect(store.policiesFor('quay.io/x/y:1', 'payments')).to.deep.equal([]);
    });
    it('a namespace named like a policy or an empty namespace does not pick up other namespaces', () => {
      expect(store.policiesFor('registry.example.com/payments/api:1', '')).to.have.length(1);
      expect(store.policiesFor('registry.example.com/payments/api:1', 'payment')).to.have.length(1);
    });
  });

  describe('invalid policies', () => {
    const object = (kind: PolicyKind, name: string, namespace: string | undefined, spec: Record<string, unknown>) =>
      readPolicy({ apiVersion: 'trustgate.dev/v1alpha1', kind, metadata: { name, ...(namespace ? { namespace } : {}) }, spec }, 'files') as InvalidPolicy;
    const badKey = (images: unknown, extra: Record<string, unknown> = {}) => ({ images, trustServer: { url: 'https://notary.example.com' }, root: { keys: ['not a key'] }, ...extra });
    const store = new PolicyStore();
    store.replaceSource('files', [
      policy('ClusterTrustPolicy', 'broad', ['registry.example.com/**'], { source: 'files' }),
      object('TrustPolicy', 'narrow', 'payments', badKey(['registry.example.com/payments/**'])),
      object('TrustPolicy', 'globs', 'web', badKey(['registry.*/x/**'])),
      object('TrustPolicy', 'nowhere', undefined, badKey(['docker.io/library/redis'])),
    ]);
    const invalidNames = (ps: InvalidPolicy[]) => ps.map((p) => `${p.kind}/${p.namespace ?? ''}/${p.name}`);

    it('are held apart from valid ones: policiesFor and all() never return them', () => {
      expect(names(store.policiesFor('registry.example.com/payments/api:1', 'payments'))).to.deep.equal(['ClusterTrustPolicy//broad']);
      expect(names(store.all())).to.deep.equal(['ClusterTrustPolicy//broad']);
      expect(invalidNames(store.invalid())).to.deep.equal(['TrustPolicy//nowhere', 'TrustPolicy/payments/narrow', 'TrustPolicy/web/globs']);
    });
    it('cover their images in their namespace, their whole namespace when the images do not parse, every namespace when theirs is unknown', () => {
      expect(invalidNames(store.invalidFor('registry.example.com/payments/api:1', 'payments'))).to.deep.equal(['TrustPolicy/payments/narrow']);
      expect(invalidNames(store.invalidFor('registry.example.com/payments/api:1', 'shop'))).to.deep.equal([]);
      expect(invalidNames(store.invalidFor('quay.io/anything:1', 'web'))).to.deep.equal(['TrustPolicy/web/globs']);
      expect(invalidNames(store.invalidFor('docker.io/library/redis:7', 'shop'))).to.deep.equal(['TrustPolicy//nowhere']);
      expect(invalidNames(store.invalidFor('docker.io/library/redis:7', undefined))).to.deep.equal(['TrustPolicy//nowhere']);
    });
    it('keep their problems, images when usable, and a mode that is enforce unless readable', () => {
      const narrow = store.invalid().find((p) => p.name === 'narrow')!;
      expect(narrow.images).to.deep.equal(['registry.example.com/payments/**']);
      expect(narrow.mode).to.equal('enforce');
      expect(narrow.problems.map((p) => p.path)).to.deep.equal(['spec.root.keys[0]']);
      expect(store.invalid().find((p) => p.name === 'globs')!.images).to.equal(undefined);
      expect(object('TrustPolicy', 'w', 'x', badKey(['registry.example.com/x/**'], { mode: 'warn' })).mode).to.equal('warn');
      expect(object('TrustPolicy', 'w', 'x', badKey(['registry.example.com/x/**'], { mode: 'off' })).mode).to.equal('enforce');
      expect(object('TrustPolicy', 'w', 'x', badKey('registry.example.com/x/**')).images, 'images not a list').to.equal(undefined);
      expect(object('TrustPolicy', 'w', 'x', badKey([])).images, 'no images').to.equal(undefined);
      // An object whose kind is unknown counts as cluster-wide.
      const unknown = readPolicy({ kind: 'Mystery', metadata: { name: 'm', namespace: 'x' }, spec: {} }, 'files');
      expect(unknown).to.deep.include({ kind: 'ClusterTrustPolicy', name: 'm' });
      expect((unknown as InvalidPolicy).namespace).to.equal(undefined);
    });
    it('an invalid version replaces the valid one of the same policy, and the fix replaces it back', () => {
      const s2 = new PolicyStore();
      s2.upsert(policy('TrustPolicy', 'p', ['registry.example.com/p/**'], { namespace: 'p' }));
      s2.upsert({ ...object('TrustPolicy', 'p', 'p', badKey(['registry.example.com/p/**'])), source: KUBERNETES_SOURCE });
      expect(s2.all()).to.deep.equal([]);
      expect(invalidNames(s2.invalidFor('registry.example.com/p/a:1', 'p'))).to.deep.equal(['TrustPolicy/p/p']);
      s2.upsert(policy('TrustPolicy', 'p', ['registry.example.com/p/**'], { namespace: 'p' }));
      expect(s2.invalid()).to.deep.equal([]);
      expect(names(s2.policiesFor('registry.example.com/p/a:1', 'p'))).to.deep.equal(['TrustPolicy/p/p']);
    });
  });

  describe('sources', () => {
    it('keeps the same policy name from two sources side by side (AND), and replacing one source leaves the other', () => {
      const store = new PolicyStore();
      store.replaceSource('a.yaml', [policy('ClusterTrustPolicy', 'p', ['registry.example.com/**'], { source: 'a.yaml' })]);
      store.replaceSource('b.yaml', [policy('ClusterTrustPolicy', 'p', ['registry.example.com/**'], { source: 'b.yaml', mode: 'warn' })]);
      expect(store.policiesFor('registry.example.com/x:1', undefined).map((p) => p.source)).to.deep.equal(['a.yaml', 'b.yaml']);
      store.replaceSource('a.yaml', []);
      expect(store.all().map((p) => p.source)).to.deep.equal(['b.yaml']);
      expect(store.sourceNames()).to.deep.equal(['b.yaml']);
    });
    it('upsert and remove act on one policy of the Kubernetes source by default', () => {
      const store = new PolicyStore();
      store.replaceSource('file.yaml', [policy('TrustPolicy', 'p', ['registry.example.com/**'], { namespace: 'ns', source: 'file.yaml' })]);
      store.upsert(policy('TrustPolicy', 'p', ['registry.example.com/**'], { namespace: 'ns' }));
      store.upsert(policy('TrustPolicy', 'p', ['registry.example.com/**'], { namespace: 'other' }));
      expect(store.all()).to.have.length(3);
      store.upsert(policy('TrustPolicy', 'p', ['registry.example.com/a/**'], { namespace: 'ns' }));
      expect(store.policiesFor('registry.example.com/b/x:1', 'ns').map((p) => p.source)).to.deep.equal(['file.yaml']);
      store.remove('TrustPolicy', 'ns', 'p');
      expect(names(store.all())).to.deep.equal(['TrustPolicy/ns/p', 'TrustPolicy/other/p']);
      expect(store.all()[0]!.source).to.equal('file.yaml');
      store.remove('TrustPolicy', 'ns', 'p', 'file.yaml');
      expect(names(store.all())).to.deep.equal(['TrustPolicy/other/p']);
    });
    it('remove ignores the namespace of a ClusterTrustPolicy and what is not there', () => {
      const store = new PolicyStore();
      store.upsert(policy('ClusterTrustPolicy', 'c', ['registry.example.com/**']));
      store.remove('ClusterTrustPolicy', 'whatever', 'nope');
      expect(store.all()).to.have.length(1);
      store.remove('ClusterTrustPolicy', 'whatever', 'c');
      expect(store.all()).to.deep.equal([]);
    });
    it('a hand-built policy with an uncompilable pattern matches nothing instead of throwing', () => {
      const store = new PolicyStore();
      store.upsert(policy('ClusterTrustPolicy', 'c', ['registry.example.com/x**', 'registry.example.com/ok/**']));
      expect(store.policiesFor('registry.example.com/x1:1', undefined)).to.deep.equal([]);
      expect(store.policiesFor('registry.example.com/ok/x:1', undefined)).to.have.length(1);
    });
  });

  describe('change notifications and readiness', () => {
    it('an answer given before a change is never given after it (upsert, remove, replaceSource)', () => {
      const store = new PolicyStore();
      const image = 'registry.example.com/team/app:1';
      expect(store.policiesFor(image, 'team')).to.deep.equal([]);
      store.upsert(policy('TrustPolicy', 'team', ['registry.example.com/team/**'], { namespace: 'team' }));
      expect(names(store.policiesFor(image, 'team'))).to.deep.equal(['TrustPolicy/team/team']);
      store.replaceSource('files', [policy('ClusterTrustPolicy', 'all', ['registry.example.com/**'], { source: 'files' })]);
      expect(names(store.policiesFor(image, 'team'))).to.deep.equal(['ClusterTrustPolicy//all', 'TrustPolicy/team/team']);
      store.remove('TrustPolicy', 'team', 'team');
      expect(names(store.policiesFor(image, 'team'))).to.deep.equal(['ClusterTrustPolicy//all']);
      store.replaceSource('files', []);
      expect(store.policiesFor(image, 'team')).to.deep.equal([]);
      // The namespace is part of the question.
      store.upsert(policy('TrustPolicy', 'team', ['registry.example.com/team/**'], { namespace: 'team' }));
      expect(store.policiesFor(image, 'other')).to.deep.equal([]);
      expect(store.policiesFor(image, undefined)).to.deep.equal([]);
    });

    it('notifies on real changes only, with the source; unsubscribes; survives a throwing listener', () => {
      const store = new PolicyStore();
      const seen: StoreChange[] = [];
      store.onChange(() => {
        throw new Error('listener bug');
      });
      const off = store.onChange((c) => seen.push(c));
      const p = policy('ClusterTrustPolicy', 'c', ['registry.example.com/**'], { source: 'f' });
      store.replaceSource('f', [p]);
      store.replaceSource('f', [{ ...p }]); // same content: no change
      store.replaceSource('g', []); // nothing to remove: no change
      store.upsert({ ...p, source: KUBERNETES_SOURCE });
      store.upsert({ ...p, source: KUBERNETES_SOURCE }); // same: no change
      store.remove('ClusterTrustPolicy', undefined, 'c');
      store.remove('ClusterTrustPolicy', undefined, 'c'); // gone already
      store.replaceSource('f', []);
      expect(seen).to.deep.equal([{ source: 'f' }, { source: KUBERNETES_SOURCE }, { source: KUBERNETES_SOURCE }, { source: 'f' }]);
      off();
      store.replaceSource('f', [p]);
      expect(seen).to.have.length(4);
    });
    it('is not ready until marked, and whenReady resolves then', async () => {
      const store = new PolicyStore();
      expect(store.ready).to.equal(false);
      let resolved = false;
      const waiting = store.whenReady().then(() => (resolved = true));
      await Promise.resolve();
      expect(resolved).to.equal(false);
      store.markReady();
      await waiting;
      expect(store.ready).to.equal(true);
      await store.whenReady();
    });
  });
});
