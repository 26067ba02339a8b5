// The audit of running Pods: the real engine over forged trust data, Pods, PolicyReports and
// Events through @kubernetes/client-node against the fake API server.
import { expect } from 'chai';
import { auditPods } from '../../webhook/src/audit/audit.js';
import { AuditLoop } from '../../webhook/src/kube/audit-loop.js';
import { EventRecorder } from '../../webhook/src/kube/events.js';
import { listRunningPods } from '../../webhook/src/kube/pods.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { captureLogger } from '../fixtures/admission/support.js';
import { DAY, manifest, RepoForge, sha256hex } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';
import { FakeOperatorApi } from '../support/fake-operator-api.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const SERVER = 'https://notary.test:4443';
const A = 'localhost:5000/demo/a';
const B = 'localhost:5000/demo/b';
const V2 = 'sha256:' + sha256hex(manifest('v2.0'));
const OTHER = 'sha256:' + 'ee'.repeat(32);

function policy(name: string, gun: string, rootPems: string[]): TrustPolicy {
  return { kind: 'ClusterTrustPolicy', name, source: 'test', spec: { images: [gun], trustServer: { url: SERVER }, root: { keys: rootPems, threshold: 1 }, mode: 'enforce' } };
}

describe('audit of running Pods', () => {
  let api: FakeOperatorApi;
  let engine: VerificationEngine;
  let sources: Map<string, ForgedSource>;

  before(() => {
    const a = new RepoForge({ now: NOW, gun: A });
    const b = new RepoForge({ now: NOW, gun: B });
    // B's timestamp is re-signed every 14 days; this one lapses in 3, inside a 7-day window.
    b.expire('timestamp', 3 * DAY);
    sources = new Map([
      [A, new ForgedSource(a.build())],
      [B, new ForgedSource(b.build())],
    ]);
    const policies = [policy('demo-a', A, a.build().rootPems), policy('demo-b', B, b.build().rootPems)];
    engine = new VerificationEngine({
      policies: { policiesFor: (ref) => policies.filter((p) => ref.startsWith(`${p.spec.images[0]}:`) || ref.startsWith(`${p.spec.images[0]}@`)) },
      sourceFor: (_p, gun) => sources.get(gun)!,
      clock: () => NOW,
      cache: new RepositoryCache({ clock: () => NOW }),
    });
  });

  beforeEach(async () => {
    api = await FakeOperatorApi.start();
    api.policyReportsInstalled = true;
    api.addPod({ name: 'ok', namespace: 'team-a', containers: [{ name: 'app', image: `${A}:v2.0@${V2}` }] });
    api.addPod({ name: 'resigned-away', namespace: 'team-a', containers: [{ name: 'app', image: `${A}:v2.0@${OTHER}` }] });
    api.addPod({ name: 'expiring', namespace: 'team-b', containers: [{ name: 'app', image: `${B}:v2.0@${V2}` }] });
    api.addPod({ name: 'stray', namespace: 'team-c', containers: [{ name: 'app', image: 'registry.example.com/stray:1' }] });
    api.addPod({ name: 'done', namespace: 'team-c', containers: [{ name: 'app', image: 'registry.example.com/stray:1' }], phase: 'Succeeded' });
  });
  afterEach(async () => {
    await api.close();
  });

  it('finds what would be denied now and what expires within the window, verifying each image once, paced', async () => {
    const pods = await listRunningPods(api.kubeConfig());
    expect(pods.map((p) => p.metadata?.name).sort()).to.deep.equal(['expiring', 'ok', 'resigned-away', 'stray']);
    const timestampsBefore = [...sources.values()].map((s) => s.fetches.get('timestamp') ?? 0);
    const sleeps: number[] = [];
    const report = await auditPods([...pods, ...pods], { verifier: engine, clock: () => NOW, expiryWarningMs: 7 * DAY, fetchesPerSecond: 4, sleep: async (ms) => void sleeps.push(ms) });
    expect(report.pods).to.equal(8);
    expect(report.images).to.equal(4);
    const byPod = (name: string) => report.findings.filter((f) => f.pod === name);
    expect(byPod('ok')).to.deep.equal([]);
    expect(byPod('resigned-away')[0]).to.include({ result: 'fail', code: 'digest-mismatch', policy: 'ClusterTrustPolicy/demo-a' });
    expect(byPod('expiring')[0]).to.include({ result: 'warn', code: 'expiring', policy: 'ClusterTrustPolicy/demo-b' });
    expect(byPod('expiring')[0]!.message).to.match(/^timestamp expires in 3 days/);
    expect(byPod('stray')[0]).to.include({ result: 'fail', code: 'no-policy' });
    expect(report.passed).to.deep.equal({ 'team-a': 2 });
    // Images the cache could not answer waited their turn: a quarter second apart.
    expect(sleeps.every((ms) => ms === 250)).to.equal(true);
    expect(sleeps.length).to.be.greaterThan(0).and.lessThan(4);
    // Each repository was loaded once (one timestamp fetch), however many Pods run it.
    expect([...sources.values()].map((s, i) => (s.fetches.get('timestamp') ?? 0) - timestampsBefore[i]!)).to.deep.equal([1, 1]);
  });

  it('the loop publishes PolicyReports per namespace, Events on the Pods, metrics and log lines, and clears a report once fixed', async () => {
    const metrics = new Metrics();
    const log = captureLogger();
    const events = new EventRecorder({ kubeConfig: api.kubeConfig(), instance: 'pod-a', clock: () => NOW });
    let gone = new Set<string>();
    const listPods = async () => (await listRunningPods(api.kubeConfig())).filter((p) => !gone.has(p.metadata?.name ?? ''));
    const loop = new AuditLoop({ kubeConfig: api.kubeConfig(), verifier: engine, intervalMs: 3600_000, expiryWarningMs: 7 * DAY, isLeader: () => true, metrics, events, log, clock: () => NOW, fetchesPerSecond: 1000, listPods });
    await loop.runOnce();
    await events.settled();

    const reports = api.list('policyreports');
    expect(reports.map((r) => r.metadata.namespace).sort()).to.deep.equal(['team-a', 'team-b', 'team-c']);
    const a = api.get('policyreports', 'team-a', 'trustgate-audit')!;
    expect(a.summary).to.deep.equal({ pass: 1, fail: 1, warn: 0, error: 0, skip: 0 });
    expect(a.results[0]).to.deep.include({ source: 'trustgate', policy: 'ClusterTrustPolicy/demo-a', result: 'fail', rule: 'digest-mismatch' });
    expect(a.results[0].resources[0]).to.include({ kind: 'Pod', name: 'resigned-away', namespace: 'team-a' });

    const evs = api.list('events');
    const podEvents = evs.filter((e) => e.regarding.kind === 'Pod');
    expect(podEvents.map((e) => `${e.regarding.namespace}/${e.regarding.name} ${e.reason}`).sort()).to.deep.equal([
      'team-a/resigned-away WouldBeDenied',
      'team-b/expiring TrustDataExpiring',
      'team-c/stray WouldBeDenied',
    ]);
    expect(podEvents.every((e) => e.action === 'Audit' && e.type === 'Warning' && typeof e.regarding.uid === 'string')).to.equal(true);
    // The policy whose trust data runs out hears of it too (cluster-scoped: its Events live in default).
    const policyEvents = evs.filter((e) => e.regarding.kind !== 'Pod');
    expect(policyEvents.map((e) => `${e.metadata.namespace} ${e.regarding.kind}/${e.regarding.name} ${e.reason}`)).to.deep.equal(['default ClusterTrustPolicy/demo-b TrustDataExpiring']);
    expect(policyEvents[0]!.note).to.match(/^timestamp expires in 3 days/);

    const text = metrics.render();
    expect(text).to.contain('trustgate_audit_findings{namespace="team-a",result="fail"} 1');
    expect(text).to.contain('trustgate_audit_findings{namespace="team-b",result="warn"} 1');
    expect(text).to.contain('trustgate_audit_pods 4');
    expect(log.lines.filter((l) => l.msg === 'audit finding' && l.level === 'warn')).to.have.length(3);

    // The stray Pod goes away and the bad one is replaced: team-c's report is deleted, team-a's shows no failure.
    gone = new Set(['stray', 'resigned-away']);
    await loop.runOnce();
    expect(api.get('policyreports', 'team-c', 'trustgate-audit')).to.equal(undefined);
    expect(api.get('policyreports', 'team-a', 'trustgate-audit')!.summary).to.include({ pass: 1, fail: 0 });
    const puts = api.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/policyreports/trustgate-audit'));
    expect(puts.length).to.be.greaterThan(0);
    expect(puts.every((r) => JSON.parse(r.body).metadata.resourceVersion)).to.equal(true);
    expect(metrics.render()).to.not.contain('namespace="team-c"');
  });

  it('writes no PolicyReport when the CRD is not installed, and still logs and counts', async () => {
    api.policyReportsInstalled = false;
    const metrics = new Metrics();
    const loop = new AuditLoop({ kubeConfig: api.kubeConfig(), verifier: engine, intervalMs: 3600_000, expiryWarningMs: 7 * DAY, isLeader: () => true, metrics, clock: () => NOW, fetchesPerSecond: 1000 });
    await loop.runOnce();
    expect(api.requests.filter((r) => r.path.includes('policyreports'))).to.deep.equal([]);
    expect(metrics.render()).to.contain('trustgate_audit_findings{namespace="team-c",result="fail"} 1');
  });
});
