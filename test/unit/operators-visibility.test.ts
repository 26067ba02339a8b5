// Issue 14: what operators see. The expiry forecast (gauge bounded by the cache, inspect
// text), per-policy and build metrics, the mode that decided an allow, images admitted
// unverified made visible, full-length warnings, the log line, and an original-images
// annotation that describes the Pod after each admission. Real engine and handler where
// the behaviour lives there; forged trust data signed with real keys.
import { expect } from 'chai';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { ORIGINAL_IMAGES_ANNOTATION } from '../../webhook/src/admission/patch.js';
import { compileExemptions } from '../../webhook/src/policy/exemption.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { describeExpiry, expiryForecast, roleExpiries } from '../../webhook/src/verify/expiry.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import type { Mode } from '../../webhook/src/verify/types.js';
import { MemoryVersionStore } from '../../webhook/src/verify/version-store.js';
import { DAY, GUN, RepoForge } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';
import { applyPatch, captureLogger, decodePatch, fixture, signed, TableVerifier } from '../fixtures/admission/support.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const SERVER = 'https://notary.test:4443';

function policy(name: string, rootPems: string[], opts: { mode?: Mode; images?: string[] } = {}): TrustPolicy {
  return {
    kind: 'ClusterTrustPolicy',
    name,
    source: 'test',
    spec: { images: opts.images ?? [GUN], trustServer: { url: SERVER }, root: { keys: rootPems, threshold: 1 }, mode: opts.mode ?? 'enforce' },
  };
}

function podReview(images: string[], namespace = 'team') {
  const review = fixture('pod-create-dryrun.json');
  review.request.namespace = namespace;
  review.request.object.metadata.namespace = namespace;
  const c = review.request.object.spec.containers[0];
  review.request.object.spec.containers = images.map((image, i) => ({ ...c, name: `c${i}`, image }));
  return review;
}

