// From the attacker's side, through the real handler, engine and policy store with real
// signed trust data: every image a Pod can run is verified (image volumes too, in Pods and
// in every workload template), and no alias of a covered registry passes as unmatched when
// unmatched images are allowed.
import { expect } from 'chai';
import { createAdmissionHandler, type AdmissionHandler } from '../../webhook/src/admission/handler.js';
import { ORIGINAL_IMAGES_ANNOTATION } from '../../webhook/src/admission/patch.js';
import { parsePolicy } from '../../webhook/src/policy/model.js';
import { PolicyStore } from '../../webhook/src/policy/store.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { applyPatch, decodePatch, fixture } from '../fixtures/admission/support.js';
import { manifest, RepoForge, sha256hex } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const SERVER = 'https://notary.test:4443';
const STRICT_GUN = 'registry.test/strict/app';
const HUB_GUN = 'docker.io/library/nginx';
const SIGNED = `${STRICT_GUN}:v2.0`;
const SIGNED_TOO = `${STRICT_GUN}:v1.0`;
const UNSIGNED = `${STRICT_GUN}:v9`;
const V1 = 'sha256:' + sha256hex(manifest('v1.0'));
const V2 = 'sha256:' + sha256hex(manifest('v2.0'));

interface Rig {
  mutate: AdmissionHandler;
  validate: AdmissionHandler;
  /** GUNs whose trust data the engine asked for. */
  guns: string[];
}

function clusterPolicy(name: string, images: string[], rootPems: string[]) {
  return parsePolicy(
    {
      apiVersion: 'trustgate.dev/v1alpha1',
      kind: 'ClusterTrustPolicy',
      metadata: { name },
      spec: { images, trustServer: { url: SERVER }, root: { keys: rootPems, threshold: 1 }, mode: 'enforce' },
    },
    'test',
  );
}

