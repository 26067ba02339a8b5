// Leader election on a Lease and Events with series, through @kubernetes/client-node against
// a fake API server that keeps resourceVersions and answers conflicts with 409.
import { expect } from 'chai';
import { EventRecorder } from '../../webhook/src/kube/events.js';
import { LeaderElector } from '../../webhook/src/kube/lease.js';
import { FakeOperatorApi } from '../support/fake-operator-api.js';

describe('kube: leader election on a Lease', () => {
  let api: FakeOperatorApi;
  beforeEach(async () => {
    api = await FakeOperatorApi.start();
  });
  afterEach(async () => {
    await api.close();
  });

  function elector(identity: string, time: { mono: number }) {
    return new LeaderElector({ kubeConfig: api.kubeConfig(), namespace: 'trust-ops', name: 'trustgate-audit', identity, leaseDurationSeconds: 15, monotonic: () => time.mono });
  }

  it('creates the Lease, renews it with its resourceVersion, and makes the other replica wait', async () => {
    const ta = { mono: 0 };
    const tb = { mono: 0 };
    const a = elector('pod-a', ta);
    const b = elector('pod-b', tb);
    expect(await a.tryAcquireOrRenew()).to.equal('leader');
    expect(a.isLeader()).to.equal(true);
    const created = api.get('leases', 'trust-ops', 'trustgate-audit')!;
    expect(created.spec).to.include({ holderIdentity: 'pod-a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(created.spec.renewTime).to.match(/\.\d{6}Z$/);

    expect(await b.tryAcquireOrRenew()).to.equal('follower');
    ta.mono = 5000;
    expect(await a.tryAcquireOrRenew()).to.equal('leader');
    const renewed = api.get('leases', 'trust-ops', 'trustgate-audit')!;
    expect(Number(renewed.metadata.resourceVersion)).to.be.greaterThan(Number(created.metadata.resourceVersion));
    // b has seen the Lease change: its own 15 s start over.
    tb.mono = 14_000;
    expect(await b.tryAcquireOrRenew()).to.equal('follower');
    const put = api.requests.filter((r) => r.method === 'PUT');
    expect(put.every((r) => JSON.parse(r.body).metadata.resourceVersion !== undefined)).to.equal(true);
  });

  it('takes over a Lease not renewed for its duration (on its own clock), counting the transition', async () => {
    const ta = { mono: 0 };
    const tb = { mono: 0 };
    const a = elector('pod-a', ta);
    const b = elector('pod-b', tb);
    await a.tryAcquireOrRenew();
    expect(await b.tryAcquireOrRenew()).to.equal('follower');
    tb.mono = 15_001;
    expect(await b.tryAcquireOrRenew()).to.equal('leader');
    expect(api.get('leases', 'trust-ops', 'trustgate-audit')!.spec).to.include({ holderIdentity: 'pod-b', leaseTransitions: 1 });
    // a has not renewed for 10 s of its own (2/3 of the duration): it no longer acts as leader...
    ta.mono = 10_000;
    expect(a.isLeader()).to.equal(false);
    // ...and on its next round finds the Lease held by b.
    expect(await a.tryAcquireOrRenew()).to.equal('follower');
  });

  it('two replicas racing for an expired Lease: the API server lets one write win, the other gets 409', async () => {
    const ta = { mono: 0 };
    const tb = { mono: 0 };
    const tc = { mono: 0 };
    await elector('pod-a', ta).tryAcquireOrRenew();
    const b = elector('pod-b', tb);
    const c = elector('pod-c', tc);
    await b.tryAcquireOrRenew();
    await c.tryAcquireOrRenew();
    tb.mono = tc.mono = 16_000;
    const results = await Promise.all([b.tryAcquireOrRenew(), c.tryAcquireOrRenew()]);
    expect(results.filter((r) => r === 'leader')).to.have.length(1);
    const conflicts = api.requests.filter((r) => r.method === 'PUT' && r.status === 409);
    expect(conflicts).to.have.length(1);
    const holder = api.get('leases', 'trust-ops', 'trustgate-audit')!.spec.holderIdentity;
    expect(holder).to.equal(results[0] === 'leader' ? 'pod-b' : 'pod-c');
  });

  it('two replicas creating the Lease at once: one create wins, the other gets 409 AlreadyExists', async () => {
    const results = await Promise.all([elector('pod-a', { mono: 0 }).tryAcquireOrRenew(), elector('pod-b', { mono: 0 }).tryAcquireOrRenew()]);
    expect(results.filter((r) => r === 'leader')).to.have.length(1);
    expect(api.requests.filter((r) => r.method === 'POST').map((r) => r.status).sort()).to.deep.equal([201, 409]);
  });

  it('releases the Lease on stop so a successor need not wait out the duration', async () => {
    const a = elector('pod-a', { mono: 0 });
    await a.tryAcquireOrRenew();
    await a.stop();
    expect(a.isLeader()).to.equal(false);
    const lease = api.get('leases', 'trust-ops', 'trustgate-audit')!;
    expect(lease.spec.holderIdentity).to.equal(undefined);
    expect(await elector('pod-b', { mono: 0 }).tryAcquireOrRenew()).to.equal('leader');
  });
});

describe('kube: Events as series, rate-limited', () => {
  let api: FakeOperatorApi;
  beforeEach(async () => {
    api = await FakeOperatorApi.start();
  });
  afterEach(async () => {
    await api.close();
  });

  const policy = { apiVersion: 'trustgate.dev/v1alpha1', kind: 'TrustPolicy', name: 'payments', namespace: 'payments', uid: 'u-1' };

  it('records one Event per occurrence kind and patches its series count instead of creating more', async () => {
    const clock = { now: Date.parse('2026-12-03T10:00:00Z') };
    const rec = new EventRecorder({ kubeConfig: api.kubeConfig(), instance: 'pod-a', clock: () => new Date(clock.now), seriesPatchMs: 60_000 });
    const e = { regarding: policy, type: 'Warning' as const, reason: 'TrustServerUnreachable', action: 'Verify', note: 'https://notary.example.com:4443: connection refused' };
    rec.record(e);
    await rec.settled();
    for (let i = 0; i < 50; i++) {
      clock.now += 1000;
      rec.record(e);
    }
    await rec.settled();
    await rec.flush();
    const events = api.list('events', 'payments');
    expect(events).to.have.length(1);
    const ev = events[0]!;
    expect(ev).to.deep.include({ reason: 'TrustServerUnreachable', action: 'Verify', type: 'Warning', reportingController: 'trustgate.dev/trustgate', reportingInstance: 'pod-a' });
    expect(ev.regarding).to.deep.equal({ apiVersion: 'trustgate.dev/v1alpha1', kind: 'TrustPolicy', name: 'payments', namespace: 'payments', uid: 'u-1' });
    expect(ev.series.count).to.equal(51);
    expect(ev.series.lastObservedTime).to.equal(new Date(clock.now).toISOString().replace('Z', '000Z'));
    // 50 repeats over 50 s: one patch inside the window (at 60 s it was not due yet) plus the flush.
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.length).to.be.at.most(2);
    expect(patches.every((r) => r.contentType === 'application/json-patch+json')).to.equal(true);
  });

  it('puts Events of a cluster-scoped object in default, and drops what the rate limit refuses, counting it', async () => {
    const rec = new EventRecorder({ kubeConfig: api.kubeConfig(), instance: 'pod-a', burst: 3, createPerSecond: 0.001, clock: () => new Date('2026-12-03T10:00:00Z') });
    for (let i = 0; i < 10; i++) rec.record({ regarding: { apiVersion: 'trustgate.dev/v1alpha1', kind: 'ClusterTrustPolicy', name: `p${i}` }, type: 'Warning', reason: 'PolicyInvalid', action: 'Load', note: `problem ${i}` });
    await rec.settled();
    expect(api.list('events', 'default')).to.have.length(3);
    expect(rec.dropped).to.equal(7);
  });

  it('starts a new Event when the series Event is gone (TTL), and never throws on API errors', async () => {
    const clock = { now: Date.parse('2026-12-03T10:00:00Z') };
    const rec = new EventRecorder({ kubeConfig: api.kubeConfig(), instance: 'pod-a', clock: () => new Date(clock.now), seriesPatchMs: 0 });
    const e = { regarding: policy, type: 'Warning' as const, reason: 'TrustDataExpiring', action: 'Verify', note: 'targets/releases expires in 3 days' };
    api.failNext((m) => m === 'POST', 500);
    rec.record(e);
    await rec.settled();
    expect(api.list('events', 'payments')).to.have.length(0);
    clock.now += 31 * 60_000;
    rec.record(e);
    await rec.settled();
    const [first] = api.list('events', 'payments');
    api.failNext((m) => m === 'PATCH', 404);
    clock.now += 1000;
    rec.record(e);
    await rec.settled();
    clock.now += 1000;
    rec.record(e);
    await rec.settled();
    const names = api.list('events', 'payments').map((x) => x.metadata.name);
    expect(names).to.have.length(2);
    expect(names).to.include(first!.metadata.name);
  });
});

describe('kube: Events on policies', () => {
  it('a rejected policy, the same policy fixed, and a trust server that cannot be reached each become an Event on the policy', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { FakeApiServer } = await import('../support/fake-apiserver.js');
    const { KubernetesPolicySource } = await import('../../webhook/src/kube/policy-source.js');
    const { PolicyStates } = await import('../../webhook/src/policy/policy-states.js');
    const { PolicyStore } = await import('../../webhook/src/policy/store.js');
    const { recordPolicyTransition, withTrustServerEvents } = await import('../../webhook/src/kube/policy-events.js');
    const { VerificationEngine } = await import('../../webhook/src/verify/engine.js');
    const { ForgedSource } = await import('../support/forged-source.js');
    const { RepoForge, GUN } = await import('../support/forge.js');

    const crds = await FakeApiServer.start();
    const objects = await FakeOperatorApi.start();
    const now = new Date('2031-06-01T12:00:00Z');
    const forge = new RepoForge({ now });
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const spec = (keys: string[]) => ({ images: [GUN], trustServer: { url: 'https://notary.test:4443' }, root: { keys, threshold: 1 } });
    const store = new PolicyStore();
    const states = new PolicyStates();
    const events = new EventRecorder({ kubeConfig: objects.kubeConfig(), instance: 'pod-a', clock: () => now });
    states.onTransition((t) => recordPolicyTransition(events, t));
    const source = new KubernetesPolicySource({ kubeConfig: crds.kubeConfig(), store, statusWriter: states });
    try {
      crds.create('trustpolicies', { metadata: { name: 'app', namespace: 'team' }, spec: { ...spec([pem]), root: { keys: ['not a key'], threshold: 1 } } });
      void source.start();
      const until = async (cond: () => boolean, what: string) => {
        for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
        expect(cond(), what).to.equal(true);
      };
      await until(() => objects.list('events', 'team').length === 1, 'PolicyInvalid recorded');
      crds.update('trustpolicies', { metadata: { name: 'app', namespace: 'team' }, spec: spec(forge.build().rootPems) });
      await until(() => objects.list('events', 'team').length === 2, 'PolicyValid recorded');
      await events.settled();
      const byReason = new Map(objects.list('events', 'team').map((e) => [e.reason, e]));
      expect(byReason.get('PolicyInvalid')).to.deep.include({ type: 'Warning', action: 'Load' });
      expect(byReason.get('PolicyInvalid')!.note).to.contain('spec.root.keys[0]');
      expect(byReason.get('PolicyInvalid')!.regarding).to.include({ apiVersion: 'trustgate.dev/v1alpha1', kind: 'TrustPolicy', name: 'app', namespace: 'team' });
      expect(byReason.get('PolicyValid')).to.deep.include({ type: 'Normal', action: 'Load' });

      const down = new ForgedSource(forge.build());
      down.behaviour = 'down';
      const engine = withTrustServerEvents(new VerificationEngine({ policies: store, sourceFor: () => down, clock: () => now }), events);
      for (let i = 0; i < 5; i++) {
        const v = await engine.verifyImage(`${GUN}:v2.0`, 'team', AbortSignal.timeout(5000));
        expect(v.allowed).to.equal(false);
      }
      await events.settled();
      const unreachable = objects.list('events', 'team').filter((e) => e.reason === 'TrustServerUnreachable');
      expect(unreachable).to.have.length(1);
      expect(unreachable[0]!.note).to.match(/^https:\/\/notary\.test:4443: /);
      await events.flush();
      expect(objects.get('events', 'team', unreachable[0]!.metadata.name)!.series.count).to.equal(5);
    } finally {
      source.stop();
      await crds.close();
      await objects.close();
    }
  });
});
