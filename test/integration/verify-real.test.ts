// trustgate against a real notary-server: at every stage of a publishing history (targets,
// x509 and plain-key delegations, nested roles, server snapshot, every key rotation, a
// removal) trustgate must agree with the notary CLI's own `lookup`, while verifying from the
// root key pinned right after `init`.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import { loadRepository } from '../../webhook/src/notary/updater.js';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { pinFromPem } from '../../webhook/src/tuf/index.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { RepositoryCache } from '../../webhook/src/verify/repository-cache.js';
import { signedDigest } from '../../webhook/src/verify/signed-digest.js';
import { createScenario, STAGES, type ScenarioState } from '../support/scenario.js';
import { fetchTuf, notaryLookup, repoRoot, startStack, type Stack } from '../support/stack.js';

const run = promisify(execFile);
const CLI = join(repoRoot(), 'dist/webhook/src/cli/main.js');
const DOCKER_ROLES = new Set(['targets', 'targets/releases']);

function policy(stack: Stack, rootPem: string, extra: Partial<TrustPolicy['spec']> = {}): TrustPolicy {
  return {
    kind: 'ClusterTrustPolicy',
    name: 'demo',
    source: 'test',
    spec: {
      images: ['**'],
      trustServer: { url: stack.notaryUrl, caBundle: stack.caPem },
      root: { keys: [rootPem], threshold: 1 },
      mode: 'enforce',
      ...extra,
    },
  };
}

