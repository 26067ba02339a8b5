// Policies from the Kubernetes API: KubernetesPolicySource and KubernetesStatusWriter
// against a fake kube-apiserver that speaks the real list/watch/status wire protocol,
// through @kubernetes/client-node unmodified.
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { KubernetesPolicySource, type KubernetesPolicySourceOptions } from '../../webhook/src/kube/policy-source.js';
import { loadCrds } from '../../webhook/src/policy/crds.js';
import { validateSchema } from '../../webhook/src/policy/schema.js';
import { KubernetesStatusWriter } from '../../webhook/src/kube/policy-status-writer.js';
import { nextConditions, type Condition, type LoadOutcome, type PolicyObjectState, type StatusWriter } from '../../webhook/src/policy/status.js';
import { PolicyStore } from '../../webhook/src/policy/store.js';
import { FakeApiServer, type KubeObject, type Plural, type RecordedRequest } from '../support/fake-apiserver.js';

const KEY_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
const OTHER_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;

function spec(images: string[], key = KEY_PEM): Record<string, unknown> {
  return { images, trustServer: { url: 'https://notary.example.com:4443' }, root: { keys: [key], threshold: 1 } };
}

const BROKEN_SPEC = { images: ['registry.example.com/payments/**'], trustServer: { url: 'https://notary.example.com:4443' }, root: { keys: ['not a key'], threshold: 1 } };

/** The fake checks status writes against the real CRDs' status schema, as an API server would. */
function crdStatusValidator(plural: Plural, status: unknown): string[] {
  const crd = loadCrds().get(plural === 'trustpolicies' ? 'TrustPolicy' : 'ClusterTrustPolicy')!;
  const statusSchema = (crd.schema.properties as Record<string, object>)['status']!;
  return validateSchema(statusSchema, status, { basePath: 'status', rejectUnknownFields: true }).map((p) => `${p.path}: ${p.message}`);
}