describe('admission: every image a Pod runs is verified, whatever field or registry spelling names it', function () {
  this.timeout(60_000);
  let strict: RepoForge;
  let hub: RepoForge;

  before(() => {
    strict = new RepoForge({ now: NOW, gun: STRICT_GUN });
    hub = new RepoForge({ now: NOW, gun: HUB_GUN });
  });

  /** The webhook as `trustgate serve` wires it, with or without --allow-unmatched. */
  function rig(allowUnmatched: boolean): Rig {
    const store = new PolicyStore();
    store.replaceSource('test', [
      clusterPolicy('strict', ['registry.test/strict/**'], strict.build().rootPems),
      clusterPolicy('docker-hub-official', ['docker.io/library/**'], hub.build().rootPems),
    ]);
    const sources = new Map([
      [STRICT_GUN, new ForgedSource(strict.build(), SERVER)],
      [HUB_GUN, new ForgedSource(hub.build(), SERVER)],
    ]);
    const guns: string[] = [];
    const engine = new VerificationEngine({
      policies: store,
      sourceFor: (_policy, gun) => {
        guns.push(gun);
        const source = sources.get(gun);
        if (!source) throw new Error(`the trust server has no repository ${gun}`);
        return source;
      },
      clock: () => NOW,
      cache: new RepositoryCache({ clock: () => NOW }),
      allowUnmatched,
    });
    return {
      mutate: createAdmissionHandler({ verifier: engine, mutate: true, deadlineMs: 10_000 }),
      validate: createAdmissionHandler({ verifier: engine, mutate: false, deadlineMs: 10_000 }),
      guns,
    };
  }

  /** A Pod CREATE as the API server sends it, with `spec` fields replaced. */
  function podReview(spec: Record<string, unknown>): any {
    const review = fixture('pod-create.json');
    review.request.object.spec = { ...review.request.object.spec, initContainers: [], ...spec };
    return review;
  }

  function imageVolume(name: string, reference: string) {
    return { name, image: { reference, pullPolicy: 'IfNotPresent' } };
  }

  async function expectDenied(handle: AdmissionHandler, review: unknown, line: RegExp): Promise<string> {
    const out = await handle(structuredClone(review));
    expect(out.response.allowed, JSON.stringify(out.response)).to.equal(false);
    expect(out.response.status).to.include({ code: 403 });
    expect(out.response.patch).to.equal(undefined);
    expect(out.response.status!.message).to.match(line);
    return out.response.status!.message;
  }

  describe('image volumes (spec.volumes[].image.reference)', () => {
    it('denies a Pod with a signed container and an unsigned image volume, in /mutate and /validate', async () => {
      const { mutate, validate } = rig(false);
      const review = podReview({
        containers: [{ name: 'app', image: SIGNED, volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'tmp', emptyDir: {} }, imageVolume('data', UNSIGNED)],
      });
      const line = /^volume "data" image "registry\.test\/strict\/app:v9": ClusterTrustPolicy strict, .*server https:\/\/notary\.test:4443: .*v9/;
      for (const handle of [mutate, validate]) {
        const message = await expectDenied(handle, review, line);
        // Only the image volume is refused; the signed container is not blamed.
        expect(message.split('\n')).to.have.length(1);
      }
    });

    it('denies an image volume under no policy (unmatched images denied), naming the volume', async () => {
      const { mutate } = rig(false);
      const review = podReview({ containers: [{ name: 'app', image: SIGNED }], volumes: [imageVolume('tools', 'evil.example/tools:1')] });
      await expectDenied(mutate, review, /^volume "tools" image "evil\.example\/tools:1": no TrustPolicy or ClusterTrustPolicy matches evil\.example\/tools:1$/);
    });

    it('denies an image volume given by a digest that is not signed', async () => {
      const { validate } = rig(false);
      const review = podReview({ containers: [{ name: 'app', image: SIGNED }], volumes: [imageVolume('data', `${STRICT_GUN}@sha256:${'e'.repeat(64)}`)] });
      await expectDenied(validate, review, /^volume "data" image "registry\.test\/strict\/app@sha256:e{64}": ClusterTrustPolicy strict/);
    });

    it('pins a signed image volume at /spec/volumes/N/image/reference and records the original; /validate then admits the Pod', async () => {
      const { mutate, validate } = rig(false);
      const review = podReview({
        containers: [{ name: 'app', image: SIGNED }],
        volumes: [{ name: 'tmp', emptyDir: {} }, imageVolume('data', SIGNED_TOO)],
      });
      const out = await mutate(structuredClone(review));
      expect(out.response.allowed, JSON.stringify(out.response)).to.equal(true);
      const ops = decodePatch(out.response.patch);
      expect(ops.filter((o) => o.op === 'replace')).to.deep.equal([
        { op: 'replace', path: '/spec/containers/0/image', value: `${SIGNED}@${V2}` },
        { op: 'replace', path: '/spec/volumes/1/image/reference', value: `${SIGNED_TOO}@${V1}` },
      ]);
      const pod = applyPatch(review.request.object, ops);
      expect(pod.spec.volumes[1]).to.deep.equal(imageVolume('data', `${SIGNED_TOO}@${V1}`));
      expect(JSON.parse(pod.metadata.annotations[ORIGINAL_IMAGES_ANNOTATION])).to.deep.equal({
        '/spec/containers/0/image': SIGNED,
        '/spec/volumes/1/image/reference': SIGNED_TOO,
      });
      const final = structuredClone(review);
      final.request.object = pod;
      expect((await validate(final)).response.allowed).to.equal(true);
    });

    it('denies an unsigned image volume in the pod template of every workload kind', async () => {
      const { mutate, validate } = rig(false);
      const spec = { containers: [{ name: 'app', image: SIGNED }], volumes: [imageVolume('data', UNSIGNED)] };
      const template = { metadata: { labels: { app: 'x' } }, spec };
      const kinds: Array<[group: string, kind: string, object: unknown]> = [
        ['apps', 'Deployment', fixture('deployment-create.json').request.object],
        ['apps', 'ReplicaSet', { spec: { template } }],
        ['apps', 'StatefulSet', { spec: { template } }],
        ['apps', 'DaemonSet', { spec: { template } }],
        ['batch', 'Job', { spec: { template } }],
        ['batch', 'CronJob', { spec: { schedule: '@daily', jobTemplate: { spec: { template } } } }],
        ['', 'ReplicationController', { spec: { template } }],
      ];
      for (const [group, kind, object] of kinds) {
        const review = fixture('deployment-create.json');
        review.request.kind = { group, version: 'v1', kind };
        review.request.object = structuredClone(object);
        if (kind === 'Deployment') review.request.object.spec.template.spec = structuredClone(spec);
        for (const handle of [validate, mutate]) {
          await expectDenied(handle, review, /^volume "data" image "registry\.test\/strict\/app:v9": ClusterTrustPolicy strict/);
        }
      }
    });

    it('still covers init containers and ephemeral containers next to image volumes', async () => {
      const { mutate, validate } = rig(false);
      const init = podReview({
        containers: [{ name: 'app', image: SIGNED }],
        initContainers: [{ name: 'setup', image: UNSIGNED }],
        volumes: [imageVolume('data', SIGNED_TOO)],
      });
      for (const handle of [mutate, validate]) await expectDenied(handle, init, /^initContainer "setup" image "registry\.test\/strict\/app:v9": ClusterTrustPolicy strict/);

      // kubectl debug on a running Pod with an image volume: only the new ephemeral container is new.
      const debug = fixture('pod-ephemeralcontainers.json');
      for (const obj of [debug.request.object, debug.request.oldObject]) obj.spec.volumes.push(imageVolume('data', `${SIGNED_TOO}@${V1}`));
      debug.request.object.spec.ephemeralContainers[0].image = UNSIGNED;
      for (const handle of [mutate, validate]) await expectDenied(handle, debug, /^ephemeralContainer "debugger-8xk2p" image "registry\.test\/strict\/app:v9": ClusterTrustPolicy strict/);
    });
  });

  describe('registry aliases with --allow-unmatched', () => {
    it('still admits an image of a registry no policy covers (the setting is on), with or without :443', async () => {
      const { mutate, validate } = rig(true);
      for (const image of ['other.test/x:1', 'other.test:443/x:1']) {
        const review = podReview({ containers: [{ name: 'app', image }] });
        expect((await mutate(structuredClone(review))).response.allowed, image).to.equal(true);
        expect((await validate(structuredClone(review))).response.allowed, image).to.equal(true);
      }
    });

    it('denies registry.test:443/strict/... (a covered registry with its default port) saying how to write it', async () => {
      const { mutate, validate, guns } = rig(true);
      for (const image of [SIGNED.replace('registry.test/', 'registry.test:443/'), UNSIGNED.replace('registry.test/', 'registry.test:443/')]) {
        const canonical = image.replace(':443/', '/');
        const review = podReview({ containers: [{ name: 'app', image }] });
        for (const handle of [mutate, validate]) {
          const message = await expectDenied(handle, review, /^container "app" image "registry\.test:443\/strict\/app:v(2\.0|9)": ClusterTrustPolicy strict: /);
          expect(message).to.contain(`registry.test:443 is registry.test spelled with its default HTTPS port, and this policy covers ${canonical}: write the image as "${canonical}"`);
        }
        // As an image volume too.
        const volume = podReview({ containers: [{ name: 'app', image: SIGNED }], volumes: [imageVolume('data', image)] });
        await expectDenied(mutate, volume, new RegExp(`^volume "data" image "${image.replace(/[./]/g, '\\$&')}": ClusterTrustPolicy strict: .*write the image as`));
      }
      // Refused before any trust data is fetched: not verified under a GUN nobody signed.
      expect(guns.filter((g) => g.includes(':443'))).to.deep.equal([]);
    });

    it("verifies Docker Hub's other host names under the docker.io policy: unsigned denied, signed pinned to docker.io", async () => {
      const { mutate, validate, guns } = rig(true);
      for (const host of ['registry-1.docker.io', 'registry.hub.docker.com', 'index.docker.io']) {
        const unsigned = podReview({ containers: [{ name: 'web', image: `${host}/library/nginx:v9` }] });
        for (const handle of [mutate, validate]) {
          await expectDenied(handle, unsigned, new RegExp(`^container "web" image "${host.replace(/\./g, '\\.')}/library/nginx:v9": ClusterTrustPolicy docker-hub-official, .*v9`));
        }
        const signedPod = podReview({ containers: [{ name: 'web', image: `${host}/library/nginx:v2.0` }] });
        const out = await mutate(signedPod);
        expect(out.response.allowed).to.equal(true);
        expect(decodePatch(out.response.patch)[0]).to.deep.equal({ op: 'replace', path: '/spec/containers/0/image', value: `docker.io/library/nginx:v2.0@${V2}` });
      }
      // The GUN looked up is the one Notary signs Docker Hub images under.
      expect([...new Set(guns)]).to.deep.equal([HUB_GUN]);
    });

    it('denies Docker Hub spelled with :443 or without its library/ namespace, saying how to write it', async () => {
      const { mutate, validate } = rig(true);
      const cases: Array<[string, string]> = [
        ['docker.io:443/library/nginx:v2.0', 'write the image as "docker.io/library/nginx:v2.0"'],
        ['docker.io:443/nginx:v2.0', 'write the image as "docker.io/library/nginx:v2.0"'],
        ['index.docker.io:443/library/nginx:v2.0', 'write the image as "docker.io/library/nginx:v2.0"'],
        ['registry-1.docker.io:443/library/nginx:v9', 'write the image as "docker.io/library/nginx:v9"'],
        ['registry-1.docker.io/nginx:v2.0', 'write "docker.io/library/nginx:v2.0"'],
        ['registry.hub.docker.com/nginx:v2.0', 'write "docker.io/library/nginx:v2.0"'],
        ['registry-1.docker.io:443/nginx:v2.0', 'write "docker.io/library/nginx:v2.0"'],
      ];
      for (const [image, hint] of cases) {
        const review = podReview({ containers: [{ name: 'web', image }] });
        for (const handle of [mutate, validate]) {
          const message = await expectDenied(handle, review, new RegExp(`^container "web" image "${image.replace(/[./]/g, '\\$&')}": `));
          expect(message, image).to.contain(hint);
        }
      }
    });
  });
});
