// The demo's own logic, without the stack: the reviews it sends are ones the webhook's parser
// accepts, its verdict check fails on every wrong answer, and its table fits the terminal.
import { expect } from 'chai';
import { cases, judge, type Case } from '../../hack/demo-cases.js';
import { deploymentCreate, podCreate, readAnswer, type Answer } from '../../hack/demo-reviews.js';
import type { DemoImage } from '../../hack/demo-setup.js';
import { formatReasons, formatTable, shortDigest, shortImage, shortReason, type Row } from '../../hack/demo-table.js';
import { parseReview } from '../../webhook/src/admission/review.js';
import { imagesOf } from '../../webhook/src/images/workloads.js';
import { repoRoot } from '../support/stack.js';

const ROOT = repoRoot();
const HOST = '127.0.0.1:5000';
const D1 = `sha256:${'1a'.repeat(32)}`;
const D2 = `sha256:${'2b'.repeat(32)}`;

const signedTag: DemoImage = { label: 'signed', image: `${HOST}/demo/app:1.0`, expected: 'allowed', digest: D1 };
const signedDigest: DemoImage = { label: 'by digest', image: `${HOST}/demo/app@${D2}`, expected: 'allowed', digest: D2 };
const unsigned: DemoImage = { label: 'unsigned', image: `${HOST}/demo/app:rc`, expected: 'denied', because: /tag "rc" is not signed by targets\/releases \(required\)/, digest: D2 };
const [podSigned, podDigest, podUnsigned, deployment] = cases([signedTag, signedDigest, unsigned]) as [Case, Case, Case, Case];

const allowed = (pinned?: string): Answer => ({ allowed: true, warnings: [], ...(pinned ? { pinned } : {}) });
const denied = (message: string): Answer => ({ allowed: false, warnings: [], message });

const UNSIGNED_MESSAGE =
  `container "app" image "${HOST}/demo/app:rc": ClusterTrustPolicy demo-app, role targets/releases, server https://127.0.0.1:4443: ` +
  'tag "rc" is not signed by targets/releases (required)';

describe('demo: cases and the check of each answer', () => {
  it('makes one Pod per image and one Deployment of the images that should pass', () => {
    expect([podSigned, podDigest, podUnsigned].map((c) => [c.kind, c.images.map((i) => i.image)])).to.deep.equal([
      ['Pod', [signedTag.image]],
      ['Pod', [signedDigest.image]],
      ['Pod', [unsigned.image]],
    ]);
    expect(deployment.kind).to.equal('Deployment');
    expect(deployment.images.map((i) => i.image)).to.deep.equal([signedTag.image, signedDigest.image]);
  });

  it('accepts a tag only when pinned to the digest the registry holds', () => {
    expect(judge(podSigned, allowed(`${signedTag.image}@${D1}`))).to.deep.equal({ ok: true, detail: `pinned to ${shortDigest(D1)}` });
    expect(judge(podSigned, allowed(`${signedTag.image}@${D2}`)).ok, 'pinned to another digest').to.equal(false);
    expect(judge(podSigned, allowed()).ok, 'allowed without a pin').to.equal(false);
    expect(judge(podSigned, denied(UNSIGNED_MESSAGE)).ok, 'denied').to.equal(false);
  });

  it('accepts a digest reference allowed as is, not one the webhook rewrote', () => {
    expect(judge(podDigest, allowed()).ok).to.equal(true);
    expect(judge(podDigest, allowed(`${HOST}/demo/app@${D1}`)).ok).to.equal(false);
  });

  it('accepts a denial only for the reason the case was built for', () => {
    expect(judge(podUnsigned, denied(UNSIGNED_MESSAGE))).to.deep.equal({ ok: true, detail: 'not signed by targets/releases' });
    const unreachable = `container "app" image "${unsigned.image}": ClusterTrustPolicy demo-app, role targets/releases, server https://127.0.0.1:4443: HTTP 404: no such metadata`;
    expect(judge(podUnsigned, denied(unreachable)).ok, 'denied because the server failed').to.equal(false);
    expect(judge(podUnsigned, allowed(`${unsigned.image}@${D2}`)).ok, 'allowed').to.equal(false);
  });

  it('accepts the Deployment allowed on /validate, and fails it when denied', () => {
    expect(judge(deployment, allowed())).to.deep.equal({ ok: true, detail: 'both signed (validate: no patch)' });
    expect(judge(deployment, denied(UNSIGNED_MESSAGE)).ok).to.equal(false);
  });
});

