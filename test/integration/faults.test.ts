// The webhook in front of a failing trust server: killed mid-run, stalled, resetting or
// closing connections, answering 500, showing a wrong certificate, dribbling bytes. Every
// admission must be answered within its deadline (denied in enforce mode, naming the server),
// the process must keep serving, it must recover when the server does, and verified metadata
// must carry it through an outage until that metadata expires, and not one second longer.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { createVerifier } from '../../webhook/src/cli/serve-command.js';
import { runServe, type ServeHandle } from '../../webhook/src/cli/serve.js';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { podReview, policyManifest, WebhookClient, type ReviewAnswer } from '../fault/admission-client.js';
import { issueServerCert, makeCa, stackCa } from '../fault/certs.js';
import { FaultProxy, type FaultMode } from '../fault/fault-proxy.js';
import { captureRepository, killNotaryServer, republish, restartNotaryServer } from '../fault/notary-process.js';
import { createSignedRepo, pinnedRoot, signTag, type SignedRepo } from '../fault/repos.js';
import { captureLogger } from '../fixtures/admission/support.js';
import { fetchTufJson, startStack, type Stack } from '../support/stack.js';

const DEADLINE_S = 2;
// Room for the answer to travel back and for a loaded CI machine; far below any stall.
const ANSWER_SLACK_MS = 1500;

const FAULTS: ReadonlyArray<{ mode: FaultMode; cause: RegExp }> = [
  { mode: 'stall', cause: /deadline|did not finish|timed out|no complete answer/i },
  { mode: 'reset', cause: /reset|closed|hang up/i },
  { mode: 'close', cause: /closed|reset|hang up/i },
  { mode: 'http500', cause: /HTTP 500/ },
  { mode: 'dribble', cause: /deadline|did not finish|timed out|no complete answer/i },
  { mode: 'wrong-ca', cause: /TLS|certificate/i },
  { mode: 'wrong-host', cause: /TLS|certificate|altnames|host/i },
];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sha256Of(patchB64: string | undefined): string[] {
  if (patchB64 === undefined) return [];
  const ops = JSON.parse(Buffer.from(patchB64, 'base64').toString('utf8')) as Array<{ value?: unknown }>;
  return ops.flatMap((o) => (typeof o.value === 'string' && o.value.includes('@sha256:') ? [o.value.slice(o.value.indexOf('@') + 1)] : []));
}

