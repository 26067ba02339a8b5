// trustgate serve, end to end: AdmissionReviews shaped like kube-apiserver's, over HTTPS,
// to a webhook started with its real flags, verifying images pushed to the local registry
// and signed with the notary CLI on the real notary-server. Every digest a pin must carry is
// the one `notary lookup` reports, never one this test computed.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runServe, type ServeHandle } from '../../webhook/src/cli/serve.js';
import { silentLogger } from '../../webhook/src/admission/types.js';
import { applyPatch, at, decodePatch } from '../fixtures/admission/support.js';
import { clockAheadVerifier } from '../support/e2e-clock.js';
import { policyYaml } from '../support/e2e-policies.js';
import {
  admit,
  getText,
  metricValue,
  reviewFrom,
  spawnWebhook,
  startStallingServer,
  stopPid,
  type LogLine,
  type StallingServer,
  type WebhookProcess,
} from '../support/e2e-webhook.js';
import { goTime, republishDelegation } from '../support/publish.js';
import {
  fetchTufJson,
  makeEcdsaCert,
  notaryLookup,
  notaryOk,
  pushImage,
  rootPublicKeyPem,
  startStack,
  type SignedTarget,
  type Stack,
} from '../support/stack.js';

const ANNOTATION = 'trustgate.dev/original-images';
// Image fields of the Pod fixtures (pod-create.json: api, proxy / migrate).
const API = '/spec/containers/0/image';
const PROXY = '/spec/containers/1/image';
const MIGRATE = '/spec/initContainers/0/image';
const DEBUGGER = '/spec/ephemeralContainers/0/image';
const TEMPLATE_API = '/spec/template/spec/containers/0/image';
const TEMPLATE_PROXY = '/spec/template/spec/containers/1/image';
const TEMPLATE_MIGRATE = '/spec/template/spec/initContainers/0/image';
const WORKER = '/spec/containers/0/image';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('integration: trustgate serve end to end against the real Notary stack', function () {
  this.timeout(60_000);

  let stack: Stack;
  let host: string;
  let policyDir: string;
  let tlsArgs: string[];
  let rootPem: string;
  /** Signed image references (name:tag) by role in the tests. */
  let img: { app: string; proxy: string; migrate: string; debug: string; unsigned: string; stale: string; foreign: string; warn: string; audit: string; stall: string };
  let appGun: string;
  let unsignedPushed: SignedTarget;
  let staleExpires: string;
  let stall: StallingServer;
  let webhook: WebhookProcess;
  const started: WebhookProcess[] = [];

  async function serve(args: string[] = [], env: Record<string, string> = {}): Promise<WebhookProcess> {
    const w = await spawnWebhook(['--policy-dir', policyDir, '--port', '0', '--host', '127.0.0.1', ...tlsArgs, ...args], env);
    started.push(w);
    return w;
  }

  const mutate = (w: WebhookProcess, review: unknown) => admit(w.port, '/mutate', review, stack.caPem);
  const validate = (w: WebhookProcess, review: unknown) => admit(w.port, '/validate', review, stack.caPem);
  const metrics = async (w: WebhookProcess) => (await getText(w.port, '/metrics', stack.caPem)).body;

  /** Pushes an image and signs its tag into `role` of `gun` (already initialised), then publishes. */
  async function sign(repo: string, tag: string, content: string, role = 'targets', trustDir?: string): Promise<string> {
    const gun = `${host}/${repo}`;
    const pushed = await pushImage(stack, repo, tag, content);
    const args = ['addhash', gun, tag, String(pushed.size), '--sha256', pushed.digest.slice('sha256:'.length)];
    if (role !== 'targets') args.push('--roles', role);
    const opts = trustDir ? { trustDir } : {};
    await notaryOk(stack, args, opts);
    await notaryOk(stack, ['publish', gun], opts);
    return `${gun}:${tag}`;
  }

  async function signedDigestOf(ref: string): Promise<string> {
    const i = ref.lastIndexOf(':');
    const found = await notaryLookup(stack, ref.slice(0, i), ref.slice(i + 1));
    if (!found) throw new Error(`notary lookup finds no ${ref}`);
    return found.digest;
  }

  async function withReleases(repo: string, work: string): Promise<string> {
    const gun = `${host}/${repo}`;
    await notaryOk(stack, ['init', '-p', gun]);
    const key = makeEcdsaCert(work, repo.replace(/\//g, '-'));
    await notaryOk(stack, ['delegation', 'add', gun, 'targets/releases', key.publicFile, '--all-paths']);
    await notaryOk(stack, ['key', 'import', key.keyFile, '--role', 'targets/releases']);
    await notaryOk(stack, ['publish', gun]);
    return key.keyFile;
  }

  before(async function () {
    this.timeout(120_000);
    stack = await startStack();
    host = stack.registryHost;
    const work = mkdtempSync(join(stack.dir, 'e2e-'));
    tlsArgs = ['--tls-cert', join(stack.dir, 'pki', 'notary-server.crt'), '--tls-key', join(stack.dir, 'pki', 'notary-server.key')];

    // First the delegation that must lapse, since only wall-clock time can expire it: the
    // server refuses a file that is already expired, so it is published a few seconds ahead.
    const staleKey = await withReleases('e2e/stale', work);
    const stale = await sign('e2e/stale', 'v1', 'stale v1', 'targets/releases');
    // A snapshot key on the server lets a lone delegation file be published (as a signer would).
    await notaryOk(stack, ['key', 'rotate', `${host}/e2e/stale`, 'snapshot', '-r']);
    const lapse = new Date(Date.now() + 3000);
    await republishDelegation(stack, `${host}/e2e/stale`, 'targets/releases', staleKey, lapse);
    // The server keeps the text it was given, written as Go writes times (no trailing zeros).
    staleExpires = goTime(lapse);

    appGun = `${host}/e2e/app`;
    await withReleases('e2e/app', work);
    const app = await sign('e2e/app', 'v1', 'app v1', 'targets/releases');
    unsignedPushed = await pushImage(stack, 'e2e/app', 'v2', 'app v2, never signed');
    for (const repo of ['e2e/proxy', 'e2e/migrate', 'e2e/debug', 'warn/app', 'audit/app']) await notaryOk(stack, ['init', '-p', `${host}/${repo}`]);
    const proxy = await sign('e2e/proxy', '1.25', 'proxy 1.25');
    const migrate = await sign('e2e/migrate', '1.0', 'migrate 1.0');
    const debug = await sign('e2e/debug', '1.36', 'debug 1.36');
    await pushImage(stack, 'warn/app', '1.0', 'warn app, unsigned');
    await pushImage(stack, 'audit/app', '1.0', 'audit app, unsigned');

    // A repository whose root key is not the one pinned: another trust dir, another root.
    const otherTrust = join(work, 'other-trust');
    mkdirSync(otherTrust);
    await notaryOk(stack, ['init', '-p', `${host}/e2e/foreign`], { trustDir: otherTrust });
    const foreign = await sign('e2e/foreign', 'v1', 'foreign v1', 'targets', otherTrust);

    img = {
      app,
      proxy,
      migrate,
      debug,
      unsigned: `${appGun}:v2`,
      stale,
      foreign,
      warn: `${host}/warn/app:1.0`,
      audit: `${host}/audit/app:1.0`,
      stall: `${host}/stall/app:1.0`,
    };

    rootPem = await rootPublicKeyPem(stack, appGun);
    stall = await startStallingServer(join(stack.dir, 'pki', 'notary-server.crt'), join(stack.dir, 'pki', 'notary-server.key'));
    policyDir = join(work, 'policies');
    mkdirSync(policyDir);
    const common = { server: stack.notaryUrl, caPem: stack.caPem, rootPems: [rootPem] };
    const files: Record<string, Parameters<typeof policyYaml>[0]> = {
      'enforce.yaml': { kind: 'ClusterTrustPolicy', name: 'e2e-enforce', images: [`${host}/e2e/**`], ...common },
      'warn.yaml': { kind: 'ClusterTrustPolicy', name: 'e2e-warn', images: [`${host}/warn/**`], mode: 'warn', ...common },
      'audit.yaml': { kind: 'ClusterTrustPolicy', name: 'e2e-audit', images: [`${host}/audit/**`], mode: 'audit', ...common },
      // A team policy that would only warn about the very images the cluster policy enforces.
      'loose.yaml': { kind: 'TrustPolicy', name: 'loose', namespace: 'loose-team', images: [`${host}/e2e/**`], mode: 'warn', ...common },
      'stall.yaml': { kind: 'ClusterTrustPolicy', name: 'e2e-stall', images: [`${host}/stall/**`], ...common, server: stall.url },
    };
    for (const [file, p] of Object.entries(files)) writeFileSync(join(policyDir, file), policyYaml(p));

    // Trust data, once verified, stays warm for the whole file (the metrics test counts cache hits).
    webhook = await serve([], { TRUSTGATE_REFRESH_SECONDS: '600' });
    // The lapsed delegation must really have lapsed before any test looks at it.
    const wait = lapse.getTime() + 500 - Date.now();
    if (wait > 0) await sleep(wait);
  });

  after(async () => {
    for (const w of started) await w.stop();
    await stall?.close();
    await stack?.stop();
  });

  describe('while the trust server is up', () => {
    let pinnedPod: any;
    let deadlineMessage: string | undefined;

    it('reports ready once the policy directory is loaded, and healthy', async () => {
      expect(await getText(webhook.port, '/readyz', stack.caPem)).to.deep.equal({ status: 200, body: 'ok\n' });
      expect((await getText(webhook.port, '/healthz', stack.caPem)).status).to.equal(200);
      const events = webhook.logs().filter((l) => l.msg === 'policy source');
      const loaded = events.filter((l) => l['event'] === 'policy-file-loaded').map((l) => String(l['file']).split('/').pop());
      expect(loaded.sort(), 'every policy file loaded').to.deep.equal(['audit.yaml', 'enforce.yaml', 'loose.yaml', 'stall.yaml', 'warn.yaml']);
      expect(events.filter((l) => l['event'] !== 'policy-file-loaded'), 'no policy problems').to.deep.equal([]);
    });

    it('pins every signed image of a Pod CREATE to the digest notary lookup reports, keeping the originals in an annotation', async () => {
      const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const res = await mutate(webhook, review);
      expect(res.review).to.include({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
      expect(res.response.uid).to.equal(review.request.uid);
      expect(res.response.allowed).to.equal(true);
      expect(res.response.patchType).to.equal('JSONPatch');
      expect(res.response.warnings ?? []).to.deep.equal([]);
      const patched = applyPatch(review.request.object, decodePatch(res.response.patch));
      for (const [pointer, ref] of [[API, img.app], [PROXY, img.proxy], [MIGRATE, img.migrate]] as const) {
        expect(at(patched, pointer), pointer).to.equal(`${ref}@${await signedDigestOf(ref)}`);
      }
      const recorded = JSON.parse(String(at(patched, `/metadata/annotations/${ANNOTATION.replace('/', '~1')}`)));
      expect(recorded).to.deep.equal({ [API]: img.app, [MIGRATE]: img.migrate, [PROXY]: img.proxy });
      // Nothing else moved: the patch touches the three images and adds one annotation.
      const back = structuredClone(patched);
      for (const [pointer, ref] of [[API, img.app], [PROXY, img.proxy], [MIGRATE, img.migrate]] as const) {
        const [list, i] = pointer.split('/').slice(2, 4) as [string, string];
        back.spec[list][Number(i)].image = ref;
      }
      delete back.metadata.annotations[ANNOTATION];
      expect(back).to.deep.equal(review.request.object);
      pinnedPod = patched;
    });

    it('answers a re-invocation on the pinned Pod with no patch, on both webhooks', async () => {
      expect(pinnedPod, 'set by the pinning test').to.be.an('object');
      const review = reviewFrom('pod-create.json');
      review.request.object = pinnedPod;
      const res = await mutate(webhook, review);
      expect(res.response).to.deep.equal({ uid: review.request.uid, allowed: true });
      const checked = await validate(webhook, { ...review, request: { ...review.request, uid: 'validate-' + review.request.uid } });
      expect(checked.response).to.deep.equal({ uid: 'validate-' + review.request.uid, allowed: true });
    });

    it('on UPDATE checks and pins only the images new in it', async () => {
      // The old pod runs an unsigned proxy (admitted before any policy existed); the update changes only api.
      const review = reviewFrom('pod-update.json', {
        images: { [API]: img.app, [PROXY]: img.unsigned, [MIGRATE]: img.migrate },
        oldImages: { [API]: img.proxy, [PROXY]: img.unsigned, [MIGRATE]: img.migrate },
      });
      const res = await mutate(webhook, review);
      expect(res.response.allowed, res.response.status?.message).to.equal(true);
      const ops = decodePatch(res.response.patch);
      const patched = applyPatch(review.request.object, ops);
      expect(at(patched, API)).to.equal(`${img.app}@${await signedDigestOf(img.app)}`);
      expect(at(patched, PROXY)).to.equal(img.unsigned);
      expect(at(patched, MIGRATE)).to.equal(img.migrate);
      expect(ops.map((o) => o.path).filter((p) => p.startsWith('/spec'))).to.deep.equal([API]);
    });

    it('denies an unsigned image with one line naming the container, image, policy, role and trust server', async () => {
      const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.unsigned, [MIGRATE]: img.migrate } });
      for (const send of [mutate, validate]) {
        const res = await send(webhook, review);
        expect(res.response.uid).to.equal(review.request.uid);
        expect(res.response.allowed).to.equal(false);
        expect(res.response.patch).to.equal(undefined);
        expect(res.response.status).to.include({ code: 403 });
        const message: string = res.response.status.message;
        expect(message.split('\n'), message).to.have.length(1);
        expect(message)
          .to.include(`container "proxy" image "${img.unsigned}"`)
          .and.include('ClusterTrustPolicy e2e-enforce')
          .and.include('role targets')
          .and.include(`server ${stack.notaryUrl}`)
          .and.include('"v2" is not signed');
      }
    });

    it('denies a tag whose targets/releases delegation the server serves expired', async () => {
      const served = await fetchTufJson(stack, `${host}/e2e/stale`, 'targets/releases.json');
      expect(served.signed.expires, 'the server serves the lapsed delegation').to.equal(staleExpires);
      expect(new Date(served.signed.expires).getTime()).to.be.below(Date.now());
      const review = reviewFrom('pod-create.json', { images: { [API]: img.stale, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const res = await mutate(webhook, review);
      expect(res.response.allowed).to.equal(false);
      expect(res.response.status.message)
        .to.include(`container "api" image "${img.stale}"`)
        .and.include('role targets/releases')
        .and.include(`expired at ${staleExpires}`)
        .and.include(`server ${stack.notaryUrl}`);
    });

    it('denies once the timestamp has expired by the webhook clock, and not a minute before', async () => {
      // Each repository has its own timestamp; the clock is put just before the first expiry and just after the last.
      const refs = [img.app, img.proxy, img.migrate];
      const expiresText = new Map<string, string>();
      for (const ref of refs) expiresText.set(ref, (await fetchTufJson(stack, ref.slice(0, ref.lastIndexOf(':')), 'timestamp.json')).signed.expires);
      const times = [...expiresText.values()].map((t) => new Date(t).getTime());
      const answers: Record<string, any> = {};
      for (const [label, at] of [['before', Math.min(...times) - 60_000], ['after', Math.max(...times) + 60_000]] as const) {
        let handle: ServeHandle | undefined;
        try {
          handle = await runServe(['--policy-dir', policyDir, '--port', '0', '--host', '127.0.0.1', ...tlsArgs], {
            createVerifier: clockAheadVerifier(at - Date.now()),
            log: silentLogger,
            print: () => undefined,
          });
          const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
          answers[label] = (await admit(handle.port, '/mutate', review, stack.caPem)).response;
        } finally {
          await handle?.close();
        }
      }
      expect(answers['before'].allowed, answers['before'].status?.message).to.equal(true);
      expect(answers['after'].allowed).to.equal(false);
      const lines: string[] = answers['after'].status.message.split('\n');
      expect(lines, 'one line per image, all three stale').to.have.length(3);
      for (const ref of refs) {
        const line = lines.find((l) => l.includes(`image "${ref}"`));
        expect(line, ref).to.include('role timestamp').and.include(`expired at ${expiresText.get(ref)}`).and.include(`server ${stack.notaryUrl}`);
      }
    });

    it('denies a repository whose root is not the pinned root', async () => {
      expect(await notaryLookup(stack, `${host}/e2e/foreign`, 'v1'), 'the repository itself is validly signed').to.not.equal(null);
      const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.foreign, [MIGRATE]: img.migrate } });
      const res = await mutate(webhook, review);
      expect(res.response.allowed).to.equal(false);
      expect(res.response.status.message)
        .to.include(`container "proxy" image "${img.foreign}"`)
        .and.include('role root')
        .and.include('none of the pinned keys is a root key');
    });

    it('admits an image by a signed digest unchanged, and denies a digest that is not a signed target, bare or after a tag', async () => {
      const signed = await signedDigestOf(img.app);
      const byDigest = `${appGun}@${signed}`;
      const review = reviewFrom('pod-create.json', { images: { [API]: byDigest, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const ok = await mutate(webhook, review);
      expect(ok.response.allowed, ok.response.status?.message).to.equal(true);
      const ops = decodePatch(ok.response.patch);
      expect(ops.map((o) => o.path), 'a digest reference is already immutable').to.not.include(API);
      expect(at(applyPatch(review.request.object, ops), API)).to.equal(byDigest);

      const bare = `${appGun}@${unsignedPushed.digest}`;
      const res1 = await mutate(webhook, reviewFrom('pod-create.json', { images: { [API]: bare, [PROXY]: img.proxy, [MIGRATE]: img.migrate } }));
      expect(res1.response.allowed).to.equal(false);
      expect(res1.response.status.message).to.include(`container "api" image "${bare}"`).and.include(unsignedPushed.digest).and.include('ClusterTrustPolicy e2e-enforce');

      const swapped = `${img.app}@${unsignedPushed.digest}`;
      const res2 = await mutate(webhook, reviewFrom('pod-create.json', { images: { [API]: swapped, [PROXY]: img.proxy, [MIGRATE]: img.migrate } }));
      expect(res2.response.allowed).to.equal(false);
      expect(res2.response.status.message)
        .to.include(`container "api" image "${swapped}"`)
        .and.include(`as ${signed}, not ${unsignedPushed.digest}`)
        .and.include('role targets/releases');
    });

    it('checks init containers', async () => {
      const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.unsigned } });
      const res = await mutate(webhook, review);
      expect(res.response.allowed).to.equal(false);
      expect(res.response.status.message).to.include(`initContainer "migrate" image "${img.unsigned}"`).and.include('not signed');
    });

    it('checks ephemeral containers added through pods/ephemeralcontainers, pinning only the new one', async () => {
      const running = {
        [API]: `${img.app}@${await signedDigestOf(img.app)}`,
        [PROXY]: `${img.proxy}@${await signedDigestOf(img.proxy)}`,
        [MIGRATE]: `${img.migrate}@${await signedDigestOf(img.migrate)}`,
      };
      const ok = reviewFrom('pod-ephemeralcontainers.json', { images: { ...running, [DEBUGGER]: img.debug }, oldImages: running });
      expect(ok.request.subResource).to.equal('ephemeralcontainers');
      const res = await mutate(webhook, ok);
      expect(res.response.allowed, res.response.status?.message).to.equal(true);
      const ops = decodePatch(res.response.patch);
      expect(ops.filter((o) => o.path.startsWith('/spec')).map((o) => o.path)).to.deep.equal([DEBUGGER]);
      expect(at(applyPatch(ok.request.object, ops), DEBUGGER)).to.equal(`${img.debug}@${await signedDigestOf(img.debug)}`);

      const bad = reviewFrom('pod-ephemeralcontainers.json', { images: { ...running, [DEBUGGER]: img.unsigned }, oldImages: running });
      for (const send of [mutate, validate]) {
        const denied = await send(webhook, bad);
        expect(denied.response.allowed).to.equal(false);
        expect(denied.response.status.message.split('\n')).to.have.length(1);
        expect(denied.response.status.message).to.include(`ephemeralContainer "debugger-8xk2p" image "${img.unsigned}"`);
      }
    });

    it('warn mode: allows, says why in warnings, and pins only what verified', async () => {
      const review = reviewFrom('pod-create.json', { images: { [API]: img.warn, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const res = await mutate(webhook, review);
      expect(res.response.allowed).to.equal(true);
      expect(res.response.status).to.equal(undefined);
      expect(res.response.warnings).to.have.length(1);
      expect(res.response.warnings[0]).to.match(new RegExp(`^trustgate: ${img.warn.replace(/[.]/g, '\\.')}: .*not signed`));
      expect(res.response.auditAnnotations).to.equal(undefined);
      const patched = applyPatch(review.request.object, decodePatch(res.response.patch));
      expect(at(patched, API)).to.equal(img.warn);
      expect(at(patched, PROXY)).to.equal(`${img.proxy}@${await signedDigestOf(img.proxy)}`);
    });

    it('audit mode: allows, records the failure in auditAnnotations, a log line and the metrics', async () => {
      const before = metricValue(await metrics(webhook), 'trustgate_admissions_total', { operation: 'CREATE', result: 'allowed', mode: 'audit', webhook: 'mutate' });
      const review = reviewFrom('pod-create.json', { images: { [API]: img.audit, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const res = await mutate(webhook, review);
      expect(res.response.allowed).to.equal(true);
      expect(res.response.warnings).to.equal(undefined);
      const values = Object.values(res.response.auditAnnotations ?? {}) as string[];
      expect(values).to.have.length(1);
      expect(values[0])
        .to.include(`container "api" image "${img.audit}"`)
        .and.include('ClusterTrustPolicy e2e-audit')
        .and.include(`server ${stack.notaryUrl}`)
        .and.include('not signed');
      const after = metricValue(await metrics(webhook), 'trustgate_admissions_total', { operation: 'CREATE', result: 'allowed', mode: 'audit', webhook: 'mutate' });
      expect(after - before).to.equal(1);
      const logged = webhook.logs().filter((l) => l.msg === 'audit-mode policy failure' && l['uid'] === review.request.uid);
      expect(logged).to.have.length(1);
      expect(String(logged[0]!['detail'])).to.equal(values[0]);
    });

    it('a namespace TrustPolicy in warn mode cannot loosen the enforcing ClusterTrustPolicy', async () => {
      const review = reviewFrom('pod-create.json', { namespace: 'loose-team', images: { [API]: img.app, [PROXY]: img.unsigned, [MIGRATE]: img.migrate } });
      const res = await mutate(webhook, review);
      expect(res.response.allowed).to.equal(false);
      expect(res.response.status.message).to.include('ClusterTrustPolicy e2e-enforce').and.not.include('loose-team/loose');
      // The team policy did apply (its warning is there); it just cannot turn a denial into a warning.
      expect(res.response.warnings).to.have.length(1);
      expect(res.response.warnings[0]).to.include(`trustgate: ${img.unsigned}:`);

      // Where both policies accept, both pins agree and the pod goes through.
      const fine = await mutate(webhook, reviewFrom('pod-create.json', { namespace: 'loose-team', images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } }));
      expect(fine.response.allowed, fine.response.status?.message).to.equal(true);
      expect(fine.response.patchType).to.equal('JSONPatch');
    });

    it('validates a Deployment on its pod template without mutating it', async () => {
      const good = reviewFrom('deployment-create.json', { images: { [TEMPLATE_API]: img.app, [TEMPLATE_PROXY]: img.proxy, [TEMPLATE_MIGRATE]: img.migrate } });
      for (const send of [validate, mutate]) {
        const res = await send(webhook, good);
        expect(res.response).to.deep.equal({ uid: good.request.uid, allowed: true });
      }
      const bad = reviewFrom('deployment-create.json', { images: { [TEMPLATE_API]: img.app, [TEMPLATE_PROXY]: img.unsigned, [TEMPLATE_MIGRATE]: img.migrate } });
      const res = await validate(webhook, bad);
      expect(res.response.allowed).to.equal(false);
      expect(res.response.status.message).to.include(`container "proxy" image "${img.unsigned}"`).and.include('ClusterTrustPolicy e2e-enforce');
    });

    it('answers a dryRun request exactly as the same request without dryRun', async () => {
      for (const image of [img.app, img.unsigned]) {
        const dry = reviewFrom('pod-create-dryrun.json', { images: { [WORKER]: image } });
        expect(dry.request.dryRun).to.equal(true);
        const wet = structuredClone(dry);
        wet.request.uid = `wet-${dry.request.uid}`;
        wet.request.dryRun = false;
        delete wet.request.options.dryRun;
        const a = (await mutate(webhook, dry)).response;
        const b = (await mutate(webhook, wet)).response;
        expect({ ...a, uid: 'x' }, image).to.deep.equal({ ...b, uid: 'x' });
        expect(a.allowed).to.equal(image === img.app);
        if (image === img.app) {
          expect(at(applyPatch(dry.request.object, decodePatch(a.patch)), WORKER)).to.equal(`${img.app}@${await signedDigestOf(img.app)}`);
        }
      }
    });

    it('/metrics counts admissions by result and serves warm trust data from the cache', async () => {
      const labels = { operation: 'CREATE', result: 'allowed', mode: 'enforce', webhook: 'mutate' };
      const t0 = await metrics(webhook);
      const review = () => reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      expect((await mutate(webhook, review())).response.allowed).to.equal(true);
      expect((await mutate(webhook, review())).response.allowed).to.equal(true);
      const denied = await mutate(webhook, reviewFrom('pod-create.json', { images: { [API]: img.unsigned, [PROXY]: img.proxy, [MIGRATE]: img.migrate } }));
      expect(denied.response.allowed).to.equal(false);
      const t1 = await metrics(webhook);
      const delta = (name: string, l: Record<string, string> = {}) => metricValue(t1, name, l) - metricValue(t0, name, l);
      expect(delta('trustgate_admissions_total', labels)).to.equal(2);
      expect(delta('trustgate_admissions_total', { ...labels, result: 'denied', mode: 'enforce' })).to.equal(1);
      // Three images per pod, all verified earlier: every check is a cache hit, none a fetch.
      expect(delta('trustgate_cache_hits_total')).to.equal(9);
      expect(delta('trustgate_cache_misses_total')).to.equal(0);
      expect(t1).to.match(/^trustgate_verification_duration_seconds_count \d+$/m);
    });

    it('denies at the deadline when the trust server accepts the connection and never answers', async () => {
      const fast = await serve(['--deadline', '1']);
      const review = reviewFrom('pod-create.json', { images: { [API]: img.stall, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const t0 = performance.now();
      const res = await mutate(fast, review);
      const elapsed = performance.now() - t0;
      expect(stall.accepted(), 'the webhook did reach the stalling server').to.be.at.least(1);
      expect(res.response.uid).to.equal(review.request.uid);
      expect(res.response.allowed).to.equal(false);
      const lines: string[] = res.response.status.message.split('\n');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include(`container "api" image "${img.stall}"`).and.include('did not finish');
      // The 1 s deadline answered, not the 5 s per-request timeout of the trust-server client.
      expect(elapsed).to.be.within(900, 4500);
      deadlineMessage = lines[0]!;
    });

    it('names the policy and the trust server that did not answer in time', () => {
      // Someone reading "did not finish within 1s" needs to know which server to look at.
      expect(deadlineMessage, 'set by the deadline test').to.be.a('string');
      expect(deadlineMessage).to.include('ClusterTrustPolicy e2e-stall').and.include(`server ${stall.url}`);
    });

    it('reports a policy file that does not validate at error level, even under --log-level warn, and denies what it would have covered', async () => {
      const dir = mkdtempSync(join(stack.dir, 'bad-policies-'));
      // No root: a policy that could never verify anything.
      writeFileSync(join(dir, 'broken.yaml'), policyYaml({ kind: 'ClusterTrustPolicy', name: 'broken', images: [`${host}/e2e/**`], server: stack.notaryUrl, rootPems: [] }));
      const quiet = await spawnWebhook(['--policy-dir', dir, '--port', '0', '--host', '127.0.0.1', ...tlsArgs, '--log-level', 'warn']);
      started.push(quiet);
      const res = await mutate(quiet, reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } }));
      expect(res.response.allowed).to.equal(false);
      // Denied by the invalid policy itself, named with why, not as "no policy matches".
      expect(res.response.status.message).to.include('ClusterTrustPolicy broken: the policy is invalid').and.include('spec.root.keys');
      let rejected: LogLine | undefined;
      for (let i = 0; i < 40 && !rejected; i++) {
        rejected = quiet.logs().find((l) => l['event'] === 'policy-file-rejected');
        if (!rejected) await sleep(50);
      }
      expect(rejected, `the rejected file is logged; got ${JSON.stringify(quiet.logs())}`).to.not.equal(undefined);
      expect(rejected!.level).to.equal('error');
      expect(JSON.stringify(rejected)).to.include('broken.yaml').and.include('root');
    });
  });

  describe('when the trust server goes down', () => {
    let warm: WebhookProcess;
    let pinned: string;

    before(async () => {
      // Refresh on every admission, so the outage is met by a real attempt to reach the server.
      warm = await serve([], { TRUSTGATE_REFRESH_SECONDS: '0' });
      const res = await mutate(warm, reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } }));
      expect(res.response.allowed, res.response.status?.message).to.equal(true);
      pinned = `${img.app}@${await signedDigestOf(img.app)}`;
      const pid = Number(readFileSync(join(stack.runDir, 'notary-server.pid'), 'utf8').trim());
      await stopPid(pid, `${stack.dir}/`);
    });

    it('a warm cache keeps admitting from verified data, and counts the failed refresh', async () => {
      for (const w of [warm, webhook]) {
        const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
        const res = await mutate(w, review);
        expect(res.response.allowed, res.response.status?.message).to.equal(true);
        expect(at(applyPatch(review.request.object, decodePatch(res.response.patch)), API)).to.equal(pinned);
      }
      const text = await metrics(warm);
      expect(metricValue(text, 'trustgate_trust_server_errors_total', { server: stack.notaryUrl, kind: 'unreachable' })).to.be.at.least(1);
    });

    it('a cold cache denies, naming the unreachable server', async () => {
      const cold = await serve();
      const review = reviewFrom('pod-create.json', { images: { [API]: img.app, [PROXY]: img.proxy, [MIGRATE]: img.migrate } });
      const res = await mutate(cold, review);
      expect(res.response.allowed).to.equal(false);
      const lines: string[] = res.response.status.message.split('\n');
      expect(lines).to.have.length(3);
      for (const line of lines) expect(line).to.include(`server ${stack.notaryUrl}`).and.include('connection refused');
      expect(lines[0]).to.include(`container "api" image "${img.app}"`);
    });
  });
});
