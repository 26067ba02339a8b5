// trustgate serve --kubernetes, end to end: policies come from a server speaking the
// Kubernetes list/watch protocol (no API server runs here), admissions go over HTTPS, trust
// data comes from the real Notary stack. A TrustPolicy created, changed and deleted through
// the API must change what is admitted, without a restart.
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { applyPatch, at, decodePatch } from '../fixtures/admission/support.js';
import { policySpec } from '../support/e2e-policies.js';
import { admit, getText, reviewFrom, spawnWebhook, type LogLine, type WebhookProcess } from '../support/e2e-webhook.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { makeEcdsaCert, notaryLookup, notaryOk, pushImage, rootPublicKeyPem, startStack, type Stack } from '../support/stack.js';

const API = '/spec/containers/0/image';
const PROXY = '/spec/containers/1/image';
const MIGRATE = '/spec/initContainers/0/image';
const NAMESPACE = 'payments';

async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('integration: TrustPolicy through the informer path takes effect in a running webhook', function () {
  this.timeout(60_000);

  let stack: Stack;
  let fake: FakeApiServer;
  let webhook: WebhookProcess;
  let release: (() => void) | undefined;
  let images: string[];
  let digests: string[];
  let spec: Record<string, unknown>;

  const review = (namespace = NAMESPACE) =>
    reviewFrom('pod-create.json', { namespace, images: { [API]: images[0]!, [PROXY]: images[1]!, [MIGRATE]: images[2]! } });
  const mutate = (r: unknown) => admit(webhook.port, '/mutate', r, stack.caPem);
  const logged = (event: string, pred: (l: LogLine) => boolean = () => true) =>
    webhook.logs().find((l) => l.msg === 'policy source' && l['event'] === event && pred(l));

  /** The webhook has reported this generation of the policy in its status (it reports after applying it). */
  const observed = (generation: number): Promise<KubeObject> =>
    fake.waitForObject(
      'trustpolicies',
      'payments-images',
      NAMESPACE,
      (o) => (o.status as { observedGeneration?: number } | undefined)?.observedGeneration === generation,
      `status of generation ${generation}`,
      10_000,
    );

  before(async function () {
    this.timeout(120_000);
    stack = await startStack();
    const host = stack.registryHost;
    // api is signed into targets/releases; proxy and migrate directly into targets.
    const appGun = `${host}/informer/app`;
    await notaryOk(stack, ['init', '-p', appGun]);
    const key = makeEcdsaCert(stack.dir, 'informer-releases');
    await notaryOk(stack, ['delegation', 'add', appGun, 'targets/releases', key.publicFile, '--all-paths']);
    await notaryOk(stack, ['key', 'import', key.keyFile, '--role', 'targets/releases']);
    await notaryOk(stack, ['publish', appGun]);
    const signed: Array<[string, string, string]> = [
      ['informer/app', 'v1', 'targets/releases'],
      ['informer/proxy', '1.25', 'targets'],
      ['informer/migrate', '1.0', 'targets'],
    ];
    for (const [repo, tag, role] of signed) {
      const gun = `${host}/${repo}`;
      if (repo !== 'informer/app') await notaryOk(stack, ['init', '-p', gun]);
      const pushed = await pushImage(stack, repo, tag, `${repo} ${tag}`);
      await notaryOk(stack, ['addhash', gun, tag, String(pushed.size), '--sha256', pushed.digest.slice(7), ...(role === 'targets' ? [] : ['--roles', role])]);
      await notaryOk(stack, ['publish', gun]);
    }
    images = signed.map(([repo, tag]) => `${host}/${repo}:${tag}`);
    digests = [];
    for (const [repo, tag] of signed) {
      const found = await notaryLookup(stack, `${host}/${repo}`, tag);
      if (!found) throw new Error(`notary lookup finds no ${repo}:${tag}`);
      digests.push(found.digest);
    }
    spec = policySpec({
      kind: 'TrustPolicy',
      name: 'payments-images',
      images: [`${host}/informer/**`],
      server: stack.notaryUrl,
      caPem: stack.caPem,
      rootPems: [await rootPublicKeyPem(stack, appGun)],
    });

    fake = await FakeApiServer.start();
    const kubeconfig = join(stack.dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        // client-node refuses plain HTTP unless TLS checks are off, as kubectl's kubeconfig would say.
        clusters: [{ name: 'fake', cluster: { server: fake.url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'tester', user: { token: fake.token } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'tester' } }],
        'current-context': 'fake',
      }),
    );
    // Lists wait until the readiness test lets them through.
    release = fake.hold((r) => r.method === 'GET' && !r.watch);
    webhook = await spawnWebhook(
      ['--kubernetes', '--port', '0', '--host', '127.0.0.1', '--tls-cert', join(stack.dir, 'pki', 'notary-server.crt'), '--tls-key', join(stack.dir, 'pki', 'notary-server.key')],
      { KUBECONFIG: kubeconfig, TRUSTGATE_STATE_CONFIGMAP: '' },
    );
  });

  after(async () => {
    release?.();
    await webhook?.stop();
    await fake?.close();
    await stack?.stop();
  });

  it('is not ready until the policies have been listed, then ready', async () => {
    await fake.waitForRequest((r) => r.method === 'GET' && !r.watch && r.path.includes('policies'), 10_000);
    const waiting = await getText(webhook.port, '/readyz', stack.caPem);
    expect(waiting.status).to.equal(503);
    release!();
    release = undefined;
    await eventually('/readyz 200', async () => ((await getText(webhook.port, '/readyz', stack.caPem)).status === 200 ? true : undefined));
    // After the list comes the watch that later changes arrive on.
    await fake.waitFor(() => fake.openWatches('trustpolicies') === 1 && fake.openWatches('clustertrustpolicies') === 1, 'both watches open', 10_000);
  });

  it('with no policy, denies: nothing matches the images', async () => {
    const res = await mutate(review());
    expect(res.response.allowed).to.equal(false);
    const lines: string[] = res.response.status.message.split('\n');
    expect(lines).to.have.length(3);
    expect(lines[0]).to.include(`container "api" image "${images[0]}"`).and.include('no TrustPolicy or ClusterTrustPolicy matches');
  });

  it('a TrustPolicy created in the namespace admits and pins its images there, and only there', async () => {
    fake.create('trustpolicies', { metadata: { name: 'payments-images', namespace: NAMESPACE }, spec });
    const obj = await observed(1);
    const conditions = (obj.status as { conditions?: Array<{ type: string; status: string }> }).conditions ?? [];
    expect(conditions.find((c) => c.type === 'Ready')?.status, JSON.stringify(conditions)).to.equal('True');

    const r = review();
    const res = await mutate(r);
    expect(res.response.allowed, res.response.status?.message).to.equal(true);
    const patched = applyPatch(r.request.object, decodePatch(res.response.patch));
    [API, PROXY, MIGRATE].forEach((pointer, i) => expect(at(patched, pointer), pointer).to.equal(`${images[i]}@${digests[i]}`));

    const elsewhere = await mutate(review('other-team'));
    expect(elsewhere.response.allowed, 'a TrustPolicy applies in its own namespace only').to.equal(false);
    expect(elsewhere.response.status.message).to.include('no TrustPolicy or ClusterTrustPolicy matches');
  });

  it('the policy changed to require a delegation the images lack denies, naming that delegation', async () => {
    fake.update('trustpolicies', {
      metadata: { name: 'payments-images', namespace: NAMESPACE },
      spec: { ...spec, delegations: { roles: ['targets/releases', 'targets/qa'] } },
    });
    await observed(2);
    const res = await mutate(review());
    expect(res.response.allowed).to.equal(false);
    const lines: string[] = res.response.status.message.split('\n');
    expect(lines).to.have.length(3);
    const api = lines.find((l) => l.includes(`container "api" image "${images[0]}"`));
    expect(api).to.include(`TrustPolicy ${NAMESPACE}/payments-images`).and.include('targets/qa').and.include(`server ${stack.notaryUrl}`);
  });

  it('changed back, admits again', async () => {
    fake.update('trustpolicies', { metadata: { name: 'payments-images', namespace: NAMESPACE }, spec });
    await observed(3);
    const res = await mutate(review());
    expect(res.response.allowed, res.response.status?.message).to.equal(true);
  });

  it('the policy deleted, denies again', async () => {
    fake.delete('trustpolicies', 'payments-images', NAMESPACE);
    await eventually('the webhook to drop the policy', () => logged('policy-removed', (l) => l['name'] === 'payments-images'));
    const res = await mutate(review());
    expect(res.response.allowed).to.equal(false);
    expect(res.response.status.message).to.include('no TrustPolicy or ClusterTrustPolicy matches');
  });

  it('an edit that breaks the policy fails closed, says so in its status, and is logged as a problem', async () => {
    fake.create('trustpolicies', { metadata: { name: 'payments-images', namespace: NAMESPACE }, spec });
    await observed(1);
    expect((await mutate(review())).response.allowed).to.equal(true);

    fake.update('trustpolicies', { metadata: { name: 'payments-images', namespace: NAMESPACE }, spec: { ...spec, root: { keys: ['not a key'], threshold: 1 } } });
    const obj = await observed(2);
    const ready = ((obj.status as { conditions?: Array<{ type: string; status: string; message?: string }> }).conditions ?? []).find((c) => c.type === 'Ready');
    expect(ready?.status).to.equal('False');
    expect(ready?.message).to.include('root');
    const res = await mutate(review());
    expect(res.response.allowed, 'the old version of the policy no longer applies').to.equal(false);
    expect(res.response.status.message).to.include(`TrustPolicy ${NAMESPACE}/payments-images: the policy is invalid and it covers this image`).and.include('spec.root.keys[0]');
    const line = await eventually('the invalid policy in the log', () => logged('policy-invalid', (l) => l['name'] === 'payments-images'));
    // An operator filtering for warnings must see a policy the webhook refused.
    expect(['warn', 'error'], JSON.stringify(line)).to.include(line.level);
  });
});
