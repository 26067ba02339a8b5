// The pin patch of a Pod without our annotation comes from a memo keyed by its pins and by
// where its metadata stops; these check that the memo never hands one Pod another's patch.
import { expect } from 'chai';
import { encodedPinPatch, ORIGINAL_IMAGES_ANNOTATION, pinPatch, type Pin } from '../../webhook/src/admission/patch.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const pin = (image: string, digest: string, pointer = '/spec/containers/0/image'): Pin => ({ pointer, original: image, pinned: `registry.test/team/${image.split('/').pop()}@${digest}` });

function decode(patch: string | undefined): unknown {
  return patch === undefined ? undefined : JSON.parse(Buffer.from(patch, 'base64').toString('utf8'));
}

function pod(metadata?: Record<string, unknown>): Record<string, unknown> {
  return { ...(metadata ? { metadata } : {}), spec: { containers: [{ name: 'app', image: 'registry.test/team/app:1' }] } };
}

describe('encoded pin patches', () => {
  const shapes: [string, Record<string, unknown>][] = [
    ['no metadata', pod()],
    ['metadata without annotations', pod({ name: 'a' })],
    ['other annotations', pod({ name: 'a', annotations: { team: 'x' } })],
  ];

  it('is the encoded pinPatch for every shape of metadata, asked in any order and again', () => {
    const pins = [pin('registry.test/team/app:1', D1)];
    for (const round of [0, 1]) {
      for (const [what, object] of round === 0 ? shapes : [...shapes].reverse()) {
        expect(decode(encodedPinPatch(object, pins, ORIGINAL_IMAGES_ANNOTATION)), what).to.deep.equal(pinPatch(object, pins));
      }
    }
    // The three shapes need three different last operations.
    expect(new Set(shapes.map(([, o]) => encodedPinPatch(o, pins, ORIGINAL_IMAGES_ANNOTATION))).size).to.equal(3);
  });

  it('follows the digest, the pointer and the annotation key', () => {
    const object = pod({ name: 'a' });
    const a = encodedPinPatch(object, [pin('registry.test/team/app:1', D1)], ORIGINAL_IMAGES_ANNOTATION);
    const b = encodedPinPatch(object, [pin('registry.test/team/app:1', D2)], ORIGINAL_IMAGES_ANNOTATION);
    const c = encodedPinPatch(object, [pin('registry.test/team/app:1', D1, '/spec/initContainers/0/image')], ORIGINAL_IMAGES_ANNOTATION);
    const d = encodedPinPatch(object, [pin('registry.test/team/app:1', D1)], 'example.com/originals');
    expect(new Set([a, b, c, d]).size).to.equal(4);
    expect(JSON.stringify(decode(b))).to.contain(D2).and.not.contain(D1);
    expect(JSON.stringify(decode(d))).to.contain('example.com/originals');
  });

  it('reads the Pod when it already carries our annotation or is an update', () => {
    const pins = [pin('registry.test/team/app:1', D1)];
    const recorded = JSON.stringify({ '/spec/containers/0/image': 'registry.test/team/app:1' });
    const annotated = pod({ name: 'a', annotations: { [ORIGINAL_IMAGES_ANNOTATION]: recorded } });
    expect(decode(encodedPinPatch(annotated, pins, ORIGINAL_IMAGES_ANNOTATION))).to.deep.equal(pinPatch(annotated, pins));
    const old = pod({ name: 'a', annotations: { [ORIGINAL_IMAGES_ANNOTATION]: recorded } });
    expect(decode(encodedPinPatch(pod({ name: 'a' }), pins, ORIGINAL_IMAGES_ANNOTATION, old))).to.deep.equal(pinPatch(pod({ name: 'a' }), pins, ORIGINAL_IMAGES_ANNOTATION, old));
    expect(encodedPinPatch(pod({ name: 'a' }), [], ORIGINAL_IMAGES_ANNOTATION)).to.equal(undefined);
  });
});
