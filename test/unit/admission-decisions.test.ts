// From verdicts to decisions: enforce denies with one line per image, warn warns, audit
// annotates, the deadline denies what is unfinished, and what is not ours passes quickly.
import { expect } from 'chai';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import type { AdmissionMetrics } from '../../webhook/src/admission/types.js';
import type { ImageVerdict } from '../../webhook/src/verify/types.js';
import { captureLogger, failed, failure, fixture, never, signed, TableVerifier } from '../fixtures/admission/support.js';

const API = 'registry.example.com/payments/api:1.4.2';
const MIGRATE = 'registry.example.com/payments/migrate:1.4.2';
const NGINX = 'nginx:1.25';

function handler(table: ConstructorParameters<typeof TableVerifier>[0], opts: { mutate?: boolean; deadlineMs?: number; metrics?: AdmissionMetrics } = {}) {
  const verifier = new TableVerifier(table);
  const log = captureLogger();
  const handle = createAdmissionHandler({ verifier, mutate: opts.mutate ?? false, deadlineMs: opts.deadlineMs ?? 5000, log, ...(opts.metrics ? { metrics: opts.metrics } : {}) });
  return { verifier, log, handle };
}

describe('admission: decisions', () => {
  describe('enforce', () => {
    it('denies with 403 and one line per failing image naming container, image, policy, role, server and reason', async () => {
      const { handle } = handler({
        [API]: failed(API, failure('enforce', 'the timestamp metadata expired at 2026-11-20T00:00:00Z; the publisher must re-sign', { role: 'timestamp' })),
        [MIGRATE]: failed(MIGRATE, failure('enforce', 'tag "1.4.2" is not signed by targets/releases', { policy: { kind: 'ClusterTrustPolicy', name: 'all-images' }, server: 'https://notary.internal:4443' })),
      });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status).to.include({ code: 403, reason: 'Forbidden' });
      const lines = out.response.status!.message.split('\n');
      expect(lines).to.deep.equal([
        'container "api" image "registry.example.com/payments/api:1.4.2": TrustPolicy payments/payments, role timestamp, server https://notary.example.com:4443: the timestamp metadata expired at 2026-11-20T00:00:00Z; the publisher must re-sign',
        'initContainer "migrate" image "registry.example.com/payments/migrate:1.4.2": ClusterTrustPolicy all-images, role targets/releases, server https://notary.internal:4443: tag "1.4.2" is not signed by targets/releases',
      ]);
      expect(out.response.patch).to.equal(undefined);
    });

    it('names no policy for a failure that no policy raised (nothing matched the image)', async () => {
      const noPolicy = failure('enforce', 'no TrustPolicy or ClusterTrustPolicy matches docker.io/library/nginx:1.25', {
        policy: { kind: 'ClusterTrustPolicy', name: '(none)' },
        code: 'no-policy',
        role: undefined,
        server: undefined,
      });
      const { handle } = handler({ [NGINX]: failed(NGINX, noPolicy) });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.status!.message).to.equal('container "proxy" image "nginx:1.25": no TrustPolicy or ClusterTrustPolicy matches docker.io/library/nginx:1.25');
    });

    it('joins several enforce failures of one image into its one line', async () => {
      const { handle } = handler({
        [NGINX]: failed(NGINX, failure('enforce', 'first reason'), failure('enforce', 'second reason', { policy: { kind: 'ClusterTrustPolicy', name: 'base' }, role: 'targets' })),
      });
      const out = await handle(fixture('pod-create.json'));
      const lines = out.response.status!.message.split('\n');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.contain('first reason').and.contain('ClusterTrustPolicy base, role targets').and.contain('second reason');
    });

    it('lists every container that runs a denied image on its one line', async () => {
      const { handle } = handler({ [NGINX]: failed(NGINX, failure('enforce', 'unsigned')) });
      const review = fixture('pod-create.json');
      review.request.object.spec.initContainers[0].image = NGINX;
      const out = await handle(review);
      expect(out.response.status!.message).to.match(/^container "proxy", initContainer "migrate" image "nginx:1.25": /);
    });

    it('denies a verdict with allowed=false even without failures, saying so', async () => {
      const v: ImageVerdict = { ...signed(NGINX), allowed: false, failures: [] };
      const { handle } = handler({ [NGINX]: v });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.equal('container "proxy" image "nginx:1.25": the verifier did not allow this image and gave no reason');
    });

    it('denies an image whose enforce failure sits next to allowed=true (the failures decide)', async () => {
      const { handle } = handler({ [NGINX]: { ...failed(NGINX, failure('enforce', 'bad')), allowed: true } });
      expect((await handle(fixture('pod-create.json'))).response.allowed).to.equal(false);
    });

    it('fails closed when the verifier throws or returns garbage', async () => {
      const { handle } = handler({
        [NGINX]: async () => {
          throw new Error('engine exploded');
        },
        [API]: async () => ({ nonsense: true }) as unknown as ImageVerdict,
        [MIGRATE]: async () => signed('registry.example.com/other/thing:1'),
      });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      const msg = out.response.status!.message;
      expect(msg).to.contain('image "nginx:1.25": verification failed: engine exploded');
      expect(msg).to.contain('image "registry.example.com/payments/api:1.4.2": the verifier returned a malformed verdict');
      expect(msg).to.contain('image "registry.example.com/payments/migrate:1.4.2": the verifier answered for "registry.example.com/other/thing:1" instead');
    });
  });

  describe('warn and audit', () => {
    it('allows with warnings for warn-mode failures, whole: never cut mid-word (the API server applies its own limits)', async () => {
      const long = 'the snapshot metadata is older than maxMetadataAge 24h; '.repeat(5);
      const { handle } = handler({ [NGINX]: failed(NGINX, failure('warn', long)) }, { mutate: true });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(true);
      expect(out.response.warnings).to.have.length(1);
      expect(out.response.warnings![0]).to.equal(`trustgate: nginx:1.25: ${long}`);
      // The other images were signed and still get pinned; the warned one has no pin to offer.
      expect(out.response.patch).to.be.a('string');
      expect(Buffer.from(out.response.patch!, 'base64').toString()).not.to.contain('/spec/containers/1/image');
    });

    it('allows with audit annotations and a log line for audit-mode failures', async () => {
      const { handle, log } = handler({
        [NGINX]: failed(NGINX, failure('audit', 'tag "1.25" is not signed', { code: 'unsigned' })),
        [API]: failed(API, failure('audit', 'metadata expired')),
      });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(true);
      expect(out.response.warnings).to.equal(undefined);
      const ann = out.response.auditAnnotations!;
      // No '/' in keys: the API server prefixes them with the webhook name.
      expect(Object.keys(ann).sort()).to.deep.equal(['audit-1', 'audit-2']);
      const values = Object.values(ann).join('\n');
      expect(values).to.contain('container "api" image "registry.example.com/payments/api:1.4.2": TrustPolicy payments/payments, role targets/releases, server https://notary.example.com:4443: metadata expired');
      expect(values).to.contain('container "proxy" image "nginx:1.25"');
      for (const v of Object.values(ann)) expect(v.length).to.be.at.most(400);
      expect(log.lines.filter((l) => l.msg === 'audit-mode policy failure')).to.have.length(2);
    });

    it('keeps warnings and audit annotations on a denial too', async () => {
      const { handle } = handler({
        [NGINX]: failed(NGINX, failure('enforce', 'unsigned'), failure('warn', 'also stale'), failure('audit', 'also audited')),
      });
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).not.to.contain('also stale');
      expect(out.response.warnings).to.deep.equal(['trustgate: nginx:1.25: also stale']);
      expect(Object.values(out.response.auditAnnotations!)[0]).to.contain('also audited');
    });
  });

  describe('deadline', () => {
    it('denies at the deadline naming the unfinished image, even if the verifier ignores the signal', async () => {
      let seen: AbortSignal | undefined;
      const { handle } = handler(
        {
          [NGINX]: (signal) => {
            seen = signal;
            return never();
          },
        },
        { deadlineMs: 50 },
      );
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.equal('container "proxy" image "nginx:1.25": verification did not finish within 0.05s');
      expect(seen?.aborted).to.equal(true);
    });

    it('takes a tighter per-request budget, never a looser one', async () => {
      const { handle } = handler({ [NGINX]: () => never() }, { deadlineMs: 60 });
      const tight = await handle(fixture('pod-create.json'), undefined, { deadlineMs: 20 });
      expect(tight.response.status!.message).to.contain('verification did not finish within 0.02s');
      const loose = await handle(fixture('pod-create.json'), undefined, { deadlineMs: 60_000 });
      expect(loose.response.status!.message).to.contain('verification did not finish within 0.06s');
    });

    it('ignores a verdict delivered after the deadline, even an allowing one', async () => {
      // A verifier that answers "signed" the moment it is aborted must not win the race.
      const { handle } = handler(
        { [NGINX]: (signal) => new Promise<ImageVerdict>((resolve) => signal.addEventListener('abort', () => resolve(signed(NGINX)))) },
        { deadlineMs: 30 },
      );
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.contain('image "nginx:1.25": verification did not finish within 0.03s');
    });

    it("keeps the verifier's own denial delivered as it gives up at the deadline, naming the policy and server", async () => {
      const timedOut = failed(NGINX, failure('enforce', 'verification did not finish before the deadline', { code: 'timeout', role: undefined, server: 'https://notary.slow:4443' }));
      const { handle } = handler(
        { [NGINX]: (signal) => new Promise<ImageVerdict>((resolve) => signal.addEventListener('abort', () => queueMicrotask(() => resolve(timedOut)))) },
        { deadlineMs: 30 },
      );
      const out = await handle(fixture('pod-create.json'));
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.contain('image "nginx:1.25": TrustPolicy payments/payments, server https://notary.slow:4443: verification did not finish before the deadline');
    });

    it('answers a cancelled request (API server gave up) with a denial', async () => {
      const { handle } = handler({ [NGINX]: () => never() });
      const ac = new AbortController();
      const pending = handle(fixture('pod-create.json'), ac.signal);
      setImmediate(() => ac.abort());
      const out = await pending;
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.contain('cancelled');
    });

    it('starts all distinct images at once', async () => {
      const started: string[] = [];
      const releases: Array<() => void> = [];
      const table: ConstructorParameters<typeof TableVerifier>[0] = {};
      for (const image of [API, NGINX, MIGRATE]) {
        table[image] = () =>
          new Promise<ImageVerdict>((resolve) => {
            started.push(image);
            releases.push(() => resolve(signed(image)));
          });
      }
      const { handle } = handler(table);
      const pending = handle(fixture('pod-create.json'));
      await new Promise((r) => setImmediate(r));
      // None has finished, yet all three are in flight.
      expect(started.sort()).to.deep.equal([API, MIGRATE, NGINX].sort());
      releases.forEach((r) => r());
      expect((await pending).response.allowed).to.equal(true);
    });
  });

  describe('warm verdicts without waiting', () => {
    /** A verifier whose verifyCached knows some images; the rest go through verifyImage. */
    function cachedHandler(cached: Record<string, ImageVerdict | (() => ImageVerdict)>, table: ConstructorParameters<typeof TableVerifier>[0] = {}) {
      const verifier = Object.assign(new TableVerifier(table), {
        cachedCalls: [] as string[],
        verifyCached(image: string): ImageVerdict | undefined {
          this.cachedCalls.push(image);
          const entry = cached[image];
          return typeof entry === 'function' ? entry() : entry;
        },
      });
      const handle = createAdmissionHandler({ verifier, mutate: true, deadlineMs: 5000, log: captureLogger() });
      return { verifier, handle };
    }

    it('uses warm verdicts as they are and waits only for the others', async () => {
      const { verifier, handle } = cachedHandler({ [API]: signed(API), [NGINX]: failed(NGINX, failure('enforce', 'tag "1.25" is not signed')) });
      const out = await handle(fixture('pod-create.json'));
      expect(verifier.cachedCalls.sort()).to.deep.equal([API, MIGRATE, NGINX].sort());
      expect(verifier.calls.map((c) => c.image)).to.deep.equal([MIGRATE]);
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.equal('container "proxy" image "nginx:1.25": TrustPolicy payments/payments, role targets/releases, server https://notary.example.com:4443: tag "1.25" is not signed');
    });

    it('pins from warm verdicts alone, without calling verifyImage', async () => {
      const { verifier, handle } = cachedHandler({ [API]: signed(API), [NGINX]: signed(NGINX), [MIGRATE]: signed(MIGRATE) });
      const out = await handle(fixture('pod-create.json'));
      expect(verifier.calls).to.deep.equal([]);
      expect(out.response.allowed).to.equal(true);
      expect(out.response.patch).to.be.a('string');
    });

    it('falls back to verifyImage when verifyCached throws, and denies a warm verdict for another image', async () => {
      const { verifier, handle } = cachedHandler({
        [API]: () => {
          throw new Error('cache trouble');
        },
        [NGINX]: signed('nginx:1.26'),
        [MIGRATE]: signed(MIGRATE),
      });
      const out = await handle(fixture('pod-create.json'));
      expect(verifier.calls.map((c) => c.image)).to.deep.equal([API]);
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status!.message).to.equal('container "proxy" image "nginx:1.25": the verifier answered for "nginx:1.26" instead');
    });
  });

  describe('what is not checked', () => {
    it('allows DELETE immediately', async () => {
      const { handle, verifier } = handler({});
      const review = fixture('pod-delete.json');
      expect((await handle(review)).response).to.deep.equal({ uid: review.request.uid, allowed: true });
      expect(verifier.calls).to.have.length(0);
    });

    it('allows CONNECT, other kinds and other Pod subresources immediately', async () => {
      const { handle, verifier } = handler({});
      const connect = fixture('pod-update.json');
      connect.request.operation = 'CONNECT';
      connect.request.kind = { group: '', version: 'v1', kind: 'PodExecOptions' };
      connect.request.subResource = 'exec';
      const cm = fixture('pod-create.json');
      cm.request.kind = { group: '', version: 'v1', kind: 'ConfigMap' };
      cm.request.object = { apiVersion: 'v1', kind: 'ConfigMap', data: { image: 'evil:1' } };
      const status = fixture('pod-update.json');
      status.request.subResource = 'status';
      for (const r of [connect, cm, status]) expect((await handle(r)).response.allowed).to.equal(true);
      expect(verifier.calls).to.have.length(0);
    });

    it('counts decisions in metrics with operation, result and mode', async () => {
      const seen: string[] = [];
      const metrics: AdmissionMetrics = {
        admission: (l) => void seen.push(`${l.webhook} ${l.operation} ${l.result} ${l.mode}`),
        imageVerificationSeconds: () => void seen.push('image'),
      };
      const { handle } = handler({ [NGINX]: failed(NGINX, failure('warn', 'stale')) }, { metrics });
      await handle(fixture('pod-create.json'));
      await handle(fixture('pod-delete.json'));
      expect(seen).to.deep.equal(['image', 'image', 'image', 'validate CREATE allowed warn', 'validate DELETE allowed none']);
    });
  });
});
