// The CLI with TUF 1.0 policies, through the real binary: verify and check read a TUF 1.0
// repository's metadata from --metadata-dir (air-gapped), --at judges expiry at another
// instant, and `tuf target` prints exactly the entry the webhook looks up (a repository
// signed with that entry admits the image).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { TargetFile } from '@tufjs/models';
import { CLI } from '../support/e2e-webhook.js';
import { repoRoot } from '../support/stack.js';
import { DAY, TufRepo, sha256hex } from '../support/tuf1-repo.js';

const REG = 'registry.example.com';
const MANIFEST = '{"schemaVersion":2,"config":{}}';
const DIGEST = `sha256:${sha256hex(Buffer.from(MANIFEST))}`;

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('CLI with TUF 1.0 policies (verify, check, tuf target)', function () {
  this.timeout(60_000);
  let work: string;
  let metadata: string;
  let policyFile: string;
  let repo: TufRepo;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'tg-cli-tuf-'));
    metadata = join(work, 'metadata');
    mkdirSync(metadata);
    repo = new TufRepo();
    repo.delegate('payments-release', { paths: [`${REG}/payments/*`] });
    // The entry comes from `trustgate tuf target`, as a publisher would take it.
    const printed = await runCli(['tuf', 'target', `${REG}/payments/api:1.4@${DIGEST}`, '--size', String(Buffer.byteLength(MANIFEST)), '--format', 'targets']);
    expect(printed.code, printed.stderr).to.equal(0);
    const [[path, info]] = Object.entries(JSON.parse(printed.stdout) as Record<string, Record<string, unknown>>) as [[string, Record<string, unknown>]];
    expect(path).to.equal(`${REG}/payments/api:1.4`);
    repo.targets.get('payments-release')!.signed.addTarget(TargetFile.fromJSON(path, info as never));
    for (const [name, bytes] of repo.publish({ hashes: true })) writeFileSync(join(metadata, name), bytes);
    policyFile = join(work, 'policy.yaml');
    writeFileSync(
      policyFile,
      stringify({
        apiVersion: 'trustgate.dev/v1alpha1',
        kind: 'ClusterTrustPolicy',
        metadata: { name: 'payments-tuf' },
        spec: {
          images: [`${REG}/payments/**`],
          trustServer: { protocol: 'tuf', url: 'https://tuf.example.com/metadata/' },
          root: { trustedRoot: repo.roots.get(1)!.toString('utf8') },
          delegations: { roles: ['payments-release'] },
        },
      }),
    );
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('verify pins a tag signed in the repository read from --metadata-dir', async () => {
    const r = await runCli(['verify', `${REG}/payments/api:1.4`, '--policy', policyFile, '--metadata-dir', metadata]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim().split('\n').pop()).to.equal(`${REG}/payments/api:1.4@${DIGEST}`);
  });

  it('verify refuses an unsigned tag with one line naming image, policy, role and reason', async () => {
    const r = await runCli(['verify', `${REG}/payments/api:9.9`, '--policy', policyFile, '--metadata-dir', metadata]);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.contain(`${REG}/payments/api:9.9`).and.contain('payments-tuf').and.contain('payments-release').and.contain('not signed');
  });

  it('verify --at after the timestamp expires refuses, saying so', async () => {
    const later = new Date(repo.now.getTime() + 3 * DAY).toISOString();
    const r = await runCli(['verify', `${REG}/payments/api:1.4`, '--policy', policyFile, '--metadata-dir', metadata, '--at', later]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('timestamp').and.contain('expired');
  });

  it('check gives the webhook verdict for each image of a manifest', async () => {
    const manifest = join(work, 'pod.yaml');
    writeFileSync(
      manifest,
      stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'api', namespace: 'payments' },
        spec: { containers: [{ name: 'api', image: `${REG}/payments/api:1.4` }, { name: 'next', image: `${REG}/payments/api:2.0` }] },
      }),
    );
    const r = await runCli(['check', '-f', manifest, '--policy', policyFile, '--metadata-dir', metadata, '--output', 'json']);
    expect(r.code, r.stderr).to.equal(1);
    const doc = JSON.parse(r.stdout) as { allowed: boolean; objects: Array<{ images: Array<{ image: string; allowed?: boolean; verdict?: string; pinned?: string }> }> };
    expect(doc.allowed).to.equal(false);
    const images = doc.objects[0]!.images;
    const signed = images.find((i) => i.image.endsWith(':1.4'))!;
    const unsigned = images.find((i) => i.image.endsWith(':2.0'))!;
    expect(JSON.stringify(signed)).to.contain(DIGEST);
    expect(JSON.stringify(unsigned)).to.not.contain(DIGEST);
    expect(JSON.stringify(unsigned)).to.contain('not signed');
  });

  it('inspect shows the roles that may sign the repository, its signed tags and expiry, in text and one JSON document', async () => {
    const text = await runCli(['inspect', `${REG}/payments/api:1.4`, '--policy', policyFile, '--metadata-dir', metadata]);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.contain('TUF 1.0 repository').and.contain('Role payments-release (delegated by targets;').and.contain(`1.4`).and.contain(DIGEST);
    // The forecast, soonest first: the timestamp (1 day) before anything else.
    expect(text.stdout).to.match(/Expiry forecast \(soonest first\):\n  timestamp expires in (23 hours|1 day)/);
    const json = await runCli(['inspect', `${REG}/payments/api:1.4`, '--policy', policyFile, '--metadata-dir', metadata, '--output', 'json']);
    expect(json.code, json.stderr).to.equal(0);
    const doc = JSON.parse(json.stdout) as { protocol: string; roles: Array<{ role: string; targets: Array<{ name: string; digest: string }> }> };
    expect(doc.protocol).to.equal('tuf');
    expect((doc as unknown as { forecast: Array<{ role: string }> }).forecast.map((f) => f.role)).to.include.members(['root', 'timestamp', 'snapshot', 'targets', 'payments-release']);
    expect(doc.roles.map((r) => r.role)).to.deep.equal(['targets', 'payments-release']);
    expect(doc.roles[1]!.targets).to.deep.equal([{ name: '1.4', digest: DIGEST, length: Buffer.byteLength(MANIFEST) }]);
  });

  it("runs the README's `trustgate tuf target` command as written", async () => {
    const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## TUF 1.0 repositories'));
    const line = /^\s*trustgate (tuf target .*)$/m.exec(section)?.[1];
    expect(line, 'README shows a tuf target command').to.be.a('string');
    const r = await runCli(line!.split(/\s+/));
    expect(r.code, r.stderr).to.equal(0);
    const doc = JSON.parse(r.stdout) as { artifacts: Array<{ path: string; info: { length: number; hashes: { sha256: string } } }> };
    expect(doc.artifacts[0]!.path).to.equal('registry.example.com/payments/api:1.4');
    expect(line).to.contain(`@sha256:${doc.artifacts[0]!.info.hashes.sha256}`).and.contain(`--size ${doc.artifacts[0]!.info.length}`);
  });

  it('tuf target refuses an image without a tag or a digest, and a size that is not a number', async () => {
    for (const args of [[`${REG}/payments/api@${DIGEST}`, '--size', '5'], [`${REG}/payments/api:1.4`, '--size', '5'], [`${REG}/payments/api:1.4@${DIGEST}`, '--size', 'big']]) {
      const r = await runCli(['tuf', 'target', ...args]);
      expect(r.code, args.join(' ')).to.equal(2);
      expect(r.stderr).to.match(/give the tag and the digest|--size must be/);
    }
    const rstuf = await runCli(['tuf', 'target', `${REG}/payments/api:1.4@${DIGEST}`, '--size', '7']);
    expect(JSON.parse(rstuf.stdout)).to.deep.equal({ artifacts: [{ path: `${REG}/payments/api:1.4`, info: { length: 7, hashes: { sha256: DIGEST.slice(7) } } }] });
  });
});
