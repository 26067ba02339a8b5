// The mutating webhook on Pods: pinning by JSON Patch (applied here with an independent
// RFC 6902 applier), the original-images annotation, idempotence under re-invocation.
import { expect } from 'chai';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { ORIGINAL_IMAGES_ANNOTATION } from '../../webhook/src/admission/patch.js';
import { applyPatch, at, captureLogger, decodePatch, failed, failure, fixture, signed, TableVerifier } from '../fixtures/admission/support.js';

const ANN = ORIGINAL_IMAGES_ANNOTATION;

function mutator(verifier = new TableVerifier()) {
  const log = captureLogger();
  return { verifier, log, handle: createAdmissionHandler({ verifier, mutate: true, deadlineMs: 5000, log }) };
}

/** The Pod as the API server stores it after applying our answer. */
async function admit(handle: ReturnType<typeof mutator>['handle'], review: any) {
  const out = await handle(review);
  const obj = out.response.patch ? applyPatch(review.request.object, decodePatch(out.response.patch)) : review.request.object;
  return { out, obj };
}

function reinvoke(review: any, object: unknown): any {
  const again = structuredClone(review);
  again.request.object = object;
  return again;
}

describe('admission: mutating Pods', () => {
  it('pins every tagged image of a Pod CREATE to its signed digest and records the originals', async () => {
    const { handle, verifier } = mutator();
    const review = fixture('pod-create.json');
    const { out, obj } = await admit(handle, review);

    expect(out.apiVersion).to.equal('admission.k8s.io/v1');
    expect(out.kind).to.equal('AdmissionReview');
    expect(out.response.uid).to.equal(review.request.uid);
    expect(out.response.allowed).to.equal(true);
    expect(out.response.patchType).to.equal('JSONPatch');

    const originals = ['registry.example.com/payments/api:1.4.2', 'nginx:1.25', 'registry.example.com/payments/migrate:1.4.2'];
    expect(obj.spec.containers[0].image).to.equal(signed(originals[0]!).pinned);
    expect(obj.spec.containers[1].image).to.equal(`docker.io/library/nginx:1.25@${signed('nginx:1.25').digest}`);
    expect(obj.spec.initContainers[0].image).to.equal(signed(originals[2]!).pinned);

    expect(JSON.parse(obj.metadata.annotations[ANN])).to.deep.equal({
      '/spec/containers/0/image': originals[0],
      '/spec/containers/1/image': originals[1],
      '/spec/initContainers/0/image': originals[2],
    });
    // Everything else is as it was, including the annotations already there.
    expect(obj.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).to.equal(
      review.request.object.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'],
    );
    const untouched = structuredClone(obj);
    untouched.spec.containers[0].image = review.request.object.spec.containers[0].image;
    untouched.spec.containers[1].image = review.request.object.spec.containers[1].image;
    untouched.spec.initContainers[0].image = review.request.object.spec.initContainers[0].image;
    delete untouched.metadata.annotations[ANN];
    expect(untouched).to.deep.equal(review.request.object);

    expect(verifier.calls.map((c) => c.image).sort()).to.deep.equal([...originals].sort());
    expect(verifier.calls.every((c) => c.namespace === 'payments')).to.equal(true);
  });

  it('escapes the "/" of the annotation key in the patch path', async () => {
    const { handle } = mutator();
    const ops = decodePatch((await handle(fixture('pod-create.json'))).response.patch);
    expect(ops.map((o) => o.path)).to.include('/metadata/annotations/trustgate.dev~1original-images');
  });

  it('creates metadata.annotations when the Pod has none (generateName pod, dry run)', async () => {
    const { handle } = mutator();
    const review = fixture('pod-create-dryrun.json');
    expect(review.request.object.metadata.annotations).to.equal(undefined);
    const { out, obj } = await admit(handle, review);
    expect(out.response.allowed).to.equal(true);
    expect(JSON.parse(obj.metadata.annotations[ANN])).to.deep.equal({ '/spec/containers/0/image': 'registry.example.com/payments/worker:2.0' });
    expect(obj.spec.containers[0].image).to.equal(signed('registry.example.com/payments/worker:2.0').pinned);
  });

  it('answers a dry-run request exactly like the real one', async () => {
    const { handle } = mutator();
    const real = fixture('pod-create-dryrun.json');
    real.request.dryRun = false;
    const dry = fixture('pod-create-dryrun.json');
    const a = await handle(real);
    const b = await handle(dry);
    expect(b.response).to.deep.equal(a.response);
  });

  it('is idempotent: re-invoked on its own output it sends no patch and keeps the annotation', async () => {
    const { handle, verifier } = mutator();
    const review = fixture('pod-create.json');
    const first = await admit(handle, review);
    const calls = verifier.calls.length;
    const second = await handle(reinvoke(review, first.obj));
    expect(second.response.allowed).to.equal(true);
    expect(second.response.patch).to.equal(undefined);
    expect(second.response.patchType).to.equal(undefined);
    // Pinned images are verified again (the digest must still be signed), not skipped.
    expect(verifier.calls.length).to.equal(calls + 3);
  });

  it('on re-invocation after another webhook swapped one image, pins only that one and keeps earlier originals', async () => {
    const { handle } = mutator();
    const review = fixture('pod-create.json');
    const first = await admit(handle, review);
    const swapped = structuredClone(first.obj);
    swapped.spec.containers[1].image = 'mirror.example.com/nginx:1.25';
    const { out, obj } = await admit(handle, reinvoke(review, swapped));
    const ops = decodePatch(out.response.patch);
    expect(ops.filter((o) => o.path.startsWith('/spec/'))).to.deep.equal([
      { op: 'replace', path: '/spec/containers/1/image', value: signed('mirror.example.com/nginx:1.25').pinned },
    ]);
    // The entry for /spec/containers/1/image still names what the user asked for.
    expect(JSON.parse(obj.metadata.annotations[ANN])['/spec/containers/1/image']).to.equal('nginx:1.25');
    expect(obj.spec.containers[0].image).to.equal(first.obj.spec.containers[0].image);
  });

  it('leaves images given by verified digest untouched and sends no patch when nothing changes', async () => {
    const { handle } = mutator();
    const review = fixture('pod-create-dryrun.json');
    const pinned = `registry.example.com/payments/worker@sha256:${'ab'.repeat(32)}`;
    review.request.object.spec.containers[0].image = pinned;
    const out = await handle(review);
    expect(out.response.allowed).to.equal(true);
    expect(out.response.patch).to.equal(undefined);
  });

  it('verifies an image used by two containers once and pins both fields', async () => {
    const { handle, verifier } = mutator();
    const review = fixture('pod-create-dryrun.json');
    const c = review.request.object.spec.containers[0];
    review.request.object.spec.containers.push({ ...c, name: 'worker-2' });
    const { obj } = await admit(handle, review);
    expect(verifier.calls.map((x) => x.image)).to.deep.equal(['registry.example.com/payments/worker:2.0']);
    expect(obj.spec.containers[0].image).to.equal(obj.spec.containers[1].image);
    expect(obj.spec.containers[1].image).to.match(/@sha256:/);
  });

  it('does not pin when the verifier offers a pin for a different repository or tag', async () => {
    const image = 'registry.example.com/payments/worker:2.0';
    const bogus = { ...signed(image), pinned: `registry.example.com/evil/worker:2.0@${signed(image).digest}` };
    const { handle } = mutator(new TableVerifier({ [image]: bogus }));
    const out = await handle(fixture('pod-create-dryrun.json'));
    expect(out.response.patch).to.equal(undefined);
  });

  it('does not patch a denied Pod', async () => {
    const image = 'nginx:1.25';
    const { handle } = mutator(new TableVerifier({ [image]: failed(image, failure('enforce', 'tag "1.25" is not signed')) }));
    const out = await handle(fixture('pod-create.json'));
    expect(out.response.allowed).to.equal(false);
    expect(out.response.patch).to.equal(undefined);
  });

  it('pins only the new image of a Pod UPDATE (kubectl set image), leaving unchanged ones as they run', async () => {
    const { handle, verifier } = mutator();
    const review = fixture('pod-update.json');
    const { out, obj } = await admit(handle, review);
    expect(verifier.calls.map((c) => c.image)).to.deep.equal(['registry.example.com/payments/api:1.4.3']);
    expect(out.response.allowed).to.equal(true);
    expect(obj.spec.containers[0].image).to.equal(signed('registry.example.com/payments/api:1.4.3').pinned);
    expect(obj.spec.containers[1].image).to.equal('nginx:1.25');
  });

  it('allows an UPDATE whose images did not change without asking the verifier', async () => {
    const { handle, verifier } = mutator();
    const review = fixture('pod-update.json');
    review.request.object.spec.containers[0].image = review.request.oldObject.spec.containers[0].image;
    review.request.object.metadata.labels = { app: 'payments-api', tier: 'backend' };
    const out = await handle(review);
    expect(out.response).to.deep.equal({ uid: review.request.uid, allowed: true });
    expect(verifier.calls).to.have.length(0);
  });

  it('verifies and pins the image kubectl debug adds through pods/ephemeralcontainers', async () => {
    const { handle, verifier } = mutator();
    const review = fixture('pod-ephemeralcontainers.json');
    const { out, obj } = await admit(handle, review);
    expect(verifier.calls.map((c) => c.image)).to.deep.equal(['busybox:1.36']);
    expect(out.response.allowed).to.equal(true);
    expect(obj.spec.ephemeralContainers[0].image).to.equal(`docker.io/library/busybox:1.36@${signed('busybox:1.36').digest}`);
    expect(JSON.parse(obj.metadata.annotations[ANN])).to.deep.equal({ '/spec/ephemeralContainers/0/image': 'busybox:1.36' });
  });

  it('denies an unsigned debug image', async () => {
    const { handle } = mutator(new TableVerifier({ 'busybox:1.36': failed('busybox:1.36', failure('enforce', 'no trust data for docker.io/library/busybox', { code: 'unsigned', role: 'root' })) }));
    const out = await handle(fixture('pod-ephemeralcontainers.json'));
    expect(out.response.allowed).to.equal(false);
    expect(out.response.status?.message).to.equal(
      'ephemeralContainer "debugger-8xk2p" image "busybox:1.36": TrustPolicy payments/payments, role root, server https://notary.example.com:4443: no trust data for docker.io/library/busybox',
    );
  });

  it('verifies a Deployment on /mutate but never patches it (GitOps tools must see no drift)', async () => {
    const { handle, verifier } = mutator();
    const out = await handle(fixture('deployment-create.json'));
    expect(out.response).to.deep.equal({ uid: fixture('deployment-create.json').request.uid, allowed: true });
    expect(verifier.calls).to.have.length(3);
  });

  it('logs one JSON-able line per decision with uid, kind, namespace, name, operation, images, result and duration', async () => {
    const { handle, log } = mutator();
    const review = fixture('pod-create-dryrun.json');
    await handle(review);
    const lines = log.lines.filter((l) => l.msg === 'admission');
    expect(lines).to.have.length(1);
    const f = lines[0]!.fields;
    expect(f).to.include({ uid: review.request.uid, kind: 'Pod', namespace: 'payments', name: 'batch-worker-*', operation: 'CREATE', result: 'allowed', dryRun: true, webhook: 'mutate' });
    expect(f['images']).to.deep.equal(['registry.example.com/payments/worker:2.0']);
    expect(f['durationMs']).to.be.a('number');
    expect(() => JSON.stringify(f)).not.to.throw();
    expect(at(review, '/request/name')).to.equal('');
  });
});
