// The demo's own logic, without the stack: the reviews it sends are ones the webhook's parser
// accepts, its verdict check fails on every wrong answer, and its table fits the terminal.
import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cases, judge, type Case } from '../../hack/demo-cases.js';
import { writePolicies } from '../../hack/demo-policy.js';
import { deploymentCreate, podCreate, readAnswer, type Answer } from '../../hack/demo-reviews.js';
import { expiredRole, notSigned, type DemoImage } from '../../hack/demo-setup.js';
import { formatReasons, formatTable, shortDigest, shortImage, shortReason, type Row } from '../../hack/demo-table.js';
import { parseReview } from '../../webhook/src/admission/review.js';
import { imagesOf } from '../../webhook/src/images/workloads.js';
import { isInvalidPolicy, readPolicyYaml } from '../../webhook/src/policy/model.js';
import { makeCa } from '../fault/certs.js';
import { repoRoot } from '../support/stack.js';
import { TufRepo } from '../support/tuf1-repo.js';

const ROOT = repoRoot();
const HOST = '127.0.0.1:5000';
const D1 = `sha256:${'1a'.repeat(32)}`;
const D2 = `sha256:${'2b'.repeat(32)}`;

const signedTag: DemoImage = { label: 'signed', image: `${HOST}/demo/app:1.0`, expected: 'allowed', digest: D1 };
const signedDigest: DemoImage = { label: 'by digest', image: `${HOST}/demo/app@${D2}`, expected: 'allowed', digest: D2 };
const unsigned: DemoImage = { label: 'unsigned', image: `${HOST}/demo/app:rc`, expected: 'denied', because: notSigned('rc'), digest: D2 };
const [podSigned, podDigest, podUnsigned, deployment] = cases([signedTag, signedDigest, unsigned]) as [Case, Case, Case, Case];

const allowed = (pinned?: string): Answer => ({ allowed: true, warnings: [], ...(pinned ? { pinned } : {}) });
const denied = (message: string): Answer => ({ allowed: false, warnings: [], message });

const UNSIGNED_MESSAGE =
  `container "app" image "${HOST}/demo/app:rc": ClusterTrustPolicy demo-app, role targets/releases, server https://127.0.0.1:4443: ` +
  'tag "rc" is not signed by targets/releases (required)';
// Denials from a TUF 1.0 policy.
const TUF_UNSIGNED_MESSAGE =
  `container "app" image "${HOST}/demo/tuf/app:rc": ClusterTrustPolicy demo-tuf-app, role demo-release, server https://127.0.0.1:4443/: ` +
  'tag "rc" is not signed by demo-release (required)';
