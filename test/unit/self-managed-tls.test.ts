// Self-managed TLS (--tls-secret): the CA and serving certificate in one Secret shared by
// the replicas, renewed before expiry, the caBundle of both webhook configurations kept
// current. Exercised through @kubernetes/client-node's real requests against a server that
// answers like kube-apiserver (resourceVersion, 409 AlreadyExists / Conflict, RBAC by name).
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { startSelfManagedTls } from '../../webhook/src/kube/self-managed-tls.js';
import { DEFAULT_LIFETIMES, splitPem, type CertRotation } from '../../webhook/src/server/cert-rotation.js';
import { startServer } from '../../webhook/src/server/start.js';
import { call } from '../fixtures/admission/https-client.js';
import { captureLogger } from '../fixtures/admission/support.js';
import { FakeKubeObjects, type Rule } from '../support/fake-kube-objects.js';

const NS = 'trustgate';
const SECRET = 'trustgate-tls';
const WEBHOOK = 'trustgate';
const DNS = ['trustgate.trustgate.svc', 'localhost'];
const DAY = 24 * 60 * 60 * 1000;

/** What the chart's RBAC grants in self-managed mode, no more. */
const CHART_RULES: Rule[] = [
  { resource: 'secrets', verbs: ['create'] },
  { resource: 'secrets', verbs: ['get', 'update', 'patch'], resourceNames: [SECRET] },
  { resource: 'mutatingwebhookconfigurations', verbs: ['get', 'update', 'patch'], resourceNames: [WEBHOOK] },
  { resource: 'validatingwebhookconfigurations', verbs: ['get', 'update', 'patch'], resourceNames: [WEBHOOK] },
];

function webhookConfig(name: string, hooks: string[]) {
  return {
    metadata: { name, labels: { 'app.kubernetes.io/name': 'trustgate' } },
    webhooks: hooks.map((h) => ({
      name: h,
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 10,
      clientConfig: { service: { name: 'trustgate', namespace: NS, path: '/mutate', port: 443 } },
    })),
  };
}

function secretPem(fake: FakeKubeObjects, key: string): string {
  const data = fake.get('secrets', SECRET, NS)?.['data'] as Record<string, string> | undefined;
  expect(data, 'the Secret').to.not.equal(undefined);
  return Buffer.from(data![key]!, 'base64').toString('utf8');
}

