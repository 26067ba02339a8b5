// Malformed AdmissionReviews: unanswerable ones (no uid, wrong envelope) are errors for
// the HTTP layer; answerable ones are denials that carry the uid and say what is wrong.
import { expect } from 'chai';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { parseReview, ReviewError } from '../../webhook/src/admission/review.js';
import { fixture, TableVerifier } from '../fixtures/admission/support.js';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('admission: malformed reviews', () => {
  const verifier = new TableVerifier();
  const handle = createAdmissionHandler({ verifier, mutate: true });

  const unanswerable: Array<[string, (r: any) => unknown, RegExp]> = [
    ['a review that is not an object', () => 'AdmissionReview', /must be a JSON object, got string/],
    ['a v1beta1 review', (r) => ({ ...r, apiVersion: 'admission.k8s.io/v1beta1' }), /apiVersion must be admission\.k8s\.io\/v1, got "admission\.k8s\.io\/v1beta1"/],
    ['a review of another kind', (r) => ({ ...r, kind: 'TokenReview' }), /kind must be AdmissionReview/],
    ['a review without request', (r) => ({ apiVersion: r.apiVersion, kind: r.kind }), /request must be an object, got nothing/],
    ['a request without uid', (r) => ({ ...r, request: { ...r.request, uid: undefined } }), /request\.uid must be a non-empty string, got nothing/],
    ['a request with a numeric uid', (r) => ({ ...r, request: { ...r.request, uid: 42 } }), /request\.uid must be a non-empty string, got 42/],
    ['a request with an endless uid', (r) => ({ ...r, request: { ...r.request, uid: 'u'.repeat(10_000) } }), /longer than 256/],
  ];
  for (const [what, mangle, msg] of unanswerable) {
    it(`throws a ReviewError without uid for ${what}`, async () => {
      const e = await rejection(handle(mangle(fixture('pod-create.json'))));
      expect(e).to.be.instanceOf(ReviewError);
      expect((e as ReviewError).uid).to.equal(undefined);
      expect(e.message).to.match(msg);
    });
  }

  const answerable: Array<[string, (req: any) => void, RegExp]> = [
    ['object is not an object', (req) => (req.object = 'a pod'), /cannot read the images of this Pod: Pod object must be a JSON object, got string/],
    ['object is missing on CREATE', (req) => delete req.object, /Pod object must be a JSON object, got null/],
    ['containers is not a list', (req) => (req.object.spec.containers = { api: {} }), /spec\.containers must be a list/],
    ['operation is unknown', (req) => (req.operation = 'PATCH'), /operation must be one of CREATE, UPDATE, DELETE, CONNECT, got "PATCH"/],
    ['kind is missing', (req) => delete req.kind, /request\.kind must be an object/],
    ['kind.kind is empty', (req) => (req.kind.kind = ''), /request\.kind\.kind must be a non-empty string/],
    ['resource is a string', (req) => (req.resource = 'pods'), /request\.resource must be an object/],
    ['namespace is a number', (req) => (req.namespace = 3), /request\.namespace must be a string/],
    ['dryRun is a string', (req) => (req.dryRun = 'true'), /request\.dryRun must be a boolean/],
    // Too deep for JSON.stringify: the message describes the value instead of quoting it.
    ['operation nests 20,000 lists deep', (req) => (req.operation = JSON.parse('['.repeat(20_000) + ']'.repeat(20_000))), /operation must be one of CREATE, UPDATE, DELETE, CONNECT, got a list/],
  ];
  for (const [what, mangle, msg] of answerable) {
    it(`denies with code 400 and the uid when ${what}`, async () => {
      const review = fixture('pod-create.json');
      mangle(review.request);
      const calls = verifier.calls.length;
      const out = await handle(review);
      expect(out.response.uid).to.equal(review.request.uid);
      expect(out.response.allowed).to.equal(false);
      expect(out.response.status?.code).to.equal(400);
      expect(out.response.status?.message).to.match(msg);
      expect(verifier.calls.length).to.equal(calls);
    });
  }

  it('reads the fields a real API server sends', () => {
    const req = parseReview(fixture('pod-ephemeralcontainers.json'));
    expect(req).to.deep.include({
      uid: '3e9b5d71-8c2a-4f0e-b6d4-9a8b7c6d5e4f',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      subResource: 'ephemeralcontainers',
      name: 'payments-api',
      namespace: 'payments',
      operation: 'UPDATE',
      dryRun: false,
      userInfo: { username: 'kubernetes-admin' },
    });
    const del = parseReview(fixture('pod-delete.json'));
    expect(del.object).to.equal(null);
    expect(del.oldObject).to.be.an('object');
  });

  it('rejects a bad DELETE envelope too, but not its null object', async () => {
    const ok = await handle(fixture('pod-delete.json'));
    expect(ok.response.allowed).to.equal(true);
    const bad = fixture('pod-delete.json');
    bad.request.operation = 'delete';
    expect((await handle(bad)).response.status?.code).to.equal(400);
  });
});
