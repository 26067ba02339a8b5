// The trustgate command line as a person meets it: `check` gives the webhook's verdicts for
// manifests (modes, scope, unmatched, exemptions, Lists, stdin), `verify` honours spec.images,
// every command has help and the version, and bad input gets a message naming what to fix.
// Trust data is forged and signed with real keys, read offline with --metadata-dir at a
// pinned instant, so nothing here goes stale.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { COMMANDS } from '../../webhook/src/cli/commands.js';
import { policyYaml, type E2ePolicy } from '../support/e2e-policies.js';
import { CLI } from '../support/e2e-webhook.js';
import { GUN, manifest, RepoForge, sha256hex, type ForgedRepo } from '../support/forge.js';
import { repoRoot } from '../support/stack.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const AT = ['--at', NOW.toISOString()];
const V2 = `sha256:${sha256hex(manifest('v2.0'))}`;

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], input = ''): Promise<Exit> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The forged repository as role files: DIR/<gun>/ for check, DIR itself for verify. */
function writeBundle(repo: ForgedRepo, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [role, bytes] of repo.files) {
    mkdirSync(dirname(join(dir, `${role}.json`)), { recursive: true });
    writeFileSync(join(dir, `${role}.json`), bytes);
  }
  repo.roots.forEach((bytes, i) => writeFileSync(join(dir, `${i + 1}.root.json`), bytes));
}

