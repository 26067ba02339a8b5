// The CLI as an app team uses it, against a real notary-server and registry: the README's
// "A day of an app team" lines run as written (host names replaced, the command installed
// with the README's `npm link`), `policy init` pins what `notary` itself shows, and its
// errors say what to do.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { prepareDemo, type DemoSetup } from '../../hack/demo-setup.js';
import { notaryOk, repoRoot, startStack, type Stack } from '../support/stack.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(command: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { cwd, env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The lines of the README code block that follows `marker`. */
function readmeBlock(marker: string): string[] {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  expect(at, `README has no ${marker}`).to.be.greaterThan(-1);
  const m = /```\w*\n([\s\S]*?)```/.exec(readme.slice(at));
  return m![1]!.trim().split('\n');
}

/** The first code block after a heading (## Command line). */
function readmeBlockAfter(heading: string, nth = 0): string[] {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  const blocks = [...readme.slice(at).matchAll(/```\w*\n([\s\S]*?)```/g)];
  return blocks[nth]![1]!.trim().split('\n');
}

const deployment = (image: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: payments}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - {name: api, image: "${image}"}
`;

const job = (image: string) => `apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: payments}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - {name: migrate, image: "${image}"}
`;

describe('integration: the CLI of an app team against a real Notary server', function () {
  this.timeout(300_000);
  let stack: Stack;
  let demo: DemoSetup;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let host: string;


  before(async () => {
    stack = await startStack();
    demo = await prepareDemo(stack);
    host = stack.registryHost;
    work = mkdtempSync(join(tmpdir(), 'trustgate-cli-'));
    // The README's install step, into a private prefix instead of the machine's global one.
    const prefix = join(work, 'npm-prefix');
    env = { ...process.env, npm_config_prefix: prefix, npm_config_audit: 'false', npm_config_fund: 'false' };
    const link = await sh('npm link', repoRoot(), env);
    expect(link.code, link.stderr).to.equal(0);
    env = { ...env, PATH: `${join(prefix, 'bin')}:${process.env['PATH']}` };
  });

  after(async () => {
    await stack?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("runs the README's day of an app team as written: init, policy check, verify, check a directory, read the denial", async () => {
    const day = join(work, 'day');
    mkdirSync(join(day, 'deploy'), { recursive: true });
    copyFileSync(stack.caFile, join(day, 'notary-ca.pem'));
    const real = (s: string) => s.replaceAll('registry.example.com/payments/api', `${host}/demo/app`).replaceAll('https://notary.example.com:4443', stack.notaryUrl);
    writeFileSync(join(day, 'deploy', 'api.yaml'), deployment(`${host}/demo/app:1.1`));
    writeFileSync(join(day, 'deploy', 'migrate.yaml'), job(`${host}/demo/app:1.2-rc`));

    const lines = readmeBlock('<!-- app-team-day -->');
    expect(lines.map((l) => l.split(' ').slice(0, 3).join(' '))).to.deep.equal([
      'trustgate policy init',
      'trustgate policy check',
      'trustgate verify registry.example.com/payments/api:1.1',
      'trustgate check -f',
    ]);
    const runs: Run[] = [];
    for (const line of lines) runs.push(await sh(real(line), day, env));
    const [init, check, verify, checkDir] = runs as [Run, Run, Run, Run];

    expect(init.code, init.stderr).to.equal(0);
    const policy = parse(readFileSync(join(day, 'policy.yaml'), 'utf8')) as { kind: string; metadata: { namespace: string }; spec: { root: { keys: string[] }; delegations: { roles: string[] } } };
    expect(policy.kind).to.equal('TrustPolicy');
    expect(policy.metadata.namespace).to.equal('payments');
    expect(policy.spec.root.keys).to.deep.equal([demo.app.rootPem]);
    expect(policy.spec.delegations.roles).to.deep.equal(['targets/releases']);
    expect(init.stderr).to.include(new X509Certificate(demo.app.rootPem).fingerprint256).and.match(/trust on first use/i);

    expect(check.code, check.stdout).to.equal(0);
    expect(check.stdout).to.include('TrustPolicy/payments/app ok');

    expect(verify.code, verify.stderr).to.equal(0);
    expect(verify.stdout.trim().split("\n").at(-1)).to.equal(`${host}/demo/app:1.1@${demo.images[1]!.digest}`);

    expect(checkDir.code, checkDir.stderr).to.equal(1);
    const out = checkDir.stdout.trim().split('\n').map((l) => l.replace(/\s+/g, ' '));
    // The README shows this output, with example names and the digest cut short.
    const shown = readmeBlock('`check` exits 1 with one line per image:').map((l) => real(l).replace(/\s+/g, ' ').replace('TrustPolicy payments/api', 'TrustPolicy payments/app'));
    expect(out).to.have.length(shown.length);
    shown.forEach((line, i) => {
      const [head] = line.split('…');
      expect(out[i]!.startsWith(head!), `${out[i]} vs README ${line}`).to.equal(true);
      if (!line.includes('…')) expect(out[i]).to.equal(line);
    });
    expect(out[0]).to.include(`${host}/demo/app:1.1@${demo.images[1]!.digest}`);
  });

  it('every command of the README synopsis exists and accepts every option it shows', async () => {
    const synopsis = readmeBlockAfter('## Command line', 1);
    for (const line of synopsis) {
      const [, ...words] = line.split(' ');
      const command = words[0] === 'policy' ? words.slice(0, 2) : words.slice(0, 1);
      if (command[0]!.startsWith('--')) {
        const r = await sh(line, work, env);
        expect(r.code, line).to.equal(0);
        expect(r.stdout.trim(), line).to.not.equal('');
        continue;
      }
      const help = await sh(`trustgate ${command.join(' ')} --help`, work, env);
      expect(help.code, line).to.equal(0);
      for (const flag of line.match(/--[a-z-]+/g) ?? []) expect(help.stdout, `${line}: ${flag}`).to.include(flag);
    }
    const version = await sh('trustgate --version', work, env);
    expect(version.stdout.trim()).to.equal((JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('policy init prints the key ID that notary shows, and refuses roles the repository does not have', async () => {
    const r = await sh(`trustgate policy init ${demo.app.gun} --server ${stack.notaryUrl} --ca-bundle ${stack.caFile}`, work, env);
    expect(r.code, r.stderr).to.equal(0);
    expect(parse(r.stdout).kind).to.equal('ClusterTrustPolicy');
    const listed = await notaryOk(stack, ['key', 'list']);
    const ids = [...r.stderr.matchAll(/\b([0-9a-f]{64})\b/g)].map((m) => m[1]!);
    expect(ids.length).to.be.greaterThan(0);
    expect(ids.some((id) => listed.stdout.includes(id)), `${r.stderr}\n---\n${listed.stdout}`).to.equal(true);

    const nope = await sh(`trustgate policy init ${demo.app.gun} --server ${stack.notaryUrl} --ca-bundle ${stack.caFile} --roles targets/nope`, work, env);
    expect(nope.code).to.equal(1);
    expect(nope.stderr).to.include('no role targets/nope').and.include('targets/releases').and.include('targets/ci');
    expect(nope.stdout).to.equal('');
  });

  it('policy init without the CA says the certificate is not trusted and that no CA bundle was given', async () => {
    const r = await sh(`trustgate policy init ${demo.app.gun} --server ${stack.notaryUrl}`, work, env);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(stack.notaryUrl).and.match(/TLS/).and.include('--ca-bundle').and.include('no caBundle given').and.match(/certificate CN=[^ ]+ .*\(issued by /);
    expect(r.stderr).to.not.match(/\b(ERR_[A-Z_]+|UNABLE_TO_[A-Z_]+|SELF_SIGNED_[A-Z_]+)\b/);
  });

  it('verify refuses an image its policy does not cover; check --output json is one document with the same verdicts', async () => {
    const policy = join(work, 'app.yaml');
    const init = await sh(`trustgate policy init ${demo.app.gun} --server ${stack.notaryUrl} --ca-bundle ${stack.caFile} --roles targets/releases > ${policy}`, work, env);
    expect(init.code, init.stderr).to.equal(0);
    const other = await sh(`trustgate verify ${demo.stale.gun}:1.0 --policy ${policy}`, work, env);
    expect(other.code).to.equal(1);
    expect(other.stderr).to.include('no policy in').and.include('spec.images').and.include('--ignore-image-match');

    const manifests = join(work, 'list.yaml');
    writeFileSync(manifests, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [parse(deployment(`${host}/demo/app:1.0`)), parse(job(`${host}/demo/app:ci-build`))] }));
    const json = await sh(`trustgate check -f - --policy ${policy} --output json < ${manifests}`, work, env);
    expect(json.code, json.stderr).to.equal(1);
    const doc = JSON.parse(json.stdout) as { allowed: boolean; objects: { kind: string; allowed: boolean; images: { result: string; pinned?: string; reason?: string }[] }[] };
    expect(doc.allowed).to.equal(false);
    expect(doc.objects.map((o) => [o.kind, o.allowed, o.images[0]!.result])).to.deep.equal([
      ['Deployment', true, 'admitted'],
      ['Job', false, 'denied'],
    ]);
    expect(doc.objects[0]!.images[0]!.pinned).to.equal(`${host}/demo/app:1.0@${demo.images[0]!.digest}`);
    expect(doc.objects[1]!.images[0]!.reason).to.include('tag "ci-build" is not signed by targets/releases (required)');
  });
});