/** Resolves once `cond()` holds, re-checking on every store change; bounded. */
function storeSettles(store: PolicyStore, cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for the store: ${what}`));
    }, timeoutMs);
    const off = store.onChange(() => {
      if (!cond()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** Delegates to the real writer and keeps every report's promise, so a test can wait for all of them. */
class RecordingWriter implements StatusWriter {
  readonly calls: Array<{ obj: PolicyObjectState; outcome: LoadOutcome }> = [];
  private pending: Promise<void>[] = [];
  private waiters: Array<() => void> = [];
  constructor(private readonly inner: StatusWriter) {}
  report(obj: PolicyObjectState, outcome: LoadOutcome): Promise<void> {
    this.calls.push({ obj, outcome });
    for (const w of this.waiters.splice(0)) w();
    const p = this.inner.report(obj, outcome);
    this.pending.push(p);
    return p;
  }
  /** Resolves once report() has been called `n` times in all; bounded. */
  async waitForCalls(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.calls.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} status reports (got ${this.calls.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async settle(): Promise<void> {
    while (this.pending.length > 0) await Promise.all(this.pending.splice(0));
  }
}

const names = (store: PolicyStore): string[] => store.all().map((p) => `${p.kind}/${p.namespace ?? ''}/${p.name}`);
const ready = (o: KubeObject): Condition | undefined =>
  ((o.status?.['conditions'] as Condition[] | undefined) ?? []).find((c) => c.type === 'Ready');
const isList = (plural: Plural) => (r: RecordedRequest) => r.method === 'GET' && !r.watch && r.path === `/apis/trustgate.dev/v1alpha1/${plural}`;
const isWatch = (plural: Plural) => (r: RecordedRequest) => r.method === 'GET' && r.watch && r.path === `/apis/trustgate.dev/v1alpha1/${plural}`;
const isStatusPatch = (r: RecordedRequest) => r.method === 'PATCH' && r.path.endsWith('/status');

describe('KubernetesPolicySource (fake API server)', function () {
  let api: FakeApiServer;
  let store: PolicyStore;
  let source: KubernetesPolicySource | undefined;
  let writer: KubernetesStatusWriter | undefined;
  let recorder: RecordingWriter | undefined;
  let logs: Array<Record<string, unknown>>;

  beforeEach(async () => {
    api = await FakeApiServer.start({ validateStatus: crdStatusValidator });
    store = new PolicyStore();
    logs = [];
    source = undefined;
    writer = undefined;
    recorder = undefined;
  });

  afterEach(async () => {
    source?.stop();
    writer?.close();
    await source?.stopped();
    await api.close();
  });

  function startSource(extra: Partial<KubernetesPolicySourceOptions> & { withStatus?: boolean } = {}): Promise<void> {
    const log = (e: object): void => {
      logs.push(e as Record<string, unknown>);
    };
    if (extra.withStatus) {
      writer = new KubernetesStatusWriter({ kubeConfig: api.kubeConfig(), log });
      recorder = new RecordingWriter(writer);
    }
    source = new KubernetesPolicySource({
      kubeConfig: api.kubeConfig(),
      store,
      log,
      backoff: { initialMs: 10, maxMs: 50 },
      ...(recorder ? { statusWriter: recorder } : {}),
      ...extra,
    });
    return source.start();
  }

  describe('initial sync and readiness', () => {
    it('loads both kinds from their lists, then marks the store ready', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      expect(store.ready).to.equal(false);
      await startSource();
      expect(store.ready).to.equal(true);
      expect(source!.ready).to.equal(true);
      expect(names(store)).to.deep.equal(['ClusterTrustPolicy//base', 'TrustPolicy/payments/pay']);
      expect(store.all().every((p) => p.source === 'kubernetes')).to.equal(true);
      expect(api.requests.filter(isList('clustertrustpolicies'))).to.have.length(1);
      expect(api.requests.filter(isList('trustpolicies'))).to.have.length(1);
      // The watch starts from the list's resourceVersion and asks for bookmarks.
      const w = await api.waitForRequest(isWatch('trustpolicies'));
      expect(w.query['resourceVersion']).to.equal(api.resourceVersion);
      expect(w.query['allowWatchBookmarks']).to.equal('true');
      expect(Number(w.query['timeoutSeconds'])).to.be.within(300, 600);
      expect(w.headers['authorization']).to.equal(`Bearer ${api.token}`);
    });

    it('is not ready while one of the two initial lists keeps failing, and retries it', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      api.failNext(isList('clustertrustpolicies'), 503, 1_000_000);
      let started = false;
      const starting = startSource().then(() => {
        started = true;
      });
      await storeSettles(store, () => names(store).includes('TrustPolicy/payments/pay'), 'the TrustPolicy list applied');
      await api.waitFor(() => api.requests.filter(isList('clustertrustpolicies')).length >= 3, 'three failed cluster lists');
      expect(store.ready).to.equal(false);
      expect(source!.ready).to.equal(false);
      expect(started).to.equal(false);
      expect(logs.some((l) => l['event'] === 'policy-list-failed' && l['code'] === 503)).to.equal(true);
      api.clearFailures();
      await starting;
      expect(store.ready).to.equal(true);
      expect(names(store)).to.deep.equal(['ClusterTrustPolicy//base', 'TrustPolicy/payments/pay']);
    });

    it('a rejected token is logged and retried, never taken for an empty cluster', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      const kc = api.kubeConfig();
      kc.users = [{ name: 'tester', token: 'wrong' }];
      source = new KubernetesPolicySource({ kubeConfig: kc, store, log: (e) => logs.push(e as Record<string, unknown>), backoff: { initialMs: 10, maxMs: 20 } });
      void source.start();
      await api.waitFor(() => api.requests.filter(isList('clustertrustpolicies')).length >= 3, 'three refused lists');
      expect(logs.some((l) => l['event'] === 'policy-list-failed' && l['code'] === 401)).to.equal(true);
      expect(store.ready).to.equal(false);
      expect(store.all()).to.deep.equal([]);
    });

    it('with no policies at all still becomes ready (an empty cluster is a valid state)', async () => {
      await startSource();
      expect(store.ready).to.equal(true);
      expect(store.all()).to.deep.equal([]);
    });
  });

  describe('changes through the watch', () => {
    it('applies a policy created, changed and deleted, without restart', async () => {
      await startSource();
      const ref = 'registry.example.com/payments/api:1.0';
      api.create('clustertrustpolicies', { metadata: { name: 'pay' }, spec: spec(['registry.example.com/payments/**']) });
      await storeSettles(store, () => store.policiesFor(ref, 'default').length === 1, 'created policy');
      expect(store.policiesFor(ref, 'default')[0]!.spec.root.keys).to.deep.equal([KEY_PEM]);

      api.update('clustertrustpolicies', { metadata: { name: 'pay' }, spec: spec(['registry.example.com/payments/**'], OTHER_PEM) });
      await storeSettles(store, () => store.policiesFor(ref, 'default')[0]?.spec.root.keys[0] === OTHER_PEM, 'changed key');
      expect(store.policiesFor(ref, 'default')[0]!.generation).to.equal(2);

      api.update('clustertrustpolicies', { metadata: { name: 'pay' }, spec: spec(['registry.example.com/other/**'], OTHER_PEM) });
      await storeSettles(store, () => store.policiesFor(ref, 'default').length === 0, 'pattern moved away');
      expect(store.policiesFor('registry.example.com/other/x:1', 'default').map((p) => p.name)).to.deep.equal(['pay']);

      api.delete('clustertrustpolicies', 'pay');
      await storeSettles(store, () => store.all().length === 0, 'deleted policy');
      // Events only: the source never needed to list again.
      expect(api.requests.filter(isList('clustertrustpolicies'))).to.have.length(1);
      expect(logs.some((l) => l['event'] === 'policy-removed' && l['name'] === 'pay')).to.equal(true);
    });

    it('keeps a namespaced policy to its namespace', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      await startSource();
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'shop' }, spec: spec(['registry.example.com/payments/**'], OTHER_PEM) });
      await storeSettles(store, () => store.all().length === 3, 'both namespaced policies');
      const ref = 'registry.example.com/payments/api:1.0';
      const inPayments = store.policiesFor(ref, 'payments');
      expect(inPayments.map((p) => `${p.kind}/${p.namespace ?? ''}/${p.name}`)).to.deep.equal(['ClusterTrustPolicy//base', 'TrustPolicy/payments/pay']);
      expect(inPayments[1]!.spec.root.keys).to.deep.equal([KEY_PEM]);
      expect(store.policiesFor(ref, 'shop')[1]!.spec.root.keys).to.deep.equal([OTHER_PEM]);
      expect(store.policiesFor(ref, 'elsewhere').map((p) => p.name)).to.deep.equal(['base']);
      // Deleting one namespace's policy leaves the other's alone.
      api.delete('trustpolicies', 'pay', 'shop');
      await storeSettles(store, () => store.all().length === 2, 'shop policy deleted');
      expect(store.policiesFor(ref, 'payments').map((p) => p.namespace ?? '')).to.deep.equal(['', 'payments']);
    });

    it('an edit that breaks a policy removes its previous version (fail closed) and logs the problems', async () => {
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await startSource();
      expect(names(store)).to.deep.equal(['TrustPolicy/payments/pay']);
      api.update('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: BROKEN_SPEC });
      await storeSettles(store, () => store.all().length === 0, 'broken policy removed');
      const invalid = logs.find((l) => l['event'] === 'policy-invalid');
      expect(invalid).to.include({ kind: 'TrustPolicy', namespace: 'payments', name: 'pay' });
      expect(JSON.stringify(invalid!['problems'])).to.contain('spec.root.keys[0]');
      // Fixed again: back in the store.
      api.update('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await storeSettles(store, () => store.all().length === 1, 'fixed policy back');
    });

    it('an invalid object in the initial list is left out while valid ones load', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'good' }, spec: spec(['registry.example.com/**']) });
      api.create('clustertrustpolicies', { metadata: { name: 'bad' }, spec: BROKEN_SPEC });
      await startSource();
      expect(names(store)).to.deep.equal(['ClusterTrustPolicy//good']);
      expect(logs.some((l) => l['event'] === 'policy-invalid' && l['name'] === 'bad')).to.equal(true);
    });
  });

  describe('status', () => {
    it('a valid policy gets Ready=True/Loaded with its generation, written once', async () => {
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await startSource({ withStatus: true });
      let storeChanges = 0;
      store.onChange(() => storeChanges++);
      const o = await api.waitForObject('trustpolicies', 'pay', 'payments', (x) => ready(x) !== undefined, 'Ready condition');
      const c = ready(o)!;
      expect(c).to.include({ type: 'Ready', status: 'True', reason: 'Loaded', observedGeneration: 1 });
      expect(Date.parse(c.lastTransitionTime)).to.be.a('number').and.not.NaN;
      expect(o.status?.['observedGeneration']).to.equal(1);
      const patch = api.requests.find(isStatusPatch)!;
      expect(patch.path).to.equal('/apis/trustgate.dev/v1alpha1/namespaces/payments/trustpolicies/pay/status');
      expect(patch.headers['content-type']).to.equal('application/merge-patch+json');
      // Our own write comes back as MODIFIED; it must not cause a second write.
      await recorder!.waitForCalls(2);
      expect(recorder!.calls[1]!.obj.resourceVersion).to.equal(o.metadata.resourceVersion);
      await recorder!.settle();
      expect(api.requests.filter(isStatusPatch)).to.have.length(1);
      // Nor does it disturb the store: a status-only change is no policy change.
      expect(storeChanges).to.equal(0);
    });

    it('a ClusterTrustPolicy is written through the cluster-scoped status path', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      await startSource({ withStatus: true });
      const o = await api.waitForObject('clustertrustpolicies', 'base', undefined, (x) => ready(x)?.status === 'True', 'Ready=True');
      expect(ready(o)!.reason).to.equal('Loaded');
      expect(api.requests.filter(isStatusPatch).map((r) => r.path)).to.deep.equal(['/apis/trustgate.dev/v1alpha1/clustertrustpolicies/base/status']);
    });

    it('an invalid policy gets Ready=False/Invalid naming the problem; fixing it flips it back', async () => {
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await startSource({ withStatus: true });
      const loaded = await api.waitForObject('trustpolicies', 'pay', 'payments', (x) => ready(x)?.status === 'True', 'Ready=True');
      api.update('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: BROKEN_SPEC });
      const broken = await api.waitForObject('trustpolicies', 'pay', 'payments', (x) => ready(x)?.status === 'False', 'Ready=False');
      const c = ready(broken)!;
      expect(c.reason).to.equal('Invalid');
      expect(c.observedGeneration).to.equal(2);
      expect(c.message).to.contain('spec.root.keys[0]').and.contain('denied');
      expect(store.all()).to.deep.equal([]);
      api.update('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      const fixed = await api.waitForObject('trustpolicies', 'pay', 'payments', (x) => ready(x)?.status === 'True', 'Ready=True again');
      expect(ready(fixed)!.observedGeneration).to.equal(3);
      expect(ready(loaded)!.observedGeneration).to.equal(1);
    });

    it('a failed status write is logged and changes nothing else', async () => {
      api.failNext(isStatusPatch, 500, 1);
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      await startSource({ withStatus: true });
      await api.waitFor(() => api.requests.some(isStatusPatch), 'a status write');
      await recorder!.settle();
      const failed = logs.find((l) => l['event'] === 'policy-status-write-failed');
      expect(failed).to.include({ kind: 'ClusterTrustPolicy', name: 'base', code: 500 });
      expect(names(store)).to.deep.equal(['ClusterTrustPolicy//base']);
      expect(ready(api.get('clustertrustpolicies', 'base')!)).to.equal(undefined);
    });
  });

  describe('status writer', () => {
    const state = (o: KubeObject): PolicyObjectState => ({
      kind: 'TrustPolicy',
      name: o.metadata.name,
      namespace: o.metadata.namespace!,
      generation: o.metadata.generation,
      resourceVersion: o.metadata.resourceVersion,
      conditions: o.status?.['conditions'],
    });

    it('writes only the newest outcome waiting for an object, never an older one last', async () => {
      const o = api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      writer = new KubernetesStatusWriter({ kubeConfig: api.kubeConfig(), log: (e) => logs.push(e as Record<string, unknown>) });
      const release = api.hold(isStatusPatch);
      const first = writer.report({ ...state(o), resourceVersion: undefined }, { loaded: true });
      await api.waitForRequest(isStatusPatch);
      const second = writer.report({ ...state(o), resourceVersion: undefined, generation: 2 }, { loaded: false, problems: [{ path: 'spec.root', message: 'x' }] });
      const third = writer.report({ ...state(o), resourceVersion: undefined, generation: 3 }, { loaded: true });
      release();
      await Promise.all([first, second, third]);
      const patches = api.requests.filter(isStatusPatch);
      expect(patches).to.have.length(2);
      const c = ready(api.get('trustpolicies', 'pay', 'payments')!)!;
      expect(c).to.include({ status: 'True', observedGeneration: 3 });
    });

    it('a write computed from an outdated object is refused (409), logged, and not retried', async () => {
      const o = api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      api.update('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/other/**']) });
      writer = new KubernetesStatusWriter({ kubeConfig: api.kubeConfig(), log: (e) => logs.push(e as Record<string, unknown>) });
      await writer.report(state(o), { loaded: true });
      expect(logs.find((l) => l['event'] === 'policy-status-write-failed')).to.include({ code: 409, name: 'pay' });
      expect(api.requests.filter(isStatusPatch)).to.have.length(1);
      expect(api.get('trustpolicies', 'pay', 'payments')!.status).to.equal(undefined);
    });
  });

  describe('reconnecting', () => {
    it('catches up after a dropped watch by re-watching from the last resourceVersion', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'keep' }, spec: spec(['registry.example.com/keep/**']) });
      api.create('clustertrustpolicies', { metadata: { name: 'gone' }, spec: spec(['registry.example.com/gone/**']) });
      await startSource();
      await api.waitFor(() => api.openWatches() === 2, 'both watches open');
      const lastSeen = api.resourceVersion;
      const before = api.requests.length;
      expect(api.dropWatches('destroy')).to.equal(2);
      // Same tick: the source cannot have reconnected yet, so these happen while it is away.
      api.delete('clustertrustpolicies', 'gone');
      api.create('clustertrustpolicies', { metadata: { name: 'new' }, spec: spec(['registry.example.com/new/**']) });
      api.create('trustpolicies', { metadata: { name: 'team', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await storeSettles(store, () => names(store).join() === 'ClusterTrustPolicy//keep,ClusterTrustPolicy//new,TrustPolicy/payments/team', 'caught up');
      const rewatch = await api.waitForRequest(isWatch('clustertrustpolicies'), 5000, before);
      expect(rewatch.query['resourceVersion']).to.equal(lastSeen);
      expect(api.requests.filter(isList('clustertrustpolicies'))).to.have.length(1);
    });

    it('re-watches after the server ends a watch cleanly, and backs off over refused watches', async () => {
      await startSource();
      await api.waitFor(() => api.openWatches() === 2, 'both watches open');
      api.failNext(isWatch('trustpolicies'), 500, 3);
      api.dropWatches('end');
      api.create('trustpolicies', { metadata: { name: 'team', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await storeSettles(store, () => store.all().length === 1, 'change made while the watch was refused');
      expect(api.requests.filter(isWatch('trustpolicies')).length).to.be.at.least(5);
      expect(logs.filter((l) => l['event'] === 'policy-watch-failed' && l['code'] === 500)).to.have.length(3);
      expect(api.requests.filter(isList('trustpolicies'))).to.have.length(1);
    });

    it('an ERROR event other than 410 ends the watch; the source re-watches from where it was', async () => {
      await startSource();
      await api.waitFor(() => api.openWatches() === 2, 'both watches open');
      const lastSeen = api.resourceVersion;
      api.failNext(isWatch('clustertrustpolicies'), 500, 2, 'event');
      const before = api.requests.length;
      api.dropWatches('end');
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      await storeSettles(store, () => store.all().length === 1, 'change after the failed watches');
      expect(logs.filter((l) => l['event'] === 'policy-watch-failed' && l['code'] === 500)).to.have.length(2);
      const rewatches = api.requests.slice(before).filter(isWatch('clustertrustpolicies'));
      expect(rewatches.length).to.be.at.least(3);
      expect(rewatches.every((r) => r.query['resourceVersion'] === lastSeen)).to.equal(true);
      expect(api.requests.filter(isList('clustertrustpolicies'))).to.have.length(1);
    });

    for (const goneAs of ['event', 'status'] as const) {
      it(`relists after 410 Gone (${goneAs === 'event' ? 'ERROR event with code 410' : 'HTTP 410'}) and drops what vanished meanwhile`, async () => {
        api.goneAs = goneAs;
        api.create('trustpolicies', { metadata: { name: 'old', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
        await startSource();
        await api.waitFor(() => api.openWatches() === 2, 'both watches open');
        api.dropWatches('destroy');
        api.delete('trustpolicies', 'old', 'payments');
        api.create('trustpolicies', { metadata: { name: 'fresh', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
        // History no longer reaches back to where the source stopped.
        api.compact();
        await storeSettles(store, () => names(store).join() === 'TrustPolicy/payments/fresh', 'relisted');
        expect(api.requests.filter(isList('trustpolicies'))).to.have.length(2);
        expect(logs.some((l) => l['event'] === 'policy-watch-expired' || (l['event'] === 'policy-watch-failed' && l['code'] === 410))).to.equal(true);
        // The relist's resourceVersion is where the next watch starts.
        const w = await api.waitForRequest((r) => isWatch('trustpolicies')(r) && r.query['resourceVersion'] === api.resourceVersion);
        expect(w).to.not.equal(undefined);
      });
    }

    it('resumes from a bookmark, not from the last object event', async () => {
      api.create('trustpolicies', { metadata: { name: 'pay', namespace: 'payments' }, spec: spec(['registry.example.com/payments/**']) });
      await startSource();
      await api.waitFor(() => api.openWatches() === 2, 'both watches open');
      const tpRv = api.resourceVersion;
      // Moves the shared resourceVersion on without any TrustPolicy event.
      api.create('clustertrustpolicies', { metadata: { name: 'base' }, spec: spec(['registry.example.com/**']) });
      await storeSettles(store, () => store.all().length === 2, 'cluster policy seen');
      api.bookmark();
      const before = api.requests.length;
      api.dropWatches('end');
      const rewatch = await api.waitForRequest(isWatch('trustpolicies'), 5000, before);
      expect(rewatch.query['resourceVersion']).to.equal(api.resourceVersion).and.not.equal(tpRv);
    });

    it('a periodic resync relists and repairs an event the watch missed', async () => {
      api.create('clustertrustpolicies', { metadata: { name: 'ghost' }, spec: spec(['registry.example.com/**']) });
      await startSource({ resyncMs: 200 });
      api.deleteSilently('clustertrustpolicies', 'ghost');
      expect(names(store)).to.deep.equal(['ClusterTrustPolicy//ghost']);
      await storeSettles(store, () => store.all().length === 0, 'resync removed the ghost');
      expect(api.requests.filter(isList('clustertrustpolicies')).length).to.be.at.least(2);
    });
  });

  describe('stop', () => {
    it('closes every connection and starts nothing afterwards', async () => {
      await startSource({ withStatus: true });
      await api.waitFor(() => api.openWatches() === 2, 'both watches open');
      source!.stop();
      writer!.close();
      await source!.stopped();
      await api.waitFor(() => api.openConnections === 0, 'no open connections');
      const after = api.requests.length;
      api.create('clustertrustpolicies', { metadata: { name: 'late' }, spec: spec(['registry.example.com/**']) });
      // A change after stop reaches nobody: nothing is listening and nothing reconnects.
      expect(api.openWatches()).to.equal(0);
      expect(api.requests.length).to.equal(after);
      expect(store.all()).to.deep.equal([]);
    });

    it('stop() while a list is in flight aborts it and never starts a watch', async () => {
      const release = api.hold(isList('clustertrustpolicies'));
      let resolved = false;
      const starting = startSource().then(() => {
        resolved = true;
      });
      await api.waitForRequest(isList('clustertrustpolicies'));
      await api.waitFor(() => api.openWatches('trustpolicies') === 1, 'TrustPolicy watch open');
      source!.stop();
      await starting;
      expect(resolved).to.equal(true);
      expect(store.ready).to.equal(false);
      await source!.stopped();
      // The held list was aborted by the client, not left waiting for the server.
      await api.waitFor(() => api.openConnections === 0, 'no open connections while the list is held');
      release();
      expect(api.requests.some(isWatch('clustertrustpolicies'))).to.equal(false);
    });

    it('stop() during backoff ends at once', async () => {
      api.failNext(isList('clustertrustpolicies'), 500, 1_000_000);
      source = new KubernetesPolicySource({ kubeConfig: api.kubeConfig(), store, backoff: { initialMs: 60_000, maxMs: 60_000 } });
      void source.start();
      await api.waitForRequest(isList('clustertrustpolicies'));
      source.stop();
      // Would hang for a minute (and fail on mocha's timeout) if the backoff sleep ignored stop().
      await source.stopped();
      await api.waitFor(() => api.openConnections === 0, 'no open connections');
    });
  });
});

describe('nextConditions', () => {
  const t0 = new Date('2030-01-01T00:00:00Z');
  const t1 = new Date('2030-01-02T00:00:00Z');
  const bad: LoadOutcome = { loaded: false, problems: [{ path: 'spec.images[0]', message: 'must be qualified' }] };

  it('adds Ready next to conditions others own, and is undefined when nothing changed', () => {
    const other = { type: 'Verified', status: 'True', reason: 'X', message: '', lastTransitionTime: '2029-01-01T00:00:00Z' };
    const first = nextConditions([other], { loaded: true }, 4, t0)!;
    expect(first).to.deep.equal([other, { type: 'Ready', status: 'True', reason: 'Loaded', message: 'policy loaded', observedGeneration: 4, lastTransitionTime: '2030-01-01T00:00:00Z' }]);
    expect(nextConditions(first, { loaded: true }, 4, t1)).to.equal(undefined);
  });

  it('moves lastTransitionTime only when the status flips', () => {
    const broken = nextConditions(undefined, bad, 1, t0)!;
    expect(broken[0]).to.include({ status: 'False', reason: 'Invalid' });
    expect(broken[0]!.message).to.contain('spec.images[0]: must be qualified');
    const stillBroken = nextConditions(broken, { loaded: false, problems: [{ path: 'spec.root', message: 'other' }] }, 2, t1)!;
    expect(stillBroken[0]!.lastTransitionTime).to.equal('2030-01-01T00:00:00Z');
    expect(stillBroken[0]!.observedGeneration).to.equal(2);
    const fixed = nextConditions(stillBroken, { loaded: true }, 3, t1)!;
    expect(fixed[0]!.lastTransitionTime).to.equal('2030-01-02T00:00:00Z');
  });

  it('keeps a huge problem list within a bounded message', () => {
    const many: LoadOutcome = { loaded: false, problems: Array.from({ length: 2000 }, (_, i) => ({ path: `spec.images[${i}]`, message: 'bad pattern' })) };
    const c = nextConditions([], many, 1, t0)![0]!;
    expect(c.message.length).to.be.at.most(4096);
    expect(c.message.endsWith('...')).to.equal(true);
  });
});