function series(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('operators: expiry forecast', () => {
  it('forecasts each role, a delegation no later than its parent, soonest first', () => {
    const forge = new RepoForge({ now: NOW });
    forge.expire('timestamp', 3 * DAY + 5 * 3600_000).expire('targets/releases', 40 * DAY).expire('targets/releases/nightly', 400 * DAY);
    return (async () => {
      const { loadRepository } = await import('../../webhook/src/notary/updater.js');
      const { pinFromPem } = await import('../../webhook/src/tuf/index.js');
      const built = forge.build();
      const repo = await loadRepository(new ForgedSource(built), { pin: pinFromPem(built.rootPems, 1), now: NOW });
      const byRole = new Map(roleExpiries(repo).map((e) => [e.role, e.expires.getTime()]));
      expect(byRole.get('targets/releases')).to.equal(NOW.getTime() + 40 * DAY);
      // nightly is signed for 400 days but hangs below releases: trusted only as long as releases.
      expect(byRole.get('targets/releases/nightly')).to.equal(NOW.getTime() + 40 * DAY);
      const lines = expiryForecast(repo, NOW);
      expect(lines[0]).to.equal('timestamp expires in 3 days');
      expect(lines).to.include('targets/releases expires in 40 days');
      expect(describeExpiry({ role: 'snapshot', expires: new Date(NOW.getTime() - 2 * 3600_000) }, NOW)).to.equal('snapshot expired 2 hours ago');
    })();
  });

  it('exports one gauge series per server, repository and role, and drops them when the cache evicts the entry', async () => {
    const forges = ['a', 'b'].map((n) => new RepoForge({ now: NOW, gun: `localhost:5000/demo/${n}` }));
    forges[0]!.expire('targets/releases', 9 * DAY);
    const sources = new Map(forges.map((f) => [f.build().gun, new ForgedSource(f.build())]));
    const metrics = new Metrics();
    const policies = forges.map((f) => policy(f.build().gun, f.build().rootPems, { images: [f.build().gun] }));
    const engine = new VerificationEngine({
      policies: { policiesFor: (ref) => policies.filter((p) => ref.startsWith(`${p.spec.images[0]}:`)) },
      sourceFor: (_p, gun) => sources.get(gun)!,
      clock: () => NOW,
      cache: new RepositoryCache({ clock: () => NOW, maxEntries: 1 }),
      metrics,
    });
    const a = await engine.verifyImage('localhost:5000/demo/a:v2.0', undefined, AbortSignal.timeout(5000));
    expect(a.allowed, JSON.stringify(a.failures)).to.equal(true);
    let gauge = series(metrics.render(), 'trustgate_trust_data_expiry_timestamp_seconds');
    expect(gauge).to.include(`trustgate_trust_data_expiry_timestamp_seconds{server="${SERVER}",repository="localhost:5000/demo/a",role="targets/releases"} ${(NOW.getTime() + 9 * DAY) / 1000}`);
    expect(gauge.some((l) => l.includes('role="timestamp"'))).to.equal(true);

    const b = await engine.verifyImage('localhost:5000/demo/b:v2.0', undefined, AbortSignal.timeout(5000));
    expect(b.allowed, JSON.stringify(b.failures)).to.equal(true);
    gauge = series(metrics.render(), 'trustgate_trust_data_expiry_timestamp_seconds');
    // The cache holds one repository, and so does the gauge.
    expect(gauge.some((l) => l.includes('repository="localhost:5000/demo/a"'))).to.equal(false);
    expect(gauge.some((l) => l.includes('repository="localhost:5000/demo/b"'))).to.equal(true);
  });

  it('counts a refused rollback by server and repository', async () => {
    const forge = new RepoForge({ now: NOW });
    const versions = new MemoryVersionStore();
    forge.bump('timestamp', 4);
    const newer = forge.build();
    forge.bump('timestamp', -4);
    const older = forge.build();
    const metrics = new Metrics();
    const make = (repo: typeof newer) =>
      new VerificationEngine({ policies: { policiesFor: () => [policy('p', newer.rootPems)] }, sourceFor: () => new ForgedSource(repo), clock: () => NOW, versions, metrics });
    expect((await make(newer).verifyImage(`${GUN}:v2.0`, undefined, AbortSignal.timeout(5000))).allowed).to.equal(true);
    const v = await make(older).verifyImage(`${GUN}:v2.0`, undefined, AbortSignal.timeout(5000));
    expect(v.allowed).to.equal(false);
    expect(v.failures[0]!.code).to.equal('rollback');
    expect(metrics.rollbackRefusals.get({ server: SERVER, repository: GUN })).to.equal(1);
  });
});

describe('operators: what each admission says and counts', () => {
  let forge: RepoForge;
  before(() => {
    forge = new RepoForge({ now: NOW });
  });

  function rig(policies: TrustPolicy[], extra: { exempt?: readonly string[]; allowUnmatched?: boolean } = {}) {
    const metrics = new Metrics({ version: '9.9.9' });
    const log = captureLogger();
    const engine = new VerificationEngine({
      policies: { policiesFor: (ref) => policies.filter((p) => p.spec.images.some((i) => ref.startsWith(i))) },
      sourceFor: () => new ForgedSource(forge.build()),
      clock: () => NOW,
      isExempt: compileExemptions([...(extra.exempt ?? [])]),
      ...(extra.allowUnmatched ? { allowUnmatched: true } : {}),
      metrics,
    });
    const handle = createAdmissionHandler({ verifier: engine, mutate: true, log, metrics });
    return { handle, metrics, log };
  }

  it('an allow verified by an enforce policy carries mode="enforce", counts the policy, and logs the pinned digest and policy', async () => {
    const { handle, metrics, log } = rig([policy('signed', forge.build().rootPems)]);
    const out = await handle(podReview([`${GUN}:v2.0`]));
    expect(out.response.allowed).to.equal(true);
    expect(metrics.admissions.get({ operation: 'CREATE', result: 'allowed', mode: 'enforce', webhook: 'mutate' })).to.equal(1);
    expect(metrics.policyResults.get({ policy: 'ClusterTrustPolicy/signed', mode: 'enforce', result: 'pass' })).to.equal(1);
    const line = log.lines.find((l) => l.msg === 'admission')!;
    expect(line.level).to.equal('info');
    expect((line.fields['pinned'] as Record<string, string>)[`${GUN}:v2.0`]).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(line.fields['policies']).to.deep.equal(['ClusterTrustPolicy/signed enforce pass']);
    const text = metrics.render();
    expect(text).to.contain(`trustgate_build_info{version="9.9.9",node="${process.version}"} 1`);
  });

  it('a denial is logged at warn, whole, and counted as a policy failure', async () => {
    const { handle, metrics, log } = rig([policy('signed', forge.build().rootPems)]);
    const out = await handle(podReview([`${GUN}:not-signed`]));
    expect(out.response.allowed).to.equal(false);
    const line = log.lines.find((l) => l.msg === 'admission')!;
    expect(line.level).to.equal('warn');
    expect(line.fields['message']).to.equal(out.response.status!.message);
    expect(out.response.status!.message).to.contain('not-signed');
    expect(metrics.policyResults.get({ policy: 'ClusterTrustPolicy/signed', mode: 'enforce', result: 'fail' })).to.equal(1);
  });

  for (const [why, extra, expected] of [
    ['--exempt', { exempt: ['registry.test/tools/helper:1.0'] }, 'it matches an --exempt pattern'],
    ['--allow-unmatched', { allowUnmatched: true }, '--allow-unmatched is set'],
  ] as const) {
    it(`an image admitted by ${why} gets a warning, an audit annotation and result="unverified"`, async () => {
      const { handle, metrics, log } = rig([policy('signed', forge.build().rootPems)], extra);
      const out = await handle(podReview(['registry.test/tools/helper:1.0', `${GUN}:v2.0`]));
      expect(out.response.allowed).to.equal(true);
      expect(out.response.warnings).to.have.length(1);
      expect(out.response.warnings![0]).to.equal(`trustgate: registry.test/tools/helper:1.0 was not verified: ${expected.startsWith('it') ? expected : `no TrustPolicy or ClusterTrustPolicy matches it and ${expected}`}`);
      expect(out.response.auditAnnotations!['unverified-1']).to.equal(`container "c0" image "registry.test/tools/helper:1.0": not verified: ${expected.startsWith('it') ? expected : `no TrustPolicy or ClusterTrustPolicy matches it and ${expected}`}`);
      expect(metrics.admissions.get({ operation: 'CREATE', result: 'unverified', mode: 'enforce', webhook: 'mutate' })).to.equal(1);
      const line = log.lines.find((l) => l.msg === 'admission')!;
      expect(line.level).to.equal('warn');
      expect(line.fields['unverified']).to.deep.equal({ 'registry.test/tools/helper:1.0': why === '--exempt' ? 'exempt' : 'unmatched' });
    });
  }
});

describe('operators: the original-images annotation describes the Pod after the admission', () => {
  const ANN = ORIGINAL_IMAGES_ANNOTATION;
  const handle = createAdmissionHandler({ verifier: new TableVerifier(), mutate: true });

  async function admit(review: any) {
    const out = await handle(review);
    expect(out.response.allowed).to.equal(true);
    return out.response.patch ? applyPatch(review.request.object, decodePatch(out.response.patch)) : review.request.object;
  }

  function update(old: any, change: (pod: any) => void): any {
    const review = fixture('pod-update.json');
    review.request.oldObject = structuredClone(old);
    review.request.object = structuredClone(old);
    change(review.request.object);
    return review;
  }

  it('an UPDATE that changes an image replaces its entry; one that sets a digest removes it', async () => {
    const created = await admit(fixture('pod-create.json'));
    expect(JSON.parse(created.metadata.annotations[ANN])['/spec/containers/0/image']).to.equal('registry.example.com/payments/api:1.4.2');

    const updated = await admit(update(created, (p) => (p.spec.containers[0].image = 'registry.example.com/payments/api:1.4.3')));
    expect(updated.spec.containers[0].image).to.equal(signed('registry.example.com/payments/api:1.4.3').pinned);
    const recorded = JSON.parse(updated.metadata.annotations[ANN]);
    expect(recorded['/spec/containers/0/image']).to.equal('registry.example.com/payments/api:1.4.3');
    expect(recorded['/spec/containers/1/image']).to.equal('nginx:1.25');

    const digest = `registry.example.com/payments/api@sha256:${'cd'.repeat(32)}`;
    const byDigest = await admit(update(updated, (p) => (p.spec.containers[0].image = digest)));
    expect(byDigest.spec.containers[0].image).to.equal(digest);
    expect(JSON.parse(byDigest.metadata.annotations[ANN])).to.not.have.property('/spec/containers/0/image');
    expect(JSON.parse(byDigest.metadata.annotations[ANN])['/spec/containers/1/image']).to.equal('nginx:1.25');
  });

  it('records the image of an ephemeral container next to the entries already there', async () => {
    const review = fixture('pod-ephemeralcontainers.json');
    review.request.object.metadata.annotations = { ...(review.request.object.metadata.annotations ?? {}), [ANN]: JSON.stringify({ '/spec/containers/0/image': 'registry.example.com/payments/api:1.4.2' }) };
    review.request.object.spec.containers[0].image = signed('registry.example.com/payments/api:1.4.2').pinned;
    const pod = await admit(review);
    expect(JSON.parse(pod.metadata.annotations[ANN])).to.deep.equal({
      '/spec/containers/0/image': 'registry.example.com/payments/api:1.4.2',
      '/spec/ephemeralContainers/0/image': 'busybox:1.36',
    });
  });
});

describe('operators: `trustgate inspect` forecasts expiry', () => {
  it('prints "<role> expires in N days", soonest first, and the same in JSON', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdirSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { dirname, join } = await import('node:path');
    const { CLI } = await import('../support/e2e-webhook.js');
    const { policyYaml } = await import('../support/e2e-policies.js');
    const forge = new RepoForge({ now: NOW });
    forge.expire('timestamp', 3 * DAY + 3600_000).expire('targets/releases', 30 * DAY);
    const repo = forge.build();
    const work = mkdtempSync(join(tmpdir(), 'trustgate-inspect-'));
    try {
      for (const [role, bytes] of repo.files) {
        mkdirSync(dirname(join(work, `${role}.json`)), { recursive: true });
        writeFileSync(join(work, `${role}.json`), bytes);
      }
      repo.roots.forEach((bytes, i) => writeFileSync(join(work, `${i + 1}.root.json`), bytes));
      const policyFile = join(work, 'policy.yaml');
      writeFileSync(policyFile, policyYaml({ kind: 'ClusterTrustPolicy', name: 'demo', images: [GUN], server: SERVER, rootPems: repo.rootPems }));
      const run = (extra: string[]) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [CLI, 'inspect', `${GUN}:v2.0`, '--policy', policyFile, '--metadata-dir', work, '--at', NOW.toISOString(), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (b: Buffer) => (stdout += b));
          child.stderr.on('data', (b: Buffer) => (stderr += b));
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        });
      const text = await run([]);
      expect(text.code, text.stderr).to.equal(0);
      const forecast = text.stdout.slice(text.stdout.indexOf('Expiry forecast')).split('\n');
      expect(forecast.slice(0, 3)).to.deep.equal(['Expiry forecast (soonest first):', '  timestamp expires in 3 days', '  targets/releases expires in 30 days']);
      const json = await run(['--output', 'json']);
      const report = JSON.parse(json.stdout) as { forecast: { role: string; expires: string }[] };
      expect(report.forecast.find((f) => f.role === 'targets/releases')?.expires).to.equal(new Date(NOW.getTime() + 30 * DAY).toISOString());
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