function policyYaml(stack: Stack, rootPem: string, delegations?: string[]): string {
  const indent = (s: string) => s.trimEnd().split('\n').map((l) => '        ' + l).join('\n');
  return [
    'apiVersion: trustgate.dev/v1alpha1',
    'kind: ClusterTrustPolicy',
    'metadata: {name: demo}',
    'spec:',
    `  images: ["${stack.registryHost}/**"]`,
    '  trustServer:',
    `    url: ${stack.notaryUrl}`,
    '    caBundle: |',
    indent(stack.caPem).replace(/^ {8}/gm, '      '),
    '  root:',
    '    keys:',
    '      - |',
    indent(rootPem),
    ...(delegations ? ['  delegations:', `    roles: [${delegations.join(', ')}]`] : []),
    '',
  ].join('\n');
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('integration: trustgate against a real Notary server', function () {
  this.timeout(300_000);
  let stack: Stack;
  let state: ScenarioState;
  let work: string;

  before(async () => {
    stack = await startStack();
    state = createScenario(stack);
    work = mkdtempSync(join(tmpdir(), 'tg-verify-'));
  });

  after(async () => {
    await stack?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('agrees with `notary lookup` on every tag at every stage, cold and warm, from the root pinned at init', async () => {
    // One engine across all stages: its cache must follow every rotation (warm path).
    let current: TrustPolicy | undefined;
    const warm = new VerificationEngine({
      policies: { policiesFor: () => (current ? [current] : []) },
      sourceFor: (p, gun) => new HttpSource({ url: p.spec.trustServer.url, gun, caBundle: p.spec.trustServer.caBundle! }),
      cache: new RepositoryCache({ refreshIntervalMs: 0 }),
    });
    const checked: string[] = [];
    for (const stage of STAGES) {
      await stage.run(state);
      const pem = state.originalRootPem!;
      expect(pem, 'root pinned after init').to.match(/BEGIN CERTIFICATE/);
      current ??= policy(stack, pem);
      const source = new HttpSource({ url: stack.notaryUrl, gun: state.gun, caBundle: stack.caPem });
      const repo = await loadRepository(source, { pin: pinFromPem([pem]), now: new Date() });
      for (const name of [...stage.present, ...stage.absent]) {
        const theirs = await notaryLookup(stack, state.gun, name);
        const role = state.targets.get(name)?.role ?? 'targets';
        const required = DOCKER_ROLES.has(role) ? undefined : { roles: [role], threshold: 1 };
        const ours = signedDigest(repo, { tag: name }, required, new Date());
        const label = `${stage.name}: ${name}`;
        if (theirs) {
          expect(ours, label).to.include({ ok: true, digest: theirs.digest });
        } else {
          expect(ours.ok, label).to.equal(false);
        }
        if (/^[\w][\w.-]*$/.test(name) && DOCKER_ROLES.has(role)) {
          // The image-level path through the warm engine, as the webhook runs it.
          const v = await warm.verifyImage(`${state.gun}:${name}`, undefined, AbortSignal.timeout(20_000));
          if (theirs) expect(v, label).to.include({ allowed: true, pinned: `${state.gun}:${name}@${theirs.digest}` });
          else expect(v.allowed, label).to.equal(false);
        }
        checked.push(label);
      }
    }
    expect(checked.length).to.equal(STAGES.length * 5);
  });

  it('the CLI prints the pinned reference last and exits 0, or exits non-zero with one line', async () => {
    const file = join(work, 'policy.yaml');
    writeFileSync(file, policyYaml(stack, state.originalRootPem!));
    const v2 = state.targets.get('v2.0')!;
    const ok = await cli(['verify', `${state.gun}:v2.0`, '--policy', file]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout.trim().split('\n').at(-1)).to.equal(`${state.gun}:v2.0@${v2.digest}`);

    const removed = await cli(['verify', `${state.gun}:hello-file`, '--policy', file]);
    expect(removed.code).to.not.equal(0);
    expect(removed.stderr.trim().split('\n')).to.have.length(1);
    expect(removed.stderr).to.include('hello-file').and.include(stack.notaryUrl).and.include('not signed');

    const wrongDigest = await cli(['verify', `${state.gun}:v2.0@sha256:${'0'.repeat(64)}`, '--policy', file]);
    expect(wrongDigest.code).to.not.equal(0);
    expect(wrongDigest.stderr, wrongDigest.stderr).to.include('sha256:' + '0'.repeat(64));

    const byDigest = await cli(['verify', `${state.gun}@${v2.digest}`, '--policy', file]);
    expect(byDigest.code, byDigest.stderr).to.equal(0);
    expect(byDigest.stdout.trim().split('\n').at(-1)).to.equal(`${state.gun}@${v2.digest}`);
  });

  it('requires the delegations a policy lists and names the missing role', async () => {
    const file = join(work, 'qa-policy.yaml');
    writeFileSync(file, policyYaml(stack, state.originalRootPem!, ['targets/releases', 'targets/qa']));
    const res = await cli(['verify', `${state.gun}:v2.0`, '--policy', file]);
    expect(res.code).to.not.equal(0);
    expect(res.stderr).to.include('targets/qa');
  });

  it('refuses a root key that is not pinned', async () => {
    // (Another repository of the same trust dir would share the root key: notary reuses it.)
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const file = join(work, 'wrong-root.yaml');
    writeFileSync(file, policyYaml(stack, publicKey.export({ type: 'spki', format: 'pem' }).toString()));
    const res = await cli(['verify', `${state.gun}:v2.0`, '--policy', file]);
    expect(res.code).to.not.equal(0);
    expect(res.stderr).to.include('root').and.include('pinned');
  });

  it('verifies from a metadata directory, and --at past the timestamp expiry refuses it as expired', async () => {
    const dir = join(work, 'bundle');
    const snapshot = JSON.parse((await fetchTuf(stack, state.gun, 'snapshot.json')).body.toString('utf8')) as {
      signed: { meta: Record<string, unknown> };
    };
    const roles = ['root', 'timestamp', 'snapshot', ...Object.keys(snapshot.signed.meta).filter((r) => r !== 'root' && r !== 'snapshot')];
    // The timestamp must be the one that names this snapshot: fetch it first, then re-check.
    for (const role of new Set(roles)) {
      const res = await fetchTuf(stack, state.gun, `${role}.json`);
      expect(res.status, role).to.equal(200);
      mkdirSync(dirname(join(dir, `${role}.json`)), { recursive: true });
      writeFileSync(join(dir, `${role}.json`), res.body);
    }
    for (let v = 1; ; v++) {
      const res = await fetchTuf(stack, state.gun, `${v}.root.json`);
      if (res.status !== 200) break;
      writeFileSync(join(dir, `${v}.root.json`), res.body);
    }
    const file = join(work, 'policy.yaml');
    writeFileSync(file, policyYaml(stack, state.originalRootPem!));
    const v2 = state.targets.get('v2.0')!;
    const ok = await cli(['verify', `${state.gun}:v2.0`, '--policy', file, '--metadata-dir', dir]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout.trim().split('\n').at(-1)).to.equal(`${state.gun}:v2.0@${v2.digest}`);

    const ts = JSON.parse((await fetchTuf(stack, state.gun, 'timestamp.json')).body.toString('utf8')) as { signed: { expires: string } };
    const later = new Date(new Date(ts.signed.expires).getTime() + 1000).toISOString();
    const stale = await cli(['verify', `${state.gun}:v2.0`, '--policy', file, '--metadata-dir', dir, '--at', later]);
    expect(stale.code).to.not.equal(0);
    expect(stale.stderr).to.include('timestamp').and.include('expired');

    const inspect = await cli(['inspect', `${state.gun}:v2.0`, '--policy', file, '--metadata-dir', dir, '--output', 'json']);
    expect(inspect.code, inspect.stderr).to.equal(0);
    const report = JSON.parse(inspect.stdout) as { roles: { role: string; targets?: { name: string; digest: string }[] }[] };
    const releases = report.roles.find((r) => r.role === 'targets/releases');
    expect(releases?.targets?.find((t) => t.name === 'v2.0')?.digest).to.equal(v2.digest);
  });
});