describe('integration: faults of the trust server', function () {
  this.timeout(240_000);
  let stack: Stack;
  let repo: SignedRepo;
  let coldA: SignedRepo;
  let coldB: SignedRepo;
  let rootPem: string;
  let work: string;
  const proxies = new Map<FaultMode, FaultProxy>();
  let webhook: ServeHandle;
  let client: WebhookClient;
  const log = captureLogger();
  let uid = 0;

  const image = (r: SignedRepo, tag: string) => `${r.gun}:${tag}`;
  const admit = (namespace: string, images: string[]): Promise<ReviewAnswer> =>
    client.post('/mutate', podReview(`uid-${++uid}`, namespace, images));

  function expectAnsweredInTime(a: ReviewAnswer): void {
    expect(a.status, JSON.stringify(a.body)).to.equal(200);
    expect(a.body.response.uid).to.be.a('string');
    expect(a.ms, 'answered within the admission deadline').to.be.below(DEADLINE_S * 1000 + ANSWER_SLACK_MS);
  }

  function expectAllowed(a: ReviewAnswer, digest: string): void {
    expectAnsweredInTime(a);
    expect(a.body.response.allowed, a.body.response.status?.message).to.equal(true);
    expect(sha256Of(a.body.response.patch)).to.deep.equal([digest]);
  }

  async function eventuallyAllowed(namespace: string, img: string, withinMs: number): Promise<ReviewAnswer> {
    const until = Date.now() + withinMs;
    for (;;) {
      const a = await admit(namespace, [img]);
      expectAnsweredInTime(a);
      if (a.body.response.allowed || Date.now() > until) return a;
      await sleep(250);
    }
  }

  function expectDenied(a: ReviewAnswer, server: string, cause: RegExp): void {
    expectAnsweredInTime(a);
    const r = a.body.response;
    expect(r.allowed).to.equal(false);
    expect(r.status.code).to.equal(403);
    expect(r.status.message).to.include(server);
    expect(r.status.message).to.match(cause);
  }

  before(async () => {
    stack = await startStack();
    work = mkdtempSync(join(stack.dir, 'faults-'));
    // One after the other: the first init makes the trust dir's root key, the others reuse it.
    repo = await createSignedRepo(stack, 'faults/app', ['v1']);
    coldA = await createSignedRepo(stack, 'faults/cold-a', ['v1']);
    coldB = await createSignedRepo(stack, 'faults/cold-b', ['v1']);
    rootPem = await pinnedRoot(stack, repo);

    const ca = stackCa(stack.dir);
    const names = ['IP:127.0.0.1', 'DNS:localhost'];
    const certs = {
      good: issueServerCert(ca, work, '127.0.0.1', names),
      wrongCa: issueServerCert(makeCa(work, 'rogue CA'), work, '127.0.0.1', names),
      wrongHost: issueServerCert(ca, work, 'notary.elsewhere.test', ['DNS:notary.elsewhere.test']),
    };
    const upstream = { host: '127.0.0.1', port: Number(new URL(stack.notaryUrl).port) };
    for (const { mode } of FAULTS) {
      proxies.set(mode, await FaultProxy.start({ upstream, upstreamCa: stack.caPem, certs, mode }));
    }

    // One signed repository; each namespace's TrustPolicy reaches it through another server.
    const policyDir = mkdtempSync(join(work, 'policies-'));
    const write = (name: string, namespace: string, url: string) =>
      writeFileSync(
        join(policyDir, `${name}.json`),
        JSON.stringify(policyManifest({ name, namespace, images: [`${stack.registryHost}/faults/**`], url, caBundle: stack.caPem, rootPems: [rootPem] })),
      );
    write('healthy', 'healthy', stack.notaryUrl);
    for (const [mode, proxy] of proxies) write(`fault-${mode}`, `fault-${mode}`, proxy.url);

    webhook = await runServe(
      ['--policy-dir', policyDir, '--port', '0', '--host', '127.0.0.1', '--deadline', String(DEADLINE_S)],
      { createVerifier, log, print: () => undefined, env: { TRUSTGATE_REFRESH_SECONDS: '1' } },
    );
    client = new WebhookClient(webhook.port, readFileSync(webhook.server.certFile, 'utf8'));
  });

  after(async () => {
    client?.close();
    await webhook?.close();
    for (const p of proxies.values()) await p.close();
    await stack?.stop();
  });

  afterEach(() => {
    // Whatever the trust server did, the webhook itself never failed internally.
    const internal = log.lines.filter((l) => l.level === 'error');
    expect(internal, JSON.stringify(internal.slice(0, 3))).to.deep.equal([]);
  });

  it('a healthy trust server: the pod is admitted and pinned to the signed digest', async () => {
    expectAllowed(await admit('healthy', [image(repo, 'v1')]), repo.tags.get('v1')!.digest);
  });

  it('every failing server: denied within the deadline, naming the server and the cause, while the process keeps serving', async () => {
    const started = Date.now();
    const denials = Promise.all(FAULTS.map(({ mode }) => admit(`fault-${mode}`, [image(repo, 'v1')])));
    // While those wait on their servers, other admissions and the health check are answered.
    const during = await admit('healthy', [image(repo, 'v1')]);
    const health = await client.get('/healthz');
    expect(Date.now() - started, 'answered while the failing servers were still being waited on').to.be.below(DEADLINE_S * 1000);
    expectAllowed(during, repo.tags.get('v1')!.digest);
    expect(health.status).to.equal(200);

    const answers = await denials;
    FAULTS.forEach(({ mode, cause }, i) => {
      expectDenied(answers[i]!, proxies.get(mode)!.url, cause);
      expect(proxies.get(mode)!.connections[mode], `${mode} was really reached`).to.be.greaterThan(0);
    });
    // The dribbling server did answer, just too slowly to finish.
    expect(proxies.get('dribble')!.dribbled).to.be.greaterThan(0);
    expect((await client.get('/healthz')).status).to.equal(200);
  });

  it('recovers when each server does', async () => {
    for (const p of proxies.values()) p.setMode('forward');
    const v1 = repo.tags.get('v1')!.digest;
    await Promise.all(
      FAULTS.map(async ({ mode }) => {
        // A request still hanging on the old (stalled) connection must run into its own timeout first.
        expectAllowed(await eventuallyAllowed(`fault-${mode}`, image(repo, 'v1'), 20_000), v1);
      }),
    );
  });

  it('verified metadata keeps serving through every kind of outage', async () => {
    // Every namespace now has verified metadata; break every server and let it go stale.
    for (const { mode } of FAULTS) proxies.get(mode)!.setMode(mode);
    await sleep(1200);
    const v1 = repo.tags.get('v1')!.digest;
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(FAULTS.map(({ mode }) => admit(`fault-${mode}`, [image(repo, 'v1')])));
      answers.forEach((a) => expectAllowed(a, v1));
      await sleep(600);
    }
  });

  it('the real notary-server killed mid-run: answers in time, keeps serving what it verified, and recovers after a restart', async () => {
    for (const p of proxies.values()) p.setMode('forward');
    const v1 = repo.tags.get('v1')!.digest;
    const saved = await Promise.all([repo, coldA, coldB].map((r) => captureRepository(stack, r.gun)));

    // A steady stream of admissions for the verified repository, before, during and after.
    const stream: ReviewAnswer[] = [];
    let streaming = true;
    const streamer = (async () => {
      while (streaming) {
        stream.push(await admit('healthy', [image(repo, 'v1')]));
        await sleep(50);
      }
    })();
    await sleep(300);

    // Cold admissions in flight when the server dies.
    const inFlight = admit('healthy', [image(coldA, 'v1')]);
    const cmdline = await killNotaryServer(stack);
    const during = await inFlight;
    expectAnsweredInTime(during);
    if (during.body.response.allowed) expectAllowed(during, coldA.tags.get('v1')!.digest);
    else expect(during.body.response.status.message).to.include(stack.notaryUrl);

    // Nothing verified yet for this one: denied, naming the dead server.
    expectDenied(await admit('healthy', [image(coldB, 'v1')]), stack.notaryUrl, /refused|reset|unreachable/i);
    // Every proxy namespace passes through to the dead server now; what each verified before
    // the kill still answers once its refresh interval has passed.
    await sleep(1200);
    for (const a of await Promise.all(FAULTS.map(({ mode }) => admit(`fault-${mode}`, [image(repo, 'v1')])))) expectAllowed(a, v1);
    expect((await client.get('/healthz')).status).to.equal(200);

    await restartNotaryServer(stack, cmdline);
    for (const [i, r] of [repo, coldA, coldB].entries()) await republish(stack, r.gun, saved[i]!);
    // A new tag after the restart can only be admitted from fresh metadata.
    const v2 = await signTag(stack, repo, 'v2');
    await sleep(1200);
    streaming = false;
    await streamer;

    expectAllowed(await admit('healthy', [image(coldB, 'v1')]), coldB.tags.get('v1')!.digest);
    // Namespaces whose refreshes failed during the outage retry in the background, so the new
    // tag shows up within a retry period rather than at once.
    for (const namespace of ['healthy', 'fault-reset', 'fault-http500']) {
      expectAllowed(await eventuallyAllowed(namespace, image(repo, 'v2'), 15_000), v2.digest);
    }
    expect(stream.length).to.be.greaterThan(20);
    // Verified v1 metadata carried every one of them through the outage.
    for (const a of stream) expectAllowed(a, v1);
  });

  describe('expiry during an outage (engine with its own clock)', () => {
    it('serves verified metadata until the first role expires, and not one second longer', async () => {
      const proxy = proxies.get('reset')!;
      proxy.setMode('forward');
      // The earliest expiry of what the server signs now: what the cached repository lives by.
      const roles = await Promise.all(['root', 'timestamp', 'snapshot', 'targets'].map((r) => fetchTufJson(stack, repo.gun, `${r}.json`)));
      const expires = Math.min(...roles.map((d) => Date.parse(d.signed.expires)));
      const clock = { now: new Date() };
      const policy: TrustPolicy = {
        kind: 'ClusterTrustPolicy',
        name: 'clocked',
        source: 'test',
        spec: { images: ['**'], trustServer: { url: proxy.url, caBundle: stack.caPem }, root: { keys: [rootPem], threshold: 1 }, mode: 'enforce' },
      };
      const engine = new VerificationEngine({
        policies: { policiesFor: () => [policy] },
        sourceFor: (_p, gun) => new HttpSource({ url: proxy.url, gun, caBundle: stack.caPem, requestTimeoutMs: 1000 }),
        clock: () => clock.now,
        cache: new RepositoryCache({ clock: () => clock.now, refreshIntervalMs: 1000, retryMs: 1000 }),
      });
      const handler = createAdmissionHandler({ verifier: engine, mutate: true, deadlineMs: DEADLINE_S * 1000 });
      const review = (n: number) => handler(podReview(`clock-${n}`, 'default', [image(repo, 'v1')]));
      const v1 = repo.tags.get('v1')!.digest;

      const fresh = await review(0);
      expect(fresh.response.allowed).to.equal(true);
      expect(sha256Of(fresh.response.patch)).to.deep.equal([v1]);

      proxy.setMode('reset');
      const resetsBefore = proxy.connections.reset;
      const at = async (ms: number, n: number) => {
        clock.now = new Date(ms);
        return review(n);
      };
      // Well into the outage, and the last whole second before expiry: still the verified pin.
      for (const [n, t] of [expires - 3_600_000, expires - 1000].entries()) {
        const r = await at(t, n + 1);
        expect(r.response.allowed, `${new Date(t).toISOString()}: ${r.response.status?.message}`).to.equal(true);
        expect(sha256Of(r.response.patch)).to.deep.equal([v1]);
      }
      // The instant it expires, and after: denied, naming the server that could not refresh it.
      for (const [n, t] of [expires, expires + 1000].entries()) {
        const r = await at(t, n + 10);
        expect(r.response.allowed, new Date(t).toISOString()).to.equal(false);
        expect(r.response.status!.message).to.include(proxy.url);
      }
      expect(proxy.connections.reset, 'every answer after the first came from a failed refresh').to.be.greaterThan(resetsBefore);
      proxy.setMode('forward');
    });
  });
});
