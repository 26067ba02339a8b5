// Extracting every image a Pod or a workload template would run, with pointers that
// really point at the image field.
import { expect } from 'chai';
import { imagesOf, podSpecPath, WorkloadError, type ContainerImage } from '../../webhook/src/images/workloads.js';
import { at, fixture } from '../fixtures/admission/support.js';

const POD = { group: '', kind: 'Pod' };

function expectPointersResolve(object: unknown, images: ContainerImage[]): void {
  for (const i of images) expect(at(object, i.pointer), i.pointer).to.equal(i.image);
}

describe('workload image extraction', () => {
  it('lists containers, initContainers with names, kinds and pointers from an API-server Pod', () => {
    const pod = fixture('pod-create.json').request.object;
    const images = imagesOf(POD, pod);
    expect(images).to.deep.equal([
      { containerName: 'api', kind: 'container', image: 'registry.example.com/payments/api:1.4.2', pointer: '/spec/containers/0/image' },
      { containerName: 'proxy', kind: 'container', image: 'nginx:1.25', pointer: '/spec/containers/1/image' },
      { containerName: 'migrate', kind: 'initContainer', image: 'registry.example.com/payments/migrate:1.4.2', pointer: '/spec/initContainers/0/image' },
    ]);
    expectPointersResolve(pod, images);
  });

  it('includes ephemeral containers added by kubectl debug', () => {
    const pod = fixture('pod-ephemeralcontainers.json').request.object;
    const images = imagesOf(POD, pod);
    const eph = images.filter((i) => i.kind === 'ephemeralContainer');
    expect(eph).to.deep.equal([{ containerName: 'debugger-8xk2p', kind: 'ephemeralContainer', image: 'busybox:1.36', pointer: '/spec/ephemeralContainers/0/image' }]);
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

  it('skips containers without an image (templates may leave it to be filled in) and names unnamed ones by position', () => {
    const images = imagesOf(POD, { spec: { containers: [{ name: 'noimage' }, { image: 'example.com/x:1' }, { name: 'empty', image: '' }] } });
    expect(images).to.deep.equal([{ containerName: 'containers[1]', kind: 'container', image: 'example.com/x:1', pointer: '/spec/containers/1/image' }]);
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