const TUF_EXPIRED_MESSAGE =
  `container "app" image "${HOST}/demo/tuf/nightly:1.0": ClusterTrustPolicy demo-tuf-nightly, role demo-nightly, server https://127.0.0.1:4443/: ` +
  'demo-nightly: expired at 2026-12-03T10:16:12Z';

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

  it('matches a reason by its stable parts, in either protocol and wording, and no other reason', () => {
    expect(notSigned('rc').test(UNSIGNED_MESSAGE)).to.equal(true);
    expect(notSigned('rc').test(TUF_UNSIGNED_MESSAGE)).to.equal(true);
    // Notary's earlier wording: the same reason, other words.
    expect(notSigned('rc').test(`image "${HOST}/demo/app:rc": targets/releases: does not sign "rc"`)).to.equal(true);
    expect(notSigned('rc').test(TUF_UNSIGNED_MESSAGE.replaceAll('"rc"', '"rc2"')), 'another tag').to.equal(false);
    expect(notSigned('rc').test(`tag "rc": ${TUF_EXPIRED_MESSAGE}`), 'another cause').to.equal(false);
    expect(notSigned('1.2-rc').test('tag "1x2-rc" is not signed'), 'the dot is literal').to.equal(false);

    expect(expiredRole('demo-nightly').test(TUF_EXPIRED_MESSAGE)).to.equal(true);
    expect(expiredRole('targets/releases').test('role targets/releases, server https://h:1: targets/releases: expired at 2026-11-22T22:15:45.168Z')).to.equal(true);
    expect(expiredRole('demo-release').test(TUF_EXPIRED_MESSAGE), 'another role expired').to.equal(false);
    expect(expiredRole('demo-nightly').test(TUF_EXPIRED_MESSAGE.replace('demo-nightly: expired', 'timestamp: expired')), 'the timestamp expired').to.equal(false);
  });

  it('judges TUF 1.0 denials like Notary ones', () => {
    const tufUnsigned: DemoImage = { label: 'TUF: never listed', image: `${HOST}/demo/tuf/app:rc`, expected: 'denied', because: notSigned('rc'), digest: D2 };
    const tufExpired: DemoImage = { label: 'TUF: role expired', image: `${HOST}/demo/tuf/nightly:1.0`, expected: 'denied', because: expiredRole('demo-nightly'), digest: D1 };
    const [unsignedPod, expiredPod] = cases([tufUnsigned, tufExpired]) as [Case, Case];
    expect(judge(unsignedPod, denied(TUF_UNSIGNED_MESSAGE))).to.deep.equal({ ok: true, detail: 'not signed by demo-release' });
    expect(judge(expiredPod, denied(TUF_EXPIRED_MESSAGE))).to.deep.equal({ ok: true, detail: 'demo-nightly expired 10:16:12Z' });
    expect(judge(unsignedPod, denied(TUF_EXPIRED_MESSAGE)).ok, 'denied for the other reason').to.equal(false);
    expect(judge(expiredPod, denied(TUF_UNSIGNED_MESSAGE)).ok, 'denied for the other reason').to.equal(false);
  });

  it('accepts the Deployment allowed on /validate, and fails it when denied', () => {
    expect(judge(deployment, allowed())).to.deep.equal({ ok: true, detail: 'both signed (validate: no patch)' });
    expect(judge(deployment, denied(UNSIGNED_MESSAGE)).ok).to.equal(false);
  });
});

describe('demo: policies', () => {
  it('writes a Notary and a TUF 1.0 policy that the webhook reads as valid, each with its own root and server', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-demo-policy-'));
    try {
      const rootPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const repo = new TufRepo();
      repo.publishRoot();
      const trustedRoot = repo.roots.get(1)!.toString('utf8');
      const caPem = makeCa(dir, 'demo test CA').certPem;
      const files = writePolicies(dir, [
        { name: 'demo-app', repository: `${HOST}/demo/app`, server: { url: 'https://127.0.0.1:4443', caPem }, root: { keys: [rootPem] }, roles: ['targets/releases'] },
        { name: 'demo-tuf-app', repository: `${HOST}/demo/tuf/app`, server: { url: 'https://127.0.0.1:4444/', caPem, protocol: 'tuf' }, root: { trustedRoot }, roles: ['demo-release'] },
      ]);
      expect(files).to.deep.equal([join(dir, 'demo-app.yaml'), join(dir, 'demo-tuf-app.yaml')]);
      const [notary, tuf] = files.map((f) => readPolicyYaml(readFileSync(f, 'utf8'), f)[0]!);
      if (isInvalidPolicy(notary!) || isInvalidPolicy(tuf!)) expect.fail(`invalid: ${JSON.stringify([notary, tuf])}`);
      expect(notary!.spec.trustServer).to.deep.equal({ url: 'https://127.0.0.1:4443', caBundle: caPem });
      expect(notary!.spec.root.keys).to.deep.equal([rootPem]);
      expect(notary!.spec.delegations?.roles).to.deep.equal(['targets/releases']);
      expect(tuf!.spec.trustServer).to.deep.equal({ protocol: 'tuf', url: 'https://127.0.0.1:4444', caBundle: caPem });
      expect(tuf!.spec.root.trustedRoot).to.equal(trustedRoot);
      expect(tuf!.spec.images).to.deep.equal([`${HOST}/demo/tuf/app`]);
      expect(tuf!.spec.delegations?.roles).to.deep.equal(['demo-release']);
      expect([notary!.spec.mode, tuf!.spec.mode]).to.deep.equal(['enforce', 'enforce']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
    expect(shortReason(TUF_UNSIGNED_MESSAGE)).to.equal('not signed by demo-release');
    expect(shortReason(TUF_EXPIRED_MESSAGE)).to.equal('demo-nightly expired 10:16:12Z');
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