describe('demo: AdmissionReviews from the fixtures', () => {
  it('builds a Pod CREATE the webhook parses, with exactly the one image', () => {
    const review = podCreate(ROOT, 'demo-1', signedTag.image) as any;
    const req = parseReview(review);
    expect([req.operation, req.kind.kind, req.namespace, req.name]).to.deep.equal(['CREATE', 'Pod', 'demo', 'demo-1']);
    expect(imagesOf(req.kind, req.object).map((u) => [u.name, u.image, u.pointer])).to.deep.equal([
      ['app', signedTag.image, '/spec/containers/0/image'],
    ]);
    expect(review.request.object.metadata.annotations, 'no stale last-applied configuration').to.equal(undefined);
    expect(review.request.uid).to.not.equal((podCreate(ROOT, 'demo-1', signedTag.image) as any).request.uid);
  });

  it('builds a Deployment CREATE the webhook parses, one container per image in the pod template', () => {
    const req = parseReview(deploymentCreate(ROOT, 'demo-6', [signedTag.image, signedDigest.image]));
    expect([req.kind.group, req.kind.kind]).to.deep.equal(['apps', 'Deployment']);
    expect(imagesOf(req.kind, req.object).map((u) => [u.name, u.image])).to.deep.equal([
      ['app', signedTag.image],
      ['sidecar-1', signedDigest.image],
    ]);
  });

  it('reads the pin from the JSON patch and refuses answers a real API server would refuse', () => {
    const sent = podCreate(ROOT, 'demo-1', signedTag.image) as any;
    const uid = sent.request.uid;
    const patch = Buffer.from(
      JSON.stringify([
        { op: 'replace', path: '/spec/containers/0/image', value: `${signedTag.image}@${D1}` },
        { op: 'add', path: '/metadata/annotations', value: {} },
      ]),
    ).toString('base64');
    const ok = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true, patchType: 'JSONPatch', patch } };
    expect(readAnswer(sent, 200, ok)).to.deep.equal({ allowed: true, pinned: `${signedTag.image}@${D1}`, warnings: [] });

    const no = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: false, status: { message: 'nope' } } };
    expect(readAnswer(sent, 200, no)).to.deep.equal({ allowed: false, message: 'nope', warnings: [] });

    expect(() => readAnswer(sent, 200, { ...ok, response: { ...ok.response, uid: 'other' } })).to.throw(/does not match request uid/);
    expect(() => readAnswer(sent, 500, { error: 'x' })).to.throw(/HTTP 500/);
    expect(() => readAnswer(sent, 200, { ...ok, apiVersion: 'admission.k8s.io/v1beta1' })).to.throw(/not an admission.k8s.io\/v1/);
    expect(() => readAnswer(sent, 200, { ...ok, response: { ...ok.response, patchType: 'Merge' } })).to.throw(/patchType/);
  });
});

describe('demo: the table', () => {
  it('shortens the reasons the demo provokes and keeps any other as the webhook said it', () => {
    expect(shortReason(UNSIGNED_MESSAGE)).to.equal('not signed by targets/releases');
    expect(
      shortReason(`container "app" image "x": ClusterTrustPolicy demo-stale, role targets/releases, server https://h:1: targets/releases: expired at 2026-11-22T22:15:45.168Z`),
    ).to.equal('targets/releases expired 22:15:45Z');
    expect(shortReason('container "app" image "x": no policy matches this image')).to.equal('no policy matches this image');
  });

  it('drops the registry host and shortens digests', () => {
    expect(shortImage(`${HOST}/demo/app:1.0`, HOST)).to.equal('demo/app:1.0');
    expect(shortImage(`${HOST}/demo/app@${D2}`, HOST)).to.equal('demo/app@sha256:2b2b2b2b…');
    expect(shortImage(`other:5000/demo/app:1.0`, HOST)).to.equal('other:5000/demo/app:1.0');
  });

  it('fits every line in the width, marks unexpected answers and wraps full messages', () => {
    const rows: Row[] = [
      { ok: true, label: 'signed in releases', image: 'demo/app:1.0', result: 'allowed', detail: `pinned to ${shortDigest(D1)}` },
      { ok: false, label: 'a label far longer than the column has room for', image: `demo/${'x'.repeat(60)}:1.0`, result: 'allowed', detail: 'y'.repeat(200) },
      { ok: true, label: 'unsigned', image: 'demo/app:rc', result: 'denied', detail: 'not signed', message: UNSIGNED_MESSAGE },
    ];
    const table = formatTable(rows, 100);
    expect(table).to.have.length(4);
    for (const l of table) expect(l.length, l).to.be.at.most(100);
    expect(table[1]).to.match(/^ok {2}signed in releases {2,}demo\/app:1\.0 {2,}allowed {2}pinned to sha256:1a1a1a1a1a1a…$/);
    expect(table[2]).to.match(/^XX /);
    const reasons = formatReasons(rows, 100);
    expect(reasons[0]).to.match(/^\[3\] unsigned: container "app"/);
    for (const l of reasons) expect(l.length, l).to.be.at.most(100);
    expect(reasons.join(' ').replace(/\s+/g, ' ')).to.contain('tag "rc" is not signed by targets/releases (required)');
  });
});
