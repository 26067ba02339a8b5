// Extracting every image a Pod or a workload template would run, with pointers that
// really point at the image field.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IMAGE_FIELDS, imagesOf, podSpecPath, WorkloadError, type ImageUse } from '../../webhook/src/images/workloads.js';
import { at, fixture } from '../fixtures/admission/support.js';

const POD = { group: '', kind: 'Pod' };

function expectPointersResolve(object: unknown, images: ImageUse[]): void {
  for (const i of images) expect(at(object, i.pointer), i.pointer).to.equal(i.image);
}

describe('workload image extraction', () => {
  it('lists containers, initContainers with names, kinds and pointers from an API-server Pod', () => {
    const pod = fixture('pod-create.json').request.object;
    const images = imagesOf(POD, pod);
    expect(images).to.deep.equal([
      { name: 'api', kind: 'container', image: 'registry.example.com/payments/api:1.4.2', pointer: '/spec/containers/0/image' },
      { name: 'proxy', kind: 'container', image: 'nginx:1.25', pointer: '/spec/containers/1/image' },
      { name: 'migrate', kind: 'initContainer', image: 'registry.example.com/payments/migrate:1.4.2', pointer: '/spec/initContainers/0/image' },
    ]);
    expectPointersResolve(pod, images);
  });

  it('includes ephemeral containers added by kubectl debug', () => {
    const pod = fixture('pod-ephemeralcontainers.json').request.object;
    const images = imagesOf(POD, pod);
    const eph = images.filter((i) => i.kind === 'ephemeralContainer');
    expect(eph).to.deep.equal([{ name: 'debugger-8xk2p', kind: 'ephemeralContainer', image: 'busybox:1.36', pointer: '/spec/ephemeralContainers/0/image' }]);
    expect(images).to.have.length(4);
    expectPointersResolve(pod, images);
  });

  it('reads the pod template of a Deployment', () => {
    const d = fixture('deployment-create.json').request.object;
    const images = imagesOf({ group: 'apps', kind: 'Deployment' }, d);
    expect(images.map((i) => i.pointer)).to.deep.equal([
      '/spec/template/spec/containers/0/image',
      '/spec/template/spec/containers/1/image',
      '/spec/template/spec/initContainers/0/image',
    ]);
    expectPointersResolve(d, images);
  });

  const podSpec = { containers: [{ name: 'c', image: 'example.com/a:1' }], initContainers: [{ name: 'i', image: 'example.com/b:2' }] };
  const templated = { spec: { template: { spec: podSpec } } };
  for (const [group, kind] of [['apps', 'ReplicaSet'], ['apps', 'StatefulSet'], ['apps', 'DaemonSet'], ['batch', 'Job'], ['', 'ReplicationController']] as const) {
    it(`reads spec.template.spec of a ${kind}`, () => {
      const images = imagesOf({ group, kind }, templated);
      expect(images.map((i) => [i.pointer, i.image])).to.deep.equal([
        ['/spec/template/spec/containers/0/image', 'example.com/a:1'],
        ['/spec/template/spec/initContainers/0/image', 'example.com/b:2'],
      ]);
    });
  }

  it('reads spec.jobTemplate.spec.template.spec of a CronJob', () => {
    const cron = { spec: { schedule: '* * * * *', jobTemplate: { spec: { template: { spec: podSpec } } } } };
    const images = imagesOf({ group: 'batch', kind: 'CronJob' }, cron);
    expect(images[0]!.pointer).to.equal('/spec/jobTemplate/spec/template/spec/containers/0/image');
    expectPointersResolve(cron, images);
  });

  it('knows kinds only in their own API group', () => {
    expect(podSpecPath({ group: 'extensions', kind: 'Deployment' })).to.equal(undefined);
    expect(podSpecPath({ group: 'apps', kind: 'Pod' })).to.equal(undefined);
    expect(() => imagesOf({ group: '', kind: 'ConfigMap' }, {})).to.throw(WorkloadError, /ConfigMap/);
  });

  it('lists image volumes (KEP-4639) by their reference, named as volumes, and skips volumes of other types', () => {
    const pod = {
      spec: {
        containers: [{ name: 'app', image: 'example.com/app:1' }],
        volumes: [{ name: 'cfg', configMap: { name: 'x' } }, { name: 'models', image: { reference: 'example.com/models:7', pullPolicy: 'IfNotPresent' } }, { name: 'later', image: {} }],
      },
    };
    const images = imagesOf(POD, pod);
    expect(images).to.deep.equal([
      { name: 'app', kind: 'container', image: 'example.com/app:1', pointer: '/spec/containers/0/image' },
      { name: 'models', kind: 'volume', image: 'example.com/models:7', pointer: '/spec/volumes/1/image/reference' },
    ]);
    expectPointersResolve(pod, images);
  });

  // The table is the one list of what the kubelet pulls: every field in it is found, at the
  // right pointer, in a Pod and in the pod template of every workload kind.
  const KINDS: ReadonlyArray<[group: string, kind: string, wrap: (spec: object) => object]> = [
    ['', 'Pod', (spec) => ({ spec })],
    ['', 'ReplicationController', (spec) => ({ spec: { template: { spec } } })],
    ['apps', 'Deployment', (spec) => ({ spec: { template: { spec } } })],
    ['apps', 'ReplicaSet', (spec) => ({ spec: { template: { spec } } })],
    ['apps', 'StatefulSet', (spec) => ({ spec: { template: { spec } } })],
    ['apps', 'DaemonSet', (spec) => ({ spec: { template: { spec } } })],
    ['batch', 'Job', (spec) => ({ spec: { template: { spec } } })],
    ['batch', 'CronJob', (spec) => ({ spec: { jobTemplate: { spec: { template: { spec } } } } })],
  ];
  it('has one entry per image-bearing pod spec field: containers, initContainers, ephemeralContainers, image volumes', () => {
    expect(IMAGE_FIELDS.map((f) => `${f.list}[].${f.image.join('.')}`)).to.deep.equal([
      'containers[].image',
      'initContainers[].image',
      'ephemeralContainers[].image',
      'volumes[].image.reference',
    ]);
  });
  it("the README's \"What it checks\" table lists every field of the table, with its name in messages and its patch path", () => {
    const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    const section = readme.slice(readme.indexOf('## What it checks'), readme.indexOf('\n## ', readme.indexOf('## What it checks') + 1));
    for (const f of IMAGE_FIELDS) {
      expect(section).to.contain(`| \`${f.list}[].${f.image.join('.')}\``);
      expect(section).to.contain(`| \`${f.kind} "name"\` | \`/spec/${f.list}/N/${f.image.join('/')}\` |`);
    }
  });
  for (const field of IMAGE_FIELDS) {
    for (const [group, kind, wrap] of KINDS) {
      it(`finds ${field.list}[].${field.image.join('.')} in a ${kind}`, () => {
        const item: Record<string, unknown> = { name: 'second' };
        let node = item;
        field.image.forEach((key, i) => {
          if (i === field.image.length - 1) node[key] = 'example.com/from-table:1';
          else node = (node[key] = {}) as Record<string, unknown>;
        });
        const object = wrap({ [field.list]: [{ name: 'first' }, item] });
        const images = imagesOf({ group, kind }, object);
        expect(images.map((i) => [i.kind, i.name, i.image])).to.deep.equal([[field.kind, 'second', 'example.com/from-table:1']]);
        expect(images[0]!.pointer).to.match(new RegExp(`/${field.list}/1/${field.image.join('/')}$`));
        expectPointersResolve(object, images);
      });
    }
  }

  it('skips containers without an image (templates may leave it to be filled in) and names unnamed ones by position', () => {
    const images = imagesOf(POD, { spec: { containers: [{ name: 'noimage' }, { image: 'example.com/x:1' }, { name: 'empty', image: '' }] } });
    expect(images).to.deep.equal([{ name: 'containers[1]', kind: 'container', image: 'example.com/x:1', pointer: '/spec/containers/1/image' }]);
  });

  it('treats missing container lists as empty', () => {
    expect(imagesOf(POD, { spec: {} })).to.deep.equal([]);
    expect(imagesOf(POD, { spec: { containers: null } })).to.deep.equal([]);
  });

  const malformed: Array<[string, unknown, RegExp]> = [
    ['object is null', null, /must be a JSON object, got null/],
    ['object is a list', [], /must be a JSON object, got a list/],
    ['no spec', { metadata: {} }, /Pod has no spec/],
    ['spec is a string', { spec: 'x' }, /spec must be an object, got string/],
    ['containers is an object', { spec: { containers: { name: 'a' } } }, /spec\.containers must be a list, got an object/],
    ['container is a string', { spec: { containers: ['nginx'] } }, /spec\.containers\[0\] must be an object/],
    ['image is a number', { spec: { initContainers: [{ name: 'a', image: 7 }] } }, /spec\.initContainers\[0\]\.image must be a string, got number 7/],
    ['name is a list', { spec: { containers: [{ name: ['a'], image: 'x' }] } }, /spec\.containers\[0\]\.name must be a string/],
    ['volume image is a string', { spec: { volumes: [{ name: 'v', image: 'example.com/x:1' }] } }, /spec\.volumes\[0\]\.image must be an object, got string/],
    ['volume image reference is a list', { spec: { volumes: [{ name: 'v', image: { reference: ['example.com/x:1'] } }] } }, /spec\.volumes\[0\]\.image\.reference must be a string, got a list/],
    ['volumes is an object', { spec: { volumes: { v: { image: { reference: 'x' } } } } }, /spec\.volumes must be a list/],
    ['ephemeralContainers is a string', { spec: { ephemeralContainers: 'x' } }, /spec\.ephemeralContainers must be a list/],
  ];
  for (const [what, obj, msg] of malformed) {
    it(`rejects a Pod whose ${what} with a clear error`, () => {
      expect(() => imagesOf(POD, obj)).to.throw(WorkloadError, msg);
    });
  }

  it('rejects a Deployment without a template, and a CronJob whose jobTemplate is not an object', () => {
    expect(() => imagesOf({ group: 'apps', kind: 'Deployment' }, { spec: { replicas: 1 } })).to.throw(WorkloadError, /Deployment has no spec\.template/);
    expect(() => imagesOf({ group: 'batch', kind: 'CronJob' }, { spec: { jobTemplate: [] } })).to.throw(WorkloadError, /spec\.jobTemplate must be an object/);
  });
});
