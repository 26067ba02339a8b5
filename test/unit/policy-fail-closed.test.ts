// An invalid policy fails closed, from the attacker's side, through the real path: policy
// source (a policy directory, or the Kubernetes informer against the fake API server) ->
// PolicyStore -> VerificationEngine over really signed trust data -> admission handler.
// Before invalid policies were held, each denial below was an admission: the invalid policy
// was dropped and a broader valid one (or --allow-unmatched) let the image in.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdmissionHandler, type AdmissionHandler } from '../../webhook/src/admission/handler.js';
import { PolicyDirSource } from '../../webhook/src/policy/dir-source.js';
import { KubernetesPolicySource } from '../../webhook/src/policy/kube-source.js';
import { PolicyStore } from '../../webhook/src/policy/store.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { GUN, RepoForge } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';
import { FakeApiServer } from '../support/fake-apiserver.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const IMAGE = `${GUN}:v2.0`;
const REGISTRY = GUN.split('/')[0]!;
const SERVER = 'https://notary.test:4443';

type Obj = Record<string, unknown>;

function policy(kind: 'TrustPolicy' | 'ClusterTrustPolicy', name: string, namespace: string | undefined, spec: Obj): Obj {
  return { apiVersion: 'trustgate.dev/v1alpha1', kind, metadata: { name, ...(namespace ? { namespace } : {}) }, spec };
}

function spec(images: unknown, keys: string[], extra: Obj = {}): Obj {
  return { images, trustServer: { url: SERVER }, root: { keys }, ...extra };
}

/** Half a PEM: what a bad copy-paste leaves. The CRD schema sees only a string. */
function truncated(pem: string): string {
  return `${pem.slice(0, Math.floor(pem.length / 2))}\n-----END CERTIFICATE-----\n`;
}