const pod = (name: string, image: string, namespace?: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec: { containers: [{ name: 'app', image }] },
});
const deployment = (name: string, image: string) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }] } } },
});
const cronJob = (name: string, image: string) => ({
  apiVersion: 'batch/v1',
  kind: 'CronJob',
  metadata: { name },
  spec: { schedule: '* * * * *', jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', initContainers: [{ name: 'init', image }], containers: [{ name: 'app', image }] } } } } },
});

describe('trustgate CLI', function () {
  this.timeout(60_000);
  let work: string;
  let forge: RepoForge;
  let repo: ForgedRepo;
  let bundles: string;
  let policies: string;
  let cluster: E2ePolicy;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'trustgate-cli-unit-'));
    forge = new RepoForge({ now: NOW });
    repo = forge.build();
    bundles = join(work, 'bundles');
    writeBundle(repo, join(bundles, GUN));
    cluster = { kind: 'ClusterTrustPolicy', name: 'all', images: [`${GUN}`], server: 'https://notary.test:4443', rootPems: repo.rootPems };
    const teamWarn: E2ePolicy = { kind: 'TrustPolicy', name: 'qa', namespace: 'team', images: [`${GUN}`], server: 'https://notary.test:4443', rootPems: repo.rootPems, delegations: ['targets/qa'], mode: 'warn' };
    policies = join(work, 'policies.yaml');
    writeFileSync(policies, `${policyYaml(cluster)}---\n${policyYaml(teamWarn)}`);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  const check = (args: string[], input?: string) => runCli(['check', ...args, '--policy', policies, '--metadata-dir', bundles, ...AT], input);

  describe('check', () => {
    it("gives each image the webhook's verdict: pinned when signed, denied with the reason when not, across Pods, workloads and Lists", async () => {
      const file = join(work, 'app.yaml');
      const list = { apiVersion: 'v1', kind: 'List', items: [cronJob('nightly', `${GUN}:v2.0`)] };
      writeFileSync(file, [deployment('web', `${GUN}:v2.0`), pod('canary', `${GUN}:v9`), list].map((o) => stringify(o)).join('---\n'));
      const r = await check(['-f', file]);
      expect(r.code, r.stderr).to.equal(1);
      const lines = r.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
      expect(lines).to.deep.equal([
        ['Deployment/web (default)', 'container app', `${GUN}:v2.0`, 'admitted', `${GUN}:v2.0@${V2}`],
        ['Pod/canary (default)', 'container app', `${GUN}:v9`, 'DENIED', `ClusterTrustPolicy all, role targets, server https://notary.test:4443: tag "v9" is not signed in targets/releases or targets`],
        ['CronJob/nightly (default)', 'container app', `${GUN}:v2.0`, 'admitted', `${GUN}:v2.0@${V2}`],
        ['CronJob/nightly (default)', 'initContainer init', `${GUN}:v2.0`, 'admitted', `${GUN}:v2.0@${V2}`],
      ]);
      expect(r.stderr).to.include('4 images in 3 objects: 1 object would be denied');
    });

    it('applies namespaced policies in their namespace only, in the mode they set (warn: admitted, said so)', async () => {
      const manifests = stringify(pod('p', `${GUN}:v2.0`));
      const outside = await check(['-f', '-', '--output', 'json'], manifests);
      expect(outside.code, outside.stderr).to.equal(0);
      const inTeam = await check(['-f', '-', '--namespace', 'team', '--output', 'json'], manifests);
      expect(inTeam.code, inTeam.stderr).to.equal(0);
      const doc = JSON.parse(inTeam.stdout) as { allowed: boolean; objects: { namespace: string; warnings?: string[]; images: { result: string; pinned?: string; reason?: string }[] }[] };
      expect(doc.allowed).to.equal(true);
      expect(doc.objects[0]!.namespace).to.equal('team');
      expect(doc.objects[0]!.images[0]).to.deep.include({ result: 'warn', pinned: `${GUN}:v2.0@${V2}` });
      expect(doc.objects[0]!.images[0]!.reason).to.equal('TrustPolicy team/qa, role targets/qa, server https://notary.test:4443: tag "v2.0" is not signed by targets/qa (required)');
      expect(doc.objects[0]!.warnings).to.have.length(1);
      expect((JSON.parse(outside.stdout) as typeof doc).objects[0]!.images[0]!.result).to.equal('admitted');
    });

    it('denies an image no policy matches unless unmatched images are allowed; exempts what --exempt names', async () => {
      const manifests = stringify(pod('other', 'registry.other.test/tools/debug:1'));
      const denied = await check(['-f', '-'], manifests);
      expect(denied.code).to.equal(1);
      expect(denied.stdout).to.include('DENIED').and.include('no TrustPolicy or ClusterTrustPolicy matches registry.other.test/tools/debug:1');
      const allowed = await check(['-f', '-', '--allow-unmatched'], manifests);
      expect(allowed.code, allowed.stdout).to.equal(0);
      const exempt = await check(['-f', '-', '--exempt', 'registry.other.test/tools/**'], manifests);
      expect(exempt.code, exempt.stdout).to.equal(0);
      expect(exempt.stdout).to.include('admitted').and.include('not verified');
    });

    it('reads directories recursively and JSON files; skips kinds the webhook does not check', async () => {
      const dir = join(work, 'deploy');
      mkdirSync(join(dir, 'nested'), { recursive: true });
      writeFileSync(join(dir, 'a.json'), JSON.stringify(deployment('a', `${GUN}:v2.0`)));
      writeFileSync(join(dir, 'nested', 'b.yaml'), `${stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } })}---\n${stringify(pod('b', `${GUN}:v2.0`, 'team'))}`);
      writeFileSync(join(dir, 'README.md'), 'not a manifest');
      const r = await check(['-f', dir, '--output', 'json']);
      expect(r.code, r.stderr).to.equal(0);
      const doc = JSON.parse(r.stdout) as { objects: { file: string; kind: string; namespace: string; images: { result: string }[] }[] };
      expect(doc.objects.map((o) => [o.kind, o.namespace, o.images[0]!.result])).to.deep.equal([
        ['Deployment', 'default', 'admitted'],
        ['Pod', 'team', 'warn'],
      ]);
    });

    it('is the webhook: a namespaced policy without a namespace is refused as the webhook refuses it', async () => {
      const file = join(work, 'no-ns.yaml');
      writeFileSync(file, policyYaml({ ...cluster, kind: 'TrustPolicy', name: 'loose' }));
      const r = await runCli(['check', '-f', '-', '--policy', file, '--metadata-dir', bundles, ...AT], stringify(pod('p', `${GUN}:v2.0`)));
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include(`${file}: metadata.namespace: a TrustPolicy applies in one namespace`);
    });

    it('reads --policy-dir as serve does, and says which files the webhook would ignore', async () => {
      const dir = join(work, 'policy-dir');
      mkdirSync(dir);
      writeFileSync(join(dir, 'all.yaml'), policyYaml(cluster));
      const ok = await runCli(['check', '-f', '-', '--policy-dir', dir, '--metadata-dir', bundles, ...AT], stringify(pod('p', `${GUN}:v2.0`)));
      expect(ok.code, ok.stderr).to.equal(0);
      writeFileSync(join(dir, 'broken.yaml'), 'kind: TrustPolicy\n');
      const bad = await runCli(['check', '-f', '-', '--policy-dir', dir, '--metadata-dir', bundles, ...AT], stringify(pod('p', `${GUN}:v2.0`)));
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.include('the webhook would ignore these files').and.include('broken.yaml');
    });
  });

  describe('verify and inspect honour the policies', () => {
    it('applies only the policies whose spec.images match, all of them, and refuses an image none matches', async () => {
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const file = join(work, 'two.yaml');
      // A policy for other images with a root that would refuse this repository: it must not apply.
      writeFileSync(file, `${policyYaml(cluster)}---\n${policyYaml({ ...cluster, name: 'others', images: ['registry.other.test/**'], rootPems: [other] })}`);
      const dir = join(bundles, GUN);
      const ok = await runCli(['verify', `${GUN}:v2.0`, '--policy', file, '--metadata-dir', dir, ...AT]);
      expect(ok.code, ok.stderr).to.equal(0);
      expect(ok.stdout.trim()).to.equal(`${GUN}:v2.0@${V2}`);
      expect(ok.stderr).to.include('under ClusterTrustPolicy/all').and.not.include('others');

      const unmatched = await runCli(['verify', 'registry.third.test/x:1', '--policy', file, '--metadata-dir', dir, ...AT]);
      expect(unmatched.code).to.equal(1);
      expect(unmatched.stderr.trim().split('\n')).to.have.length(1);
      expect(unmatched.stderr).to.include(`no policy in ${file} matches registry.third.test/x:1`).and.include('--ignore-image-match');

      const forced = await runCli(['verify', `${GUN}:v2.0`, '--policy', file, '--metadata-dir', dir, '--ignore-image-match', ...AT]);
      expect(forced.code).to.equal(1);
      expect(forced.stderr).to.include('ClusterTrustPolicy others').and.include('none of the pinned keys is a root key');

      const inspect = await runCli(['inspect', 'registry.third.test/x:1', '--policy', file, '--metadata-dir', dir, ...AT]);
      expect(inspect.code).to.equal(1);
      expect(inspect.stderr).to.include('no policy in');
    });

    it('--output json writes exactly one JSON document to stdout, on success and on refusal', async () => {
      const dir = join(bundles, GUN);
      const one = join(work, 'one.yaml');
      writeFileSync(one, policyYaml(cluster));
      for (const [image, code] of [[`${GUN}:v2.0`, 0], [`${GUN}:v9`, 1]] as const) {
        const r = await runCli(['verify', image, '--policy', one, '--metadata-dir', dir, '--output', 'json', ...AT]);
        expect(r.code, r.stderr).to.equal(code);
        const doc = JSON.parse(r.stdout) as { verified: boolean; pinned?: string };
        expect(doc.verified).to.equal(code === 0);
      }
      // Without --namespace every TrustPolicy given applies, whatever its namespace: here a warn-mode one that fails, which fails the check.
      const strict = await runCli(['verify', `${GUN}:v2.0`, '--policy', policies, '--metadata-dir', dir, ...AT]);
      expect(strict.code).to.equal(1);
      expect(strict.stderr).to.include('TrustPolicy team/qa');
      const elsewhere = await runCli(['verify', `${GUN}:v2.0`, '--policy', policies, '--metadata-dir', dir, '--namespace', 'prod', ...AT]);
      expect(elsewhere.code, elsewhere.stderr).to.equal(0);
      const inspect = await runCli(['inspect', `${GUN}:v2.0`, '--policy', policies, '--metadata-dir', dir, '--output', 'json', ...AT]);
      expect(inspect.code, inspect.stderr).to.equal(0);
      expect((JSON.parse(inspect.stdout) as { policies: string[] }).policies).to.deep.equal(['ClusterTrustPolicy/all', 'TrustPolicy/team/qa']);
    });
  });

  describe('start-up', () => {
    /** Every module a dist module imports statically, transitively (dynamic import() is left out: that is the point). */
    function staticGraph(entry: string): Set<string> {
      const seen = new Set<string>();
      const visit = (file: string) => {
        if (seen.has(file)) return;
        seen.add(file);
        if (!file.startsWith('/')) return;
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)) {
          const spec = (m[1] ?? m[2])!;
          visit(spec.startsWith('.') ? join(dirname(file), spec) : spec);
        }
      };
      visit(entry);
      return seen;
    }

    it('check, verify, inspect and policy commands never load the Kubernetes client or the HTTP server', () => {
      const cli = join(repoRoot(), 'dist', 'webhook', 'src', 'cli');
      for (const entry of ['main.js', 'check.js', 'verify.js', 'policy-init.js', 'policy-check.js']) {
        const graph = [...staticGraph(join(cli, entry))];
        expect(graph.filter((m) => m.startsWith('@kubernetes/') || m === 'express'), entry).to.deep.equal([]);
      }
      // The check of the check: serve's wiring does reach it.
      expect([...staticGraph(join(cli, 'serve.js'))]).to.include('express');
    });
  });

  describe('help and version', () => {
    it('prints every option, its default and an example for every command, exit 0, three ways', async () => {
      for (const spec of COMMANDS) {
        const words = spec.name.split(' ');
        for (const args of [[...words, '--help'], ['help', ...words], [...words, '-h']]) {
          const r = await runCli(args);
          expect(r.code, args.join(' ')).to.equal(0);
          expect(r.stdout).to.include(`usage: trustgate ${spec.name}`).and.include('Example:').and.include(spec.example);
          for (const o of spec.options) {
            expect(r.stdout, `${spec.name} --${o.flag}`).to.include(`--${o.flag}`);
            if (o.default !== undefined) expect(r.stdout).to.include(`(default ${o.default})`);
          }
        }
      }
      const serve = await runCli(['help', 'serve']);
      expect(serve.code).to.equal(0);
      expect(serve.stdout).to.include('--exempt').and.include('--state-file').and.include('TRUSTGATE_REFRESH_SECONDS').and.include('Example:');
      const top = await runCli(['--help']);
      expect(top.code).to.equal(0);
      for (const spec of COMMANDS) expect(top.stdout).to.include(spec.name);
    });

    it('--version prints the package version', async () => {
      const r = await runCli(['--version']);
      expect(r.code).to.equal(0);
      expect(r.stdout.trim()).to.equal((JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version);
    });
  });

  describe('errors a person can act on (exit 2, no raw codes)', () => {
    const raw = /\b(ENOENT|EISDIR|EACCES|ERR_[A-Z_]+|error:[0-9A-F]{8})\b/;

    it('a missing file, a directory given as a policy file', async () => {
      const missing = await runCli(['verify', `${GUN}:v2.0`, '--policy', join(work, 'nope.yaml')]);
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.include(`policy file ${join(work, 'nope.yaml')} does not exist`).and.not.match(raw);
      const dir = await runCli(['verify', `${GUN}:v2.0`, '--policy', work]);
      expect(dir.code).to.equal(2);
      expect(dir.stderr).to.include(`policy file ${work} is a directory`).and.not.match(raw);
      const noManifest = await runCli(['check', '-f', join(work, 'nope'), '--policy', policies]);
      expect(noManifest.code).to.equal(2);
      expect(noManifest.stderr).to.include('manifest').and.include('does not exist');
    });

    it('broken YAML: file, line, column and a frame of the text', async () => {
      const file = join(work, 'broken.yaml');
      writeFileSync(file, 'apiVersion: v1\nkind: Pod\nspec:\n  containers: [ {name: a\n  image: x\n');
      const r = await runCli(['check', '-f', file, '--policy', policies, ...AT]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: not valid YAML`));
      expect(r.stderr).to.include('containers: [ {name: a').and.include('^');
    });

    it('--at with an accepted example; --output with the accepted values', async () => {
      const at = await runCli(['verify', `${GUN}:v2.0`, '--policy', policies, '--at', 'yesterday']);
      expect(at.code).to.equal(2);
      expect(at.stderr).to.include('--at "yesterday" is not an RFC 3339 time').and.include('e.g. --at 2026-12-01T00:00:00Z');
      const out = await runCli(['verify', `${GUN}:v2.0`, '--policy', policies, '--output', 'yaml']);
      expect(out.code).to.equal(2);
      expect(out.stderr).to.include('--output must be text or json');
    });

    it('policy check: a PEM that does not parse, in words; an empty file; a namespaced policy without namespace; stdin', async () => {
      const bad = policyYaml({ ...cluster, rootPems: ['-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n'] });
      const pem = await runCli(['policy', 'check', '-'], bad);
      expect(pem.code).to.equal(1);
      expect(pem.stdout).to.include('<stdin>: spec.root.keys[0]: not a PEM public key or certificate: the PUBLIC KEY block is not valid base64').and.not.match(raw);

      const empty = join(work, 'empty.yaml');
      writeFileSync(empty, '# nothing yet\n');
      const e = await runCli(['policy', 'check', empty]);
      expect(e.code).to.equal(1);
      expect(e.stdout).to.include(`${empty}: holds no TrustPolicy or ClusterTrustPolicy`);

      const noNs = await runCli(['policy', 'check', '-'], policyYaml({ ...cluster, kind: 'TrustPolicy' }));
      expect(noNs.code).to.equal(1);
      expect(noNs.stdout).to.include('metadata.namespace: a TrustPolicy applies in one namespace');

      const good = await runCli(['policy', 'check', '-'], policyYaml(cluster));
      expect(good.code, good.stdout).to.equal(0);
      expect(good.stdout).to.include('<stdin>: ClusterTrustPolicy/all ok');
    });

    it('usage errors name the command and point at its help', async () => {
      const r = await runCli(['check', '-f', '-']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('exactly one of --policy FILE... and --policy-dir DIR').and.include('trustgate help COMMAND');
      const unknown = await runCli(['verify', `${GUN}:v2.0`, '--polcy', 'x']);
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.include("verify: Unknown option '--polcy'");
    });
  });
});