function caBundles(fake: FakeKubeObjects): string[] {
  const out: string[] = [];
  for (const r of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'] as const) {
    for (const w of (fake.get(r, WEBHOOK)?.['webhooks'] ?? []) as Array<{ clientConfig: { caBundle?: string } }>) {
      out.push(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'));
    }
  }
  return out;
}

const writes = (fake: FakeKubeObjects, method: string, part: string) => fake.requests.filter((r) => r.method === method && r.path.includes(part));

describe('self-managed TLS (Secret + caBundle)', function () {
  this.timeout(20_000);
  let fake: FakeKubeObjects;
  const started: Array<{ close(): void }> = [];
  const base = Date.now();

  beforeEach(async () => {
    fake = await FakeKubeObjects.start();
    fake.rules = CHART_RULES;
    fake.put('mutatingwebhookconfigurations', webhookConfig(WEBHOOK, ['mutate.trustgate.dev']));
    fake.put('validatingwebhookconfigurations', webhookConfig(WEBHOOK, ['validate.trustgate.dev', 'policies.trustgate.dev']));
    // Someone else's webhook: never touched.
    fake.put('validatingwebhookconfigurations', webhookConfig('other', ['other.example.com']));
  });

  afterEach(async () => {
    for (const s of started.splice(0)) s.close();
    await fake.close();
  });

  async function replica(clock: { now: number }, log = captureLogger(), resyncMs = 3_600_000): Promise<{ rotation: CertRotation; close(): void; log: ReturnType<typeof captureLogger> }> {
    const tls = await startSelfManagedTls({
      secretName: SECRET,
      namespace: NS,
      dnsNames: DNS,
      mutatingWebhooks: [WEBHOOK],
      validatingWebhooks: [WEBHOOK],
      log,
      kubeConfig: fake.kubeConfig(),
      clock: () => new Date(clock.now),
      // Syncs happen when the test says so, unless it asks for the timer.
      resyncMs,
    });
    started.push(tls);
    return { rotation: tls.rotation, close: tls.close, log };
  }

  it('the first replica creates the Secret, serves its pair and sets the caBundle of every webhook in both configurations', async () => {
    const { rotation } = await replica({ now: base });
    const ca = secretPem(fake, 'ca.crt');
    const caCert = new X509Certificate(ca);
    expect(caCert.ca).to.equal(true);
    const leaf = new X509Certificate(secretPem(fake, 'tls.crt'));
    expect(leaf.ca).to.equal(false);
    expect(leaf.checkIssued(caCert) && leaf.verify(caCert.publicKey)).to.equal(true);
    for (const n of DNS) expect(leaf.checkHost(n), n).to.equal(n);
    expect(leaf.fingerprint256).to.equal(rotation.pair.fingerprint);
    // 90 days, not ten years: renewal is the point.
    expect(Date.parse(leaf.validTo) - base).to.be.within(89 * DAY, 91 * DAY);
    expect(caBundles(fake)).to.deep.equal([ca, ca, ca]);
    const other = fake.get('validatingwebhookconfigurations', 'other')!['webhooks'] as Array<{ clientConfig: { caBundle?: string } }>;
    expect(other[0]!.clientConfig.caBundle).to.equal(undefined);
    expect(writes(fake, 'POST', '/secrets').map((r) => r.status)).to.deep.equal([201]);
  });

  it('two replicas racing to create: one creates, the other gets 409, reads the Secret and serves the same pair', async () => {
    // Both read "not found" before either writes.
    fake.gather((r) => r.method === 'GET' && r.path.endsWith(`/secrets/${SECRET}`), 2);
    const [a, b] = await Promise.all([replica({ now: base }), replica({ now: base })]);
    expect(writes(fake, 'POST', '/secrets').map((r) => r.status).sort()).to.deep.equal([201, 409]);
    expect(a.rotation.pair.fingerprint).to.equal(b.rotation.pair.fingerprint);
    expect(new X509Certificate(secretPem(fake, 'tls.crt')).fingerprint256).to.equal(a.rotation.pair.fingerprint);
    expect(caBundles(fake)).to.deep.equal(Array(3).fill(secretPem(fake, 'ca.crt')));
  });

  it('renews the serving certificate a third of its life before expiry (pinned clock), with the resourceVersion it read', async () => {
    const clock = { now: base };
    const { rotation } = await replica(clock);
    const first = rotation.pair.fingerprint;
    const ca = secretPem(fake, 'ca.crt');
    const rv = fake.get('secrets', SECRET, NS)!.metadata.resourceVersion;
    const changed: string[] = [];
    rotation.onChange((p) => changed.push(p.fingerprint));

    clock.now = base + 59 * DAY;
    await rotation.sync();
    expect(writes(fake, 'PUT', '/secrets')).to.have.length(0);
    expect(rotation.pair.fingerprint).to.equal(first);

    clock.now = base + 61 * DAY;
    await rotation.sync();
    const puts = writes(fake, 'PUT', '/secrets');
    expect(puts.map((r) => r.status)).to.deep.equal([200]);
    expect((JSON.parse(puts[0]!.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion).to.equal(rv);
    const leaf = new X509Certificate(secretPem(fake, 'tls.crt'));
    expect(leaf.fingerprint256).to.not.equal(first);
    expect(changed).to.deep.equal([leaf.fingerprint256]);
    expect(Date.parse(leaf.validTo)).to.be.greaterThan(clock.now + 89 * DAY);
    // Same CA: the caBundle stays, no webhook configuration is written again.
    expect(secretPem(fake, 'ca.crt')).to.equal(ca);
    const configPuts = fake.requests.filter((r) => r.method === 'PUT' && r.path.includes('webhookconfigurations'));
    expect(configPuts).to.have.length(2);
  });

  it('renews the CA before it expires, keeping the old CA in the bundle so replicas still serving its certificates are trusted', async () => {
    const clock = { now: base };
    const { rotation } = await replica(clock);
    const oldCa = secretPem(fake, 'ca.crt');
    const oldLeaf = new X509Certificate(secretPem(fake, 'tls.crt'));
    clock.now = base + DEFAULT_LIFETIMES.caMs - DEFAULT_LIFETIMES.caRenewBeforeMs + DAY;
    await rotation.sync();
    const bundle = splitPem(secretPem(fake, 'ca.crt'));
    expect(bundle).to.have.length(2);
    expect(bundle[1]).to.equal(oldCa);
    const newCa = new X509Certificate(bundle[0]!);
    expect(newCa.fingerprint256).to.not.equal(new X509Certificate(oldCa).fingerprint256);
    const leaf = new X509Certificate(secretPem(fake, 'tls.crt'));
    expect(leaf.checkIssued(newCa) && leaf.verify(newCa.publicKey)).to.equal(true);
    expect(oldLeaf.verify(new X509Certificate(bundle[1]!).publicKey)).to.equal(true);
    expect(caBundles(fake)).to.deep.equal(Array(3).fill(bundle.join('')));

    // Once the old CA has expired, the next renewal drops it from the bundle.
    clock.now = Date.parse(new X509Certificate(oldCa).validTo) + DAY;
    await rotation.sync();
    expect(splitPem(secretPem(fake, 'ca.crt'))).to.deep.equal([bundle[0]]);
    expect(caBundles(fake)).to.deep.equal(Array(3).fill(bundle[0]));
  });

  it('two replicas due for renewal at once: one write wins, the other gets 409 Conflict and serves the winner', async () => {
    const clock = { now: base };
    const a = await replica(clock);
    const b = await replica(clock);
    const before = a.rotation.pair.fingerprint;
    clock.now = base + 61 * DAY;
    fake.gather((r) => r.method === 'GET' && r.path.endsWith(`/secrets/${SECRET}`), 2);
    await Promise.all([a.rotation.sync(), b.rotation.sync()]);
    expect(writes(fake, 'PUT', '/secrets').map((r) => r.status).sort()).to.deep.equal([200, 409]);
    const stored = new X509Certificate(secretPem(fake, 'tls.crt')).fingerprint256;
    expect(stored).to.not.equal(before);
    expect(a.rotation.pair.fingerprint).to.equal(stored);
    expect(b.rotation.pair.fingerprint).to.equal(stored);
  });

  it('a caBundle write that meets 409 re-reads the configuration and keeps the edit made in between', async () => {
    fake.before(
      (r) => r.method === 'PUT' && r.path.endsWith(`/mutatingwebhookconfigurations/${WEBHOOK}`),
      () => {
        const c = fake.get('mutatingwebhookconfigurations', WEBHOOK)!;
        (c['webhooks'] as Array<{ timeoutSeconds: number }>)[0]!.timeoutSeconds = 5;
        fake.put('mutatingwebhookconfigurations', c as never);
      },
    );
    await replica({ now: base });
    const puts = fake.requests.filter((r) => r.method === 'PUT' && r.path.includes('mutatingwebhookconfigurations'));
    expect(puts.map((r) => r.status)).to.deep.equal([409, 200]);
    const hook = (fake.get('mutatingwebhookconfigurations', WEBHOOK)!['webhooks'] as Array<{ timeoutSeconds: number; clientConfig: { caBundle: string } }>)[0]!;
    expect(hook.timeoutSeconds).to.equal(5);
    expect(Buffer.from(hook.clientConfig.caBundle, 'base64').toString()).to.equal(secretPem(fake, 'ca.crt'));
  });

  it('a webhook configuration that does not exist yet is set once it appears', async () => {
    fake.delete('validatingwebhookconfigurations', WEBHOOK);
    const { rotation, log } = await replica({ now: base });
    expect(log.lines.some((l) => l.level === 'warn' && /not found/.test(l.msg) && String(l.fields['webhook']).includes('ValidatingWebhookConfiguration'))).to.equal(true);
    fake.put('validatingwebhookconfigurations', webhookConfig(WEBHOOK, ['validate.trustgate.dev']));
    await rotation.sync();
    expect(caBundles(fake)).to.deep.equal(Array(2).fill(secretPem(fake, 'ca.crt')));
  });

  it('on its own schedule, puts back a caBundle that an upgrade removed (the configuration re-created)', async () => {
    await replica({ now: base }, captureLogger(), 50);
    const ca = secretPem(fake, 'ca.crt');
    fake.put('mutatingwebhookconfigurations', webhookConfig(WEBHOOK, ['mutate.trustgate.dev']));
    expect(caBundles(fake)[0]).to.equal('');
    for (let i = 0; i < 100 && caBundles(fake)[0] !== ca; i++) await new Promise((r) => setTimeout(r, 20));
    expect(caBundles(fake)).to.deep.equal([ca, ca, ca]);
  });

  it('a Secret whose CA key does not match its CA certificate is replaced, never served', async () => {
    const { rotation } = await replica({ now: base });
    const served = rotation.pair.fingerprint;
    // Someone swaps in a CA key of their own: what it signs would be trusted by the API server.
    const other = await FakeKubeObjects.start();
    const intruder = await startSelfManagedTls({ secretName: SECRET, namespace: NS, dnsNames: DNS, mutatingWebhooks: [], validatingWebhooks: [], log: captureLogger(), kubeConfig: other.kubeConfig(), resyncMs: 3_600_000 });
    intruder.close();
    const foreignKey = (other.get('secrets', SECRET, NS)!['data'] as Record<string, string>)['ca.key']!;
    await other.close();
    const s = fake.get('secrets', SECRET, NS)!;
    (s['data'] as Record<string, string>)['ca.key'] = foreignKey;
    fake.put('secrets', s as never);
    await rotation.sync();
    const ca = new X509Certificate(splitPem(secretPem(fake, 'ca.crt'))[0]!);
    expect(ca.checkPrivateKey((await import('node:crypto')).createPrivateKey(secretPem(fake, 'ca.key')))).to.equal(true);
    expect(rotation.pair.fingerprint).to.not.equal(served);
    expect(new X509Certificate(rotation.pair.cert).checkIssued(ca)).to.equal(true);
  });

  it('without the RBAC to read the Secret, start fails with the API server message and a hint', async () => {
    fake.rules = CHART_RULES.filter((r) => !(r.resource === 'secrets' && r.resourceNames));
    let error: Error | undefined;
    await replica({ now: base }).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/reading secret trustgate\/trustgate-tls failed: HTTP 403: .*cannot get resource "secrets".*check the chart RBAC/);
  });

  it('the HTTPS server presents the Secret pair (trusted through the caBundle) and switches when another replica renews it', async () => {
    // Replica a made the pair 61 days ago (certificates must be valid on the real clock for the handshake).
    const a = await replica({ now: base - 61 * DAY });
    const never = async () => {
      throw new Error('not called');
    };
    const server = await startServer({
      port: 0,
      host: '127.0.0.1',
      handlers: { mutate: never, validate: never },
      ready: () => true,
      managedTls: { origin: a.rotation.origin, pair: a.rotation.pair, onChange: (l) => a.rotation.onChange(l) },
    });
    try {
      const trusted = () => Buffer.from(caBundles(fake)[0]!);
      const first = await call({ port: server.port, path: '/healthz', ca: trusted() });
      expect(first.status).to.equal(200);
      expect(first.fingerprint).to.equal(a.rotation.pair.fingerprint);
      // Replica b finds it due and renews; replica a picks the new pair up on its next sync.
      const b = await replica({ now: base });
      expect(b.rotation.pair.fingerprint).to.not.equal(first.fingerprint);
      await a.rotation.sync();
      const second = await call({ port: server.port, path: '/healthz', ca: trusted() });
      expect(second.fingerprint).to.equal(b.rotation.pair.fingerprint);
      expect(server.fingerprint()).to.equal(b.rotation.pair.fingerprint);
    } finally {
      await server.close();
    }
  });
});