let uid = 0;
function podReview(namespace: string, image: string): Obj {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `pod-${++uid}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'app', namespace }, spec: { containers: [{ name: 'app', image }] } },
      oldObject: null,
      dryRun: false,
    },
  };
}

/** Resolves once `cond()` holds, re-checked on every store change; bounded. */
function settles(store: PolicyStore, cond: () => boolean, what: string): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for the store: ${what}`));
    }, 5000);
    const off = store.onChange(() => {
      if (!cond()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

interface Answer {
  allowed: boolean;
  message: string;
  warnings: string[];
}

describe('invalid policies fail closed (store + engine + admission, attacker side)', () => {
  let forge: RepoForge;
  let keys: string[];

  before(() => {
    forge = new RepoForge({ now: NOW });
    keys = forge.build().rootPems;
  });

  function handlerFor(store: PolicyStore, allowUnmatched = false): (ns: string, image?: string) => Promise<Answer> {
    const source = new ForgedSource(forge.build(), SERVER);
    const engine = new VerificationEngine({ policies: store, sourceFor: () => source, clock: () => NOW, allowUnmatched });
    const handler: AdmissionHandler = createAdmissionHandler({ verifier: engine, mutate: false });
    return async (ns, image = IMAGE) => {
      const r = (await handler(podReview(ns, image))).response;
      return { allowed: r.allowed, message: r.status?.message ?? '', warnings: r.warnings ?? [] };
    };
  }

  describe('from a policy directory', () => {
    let dir: string;
    let store: PolicyStore;
    let source: PolicyDirSource;
    let admit: (ns: string, image?: string) => Promise<Answer>;
    const write = async (file: string, obj: Obj | string) => {
      writeFileSync(join(dir, file), typeof obj === 'string' ? obj : JSON.stringify(obj));
      await source.rescan();
    };

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tg-failclosed-'));
      store = new PolicyStore();
      source = new PolicyDirSource(dir, store, () => {}, { rescanMs: 0 });
      // The broad, valid policy: alone, it admits the image everywhere.
      writeFileSync(join(dir, 'broad.yaml'), JSON.stringify(policy('ClusterTrustPolicy', 'broad', undefined, spec([`${REGISTRY}/**`], keys))));
      await source.start();
      admit = handlerFor(store);
      const control = await admit('team');
      expect(control.allowed, `the broad policy alone admits the image: ${control.message}`).to.equal(true);
    });

    afterEach(() => {
      source.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a narrower TrustPolicy with a truncated root key denies its images, naming itself and why, although a broader valid policy matches', async () => {
      await write('narrow.yaml', policy('TrustPolicy', 'narrow', 'team', spec([`${REGISTRY}/demo/**`], [truncated(keys[0]!)])));
      const a = await admit('team');
      expect(a.allowed).to.equal(false);
      expect(a.message).to.include(`image "${IMAGE}"`).and.include('TrustPolicy team/narrow: the policy is invalid and it covers this image');
      expect(a.message).to.include('spec.root.keys[0]: not a PEM public key or certificate');
      expect(a.message).to.not.include('no TrustPolicy or ClusterTrustPolicy matches');
      // Its scope is its namespace: elsewhere the broad policy still decides.
      expect((await admit('other')).allowed).to.equal(true);
      // Fixed, it applies again.
      await write('narrow.yaml', policy('TrustPolicy', 'narrow', 'team', spec([`${REGISTRY}/demo/**`], keys)));
      expect((await admit('team')).allowed).to.equal(true);
    });

    it('a TrustPolicy whose spec.images cannot be parsed denies every image of its namespace; other namespaces are unaffected', async () => {
      // A wildcard registry: a pattern trustgate refuses, so what the author meant to cover is unknown.
      await write('globs.yaml', policy('TrustPolicy', 'globs', 'team', spec(['registry.example.*/team/**'], keys)));
      const a = await admit('team');
      expect(a.allowed).to.equal(false);
      expect(a.message).to.include('TrustPolicy team/globs: the policy is invalid and its spec.images cannot be read, so it covers every image in namespace team');
      expect(a.message).to.include('spec.images[0]');
      expect((await admit('other')).allowed).to.equal(true);
    });

    it('a ClusterTrustPolicy whose spec.images cannot be parsed denies everything, in every namespace, even with --allow-unmatched', async () => {
      await write('everything.yaml', policy('ClusterTrustPolicy', 'everything', undefined, spec(['nginx'], keys)));
      const open = handlerFor(store, true);
      for (const ns of ['team', 'other']) {
        for (const image of [IMAGE, 'quay.io/anything/else:1']) {
          const a = await open(ns, image);
          expect(a.allowed, `${ns} ${image}`).to.equal(false);
          expect(a.message).to.include('ClusterTrustPolicy everything: the policy is invalid and its spec.images cannot be read, so it covers every image in every namespace');
        }
      }
    });

    it("an invalid policy's mode is kept when it is readable (warn warns), and is enforce when it is not", async () => {
      await write('narrow.yaml', policy('TrustPolicy', 'narrow', 'team', spec([`${REGISTRY}/demo/**`], [truncated(keys[0]!)], { mode: 'warn' })));
      const warned = await admit('team');
      expect(warned.allowed, 'a warn-mode policy never blocks, valid or not').to.equal(true);
      expect(warned.warnings.join('\n')).to.include('the policy is invalid');
      await write('narrow.yaml', policy('TrustPolicy', 'narrow', 'team', spec([`${REGISTRY}/demo/**`], [truncated(keys[0]!)], { mode: 'Warn' })));
      const unreadable = await admit('team');
      expect(unreadable.allowed).to.equal(false);
      expect(unreadable.message).to.include('TrustPolicy team/narrow').and.include('spec.mode');
    });

    it('an invalid policy covers its images under an alias spelling too (host:443), even with --allow-unmatched', async () => {
      await write('strict.yaml', policy('TrustPolicy', 'strict', 'team', spec(['registry.test/strict/**'], [truncated(keys[0]!)])));
      const open = handlerFor(store, true);
      for (const image of ['registry.test/strict/app:1', 'registry.test:443/strict/app:1']) {
        const a = await open('team', image);
        expect(a.allowed, image).to.equal(false);
        expect(a.message).to.include('TrustPolicy team/strict: the policy is invalid and it covers this image');
      }
      expect((await open('other', 'registry.test:443/strict/app:1')).allowed, 'unmatched elsewhere').to.equal(true);
    });

    it('a TrustPolicy file without metadata.namespace (scope unknown) fails its images in every namespace', async () => {
      await write('nowhere.yaml', policy('TrustPolicy', 'nowhere', undefined, spec([`${REGISTRY}/demo/**`], keys)));
      for (const ns of ['team', 'other']) {
        const a = await admit(ns);
        expect(a.allowed, ns).to.equal(false);
        expect(a.message).to.include('TrustPolicy nowhere: the policy is invalid and it covers this image').and.include('metadata.namespace');
      }
    });

    it('a file that is not YAML cannot say what it covers: everything is denied until it is fixed', async () => {
      await write('broken.yaml', 'kind: ClusterTrustPolicy\nspec: [unclosed\n');
      const a = await admit('other');
      expect(a.allowed).to.equal(false);
      expect(a.message).to.include(`(file ${join(dir, 'broken.yaml')})`).and.include('YAML');
      await write('broken.yaml', '');
      expect((await admit('other')).allowed).to.equal(true);
    });

    it('a policy defined twice in one file covers its whole scope (which of the two is meant is unknown)', async () => {
      const one = policy('TrustPolicy', 'twice', 'team', spec([`${REGISTRY}/demo/**`], keys));
      const two = policy('TrustPolicy', 'twice', 'team', spec([`${REGISTRY}/other/**`], keys));
      await write('twice.yaml', `${JSON.stringify(one)}\n---\n${JSON.stringify(two)}\n`);
      const a = await admit('team');
      expect(a.allowed).to.equal(false);
      expect(a.message).to.include('TrustPolicy team/twice').and.include('is defined 2 times');
      expect((await admit('other')).allowed).to.equal(true);
    });
  });

  describe('from the Kubernetes API (the informer)', () => {
    let api: FakeApiServer;
    let source: KubernetesPolicySource;

    beforeEach(async () => {
      api = await FakeApiServer.start();
    });

    afterEach(async () => {
      source.stop();
      await source.stopped();
      await api.close();
    });

    it('an invalid TrustPolicy listed or edited in denies its images under a broader valid ClusterTrustPolicy', async () => {
      const store = new PolicyStore();
      api.create('clustertrustpolicies', { metadata: { name: 'broad' }, spec: spec([`${REGISTRY}/**`], keys) });
      // Already invalid when the webhook starts (its policy webhook was down when it was applied).
      api.create('trustpolicies', { metadata: { name: 'narrow', namespace: 'team' }, spec: spec([`${REGISTRY}/demo/**`], [truncated(keys[0]!)]) });
      source = new KubernetesPolicySource({ kubeConfig: api.kubeConfig(), store, backoff: { initialMs: 10, maxMs: 50 } });
      await source.start();
      const admit = handlerFor(store);
      const listed = await admit('team');
      expect(listed.allowed).to.equal(false);
      expect(listed.message).to.include('TrustPolicy team/narrow: the policy is invalid').and.include('spec.root.keys[0]');
      expect((await admit('other')).allowed).to.equal(true);

      // Fixed through the watch, then broken again by an edit: each change takes effect.
      api.update('trustpolicies', { metadata: { name: 'narrow', namespace: 'team' }, spec: spec([`${REGISTRY}/demo/**`], keys) });
      await settles(store, () => store.invalid().length === 0 && store.all().length === 2, 'the fixed policy');
      expect((await admit('team')).allowed).to.equal(true);
      api.update('trustpolicies', { metadata: { name: 'narrow', namespace: 'team' }, spec: spec(['registry.example.*/x/**'], keys) });
      await settles(store, () => store.invalid().length === 1, 'the broken edit');
      const edited = await admit('team');
      expect(edited.allowed).to.equal(false);
      expect(edited.message).to.include('covers every image in namespace team');
      // Deleting it is the other way out.
      api.delete('trustpolicies', 'narrow', 'team');
      await settles(store, () => store.invalid().length === 0 && store.all().length === 1, 'the deleted policy');
      expect((await admit('team')).allowed).to.equal(true);
    });
  });
});
