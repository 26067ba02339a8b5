// `npm run demo` keeps working: the real demo (Notary stack, notary CLI, a TUF 1.0 repository
// behind nginx, trustgate serve as a child process, AdmissionReviews over HTTPS) must exit 0
// with the expected verdict for every case, and must leave nothing running or on disk, also
// when interrupted.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive, repoRoot } from '../support/stack.js';

const DEMO = join(repoRoot(), 'dist', 'hack', 'demo.js');

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo; `interrupt` (if given) is called with the child once stderr matches its pattern. */
function runDemo(interrupt?: { when: RegExp; then: (pid: number) => void }): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let fired = false;
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
      if (interrupt && !fired && interrupt.when.test(stderr)) {
        fired = true;
        interrupt.then(child.pid!);
      }
    });
    // A hung demo must not hang CI: mocha's timeout fires first, this only makes sure it dies.
    const guard = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

interface TableRow {
  ok: string;
  label: string;
  image: string;
  result: string;
  detail: string;
}

/** Rows of the printed table: the lines after the CASE/IMAGE header, split on runs of 2+ spaces. */
function tableRows(stdout: string): TableRow[] {
  const lines = stdout.split('\n');
  const header = lines.findIndex((l) => /^\s+CASE\s+IMAGE\s+RESULT\s+PINNED DIGEST \/ REASON$/.test(l));
  expect(header, `no table header in:\n${stdout}`).to.be.greaterThan(-1);
  const rows: TableRow[] = [];
  for (const line of lines.slice(header + 1)) {
    if (line.trim() === '') break;
    const [ok, label, image, result, ...rest] = line.split(/ {2,}/);
    rows.push({ ok: ok!, label: label!, image: image!, result: result!, detail: rest.join('  ') });
  }
  return rows;
}

/** Processes whose command line names `path`. */
function processesUsing(path: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(path) && pidAlive(Number(entry))) out.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function paths(stderr: string): { stackDir?: string; workDir?: string; webhookPid?: number; nginxPid?: number; nginxDir?: string } {
  const stackDir = /state in (\/\S+)/.exec(stderr)?.[1];
  const workDir = /^demo: policies: .* in (\/\S+)$/m.exec(stderr)?.[1];
  const pid = /webhook \(pid (\d+)\)/.exec(stderr)?.[1];
  const nginx = /\(nginx pid (\d+), prefix (\/\S+)\)/.exec(stderr);
  return {
    ...(stackDir ? { stackDir } : {}),
    ...(workDir ? { workDir } : {}),
    ...(pid ? { webhookPid: Number(pid) } : {}),
    ...(nginx ? { nginxPid: Number(nginx[1]), nginxDir: nginx[2]! } : {}),
  };
}

function expectNothingLeft(stderr: string): void {
  const { stackDir, workDir, webhookPid, nginxPid, nginxDir } = paths(stderr);
  // Both runs get as far as starting the webhook, so all of them were printed.
  expect(stackDir, 'the demo names its stack directory').to.be.a('string');
  expect(workDir, 'the demo names its work directory').to.be.a('string');
  expect(webhookPid, 'the demo names the webhook pid').to.be.a('number');
  expect(nginxPid, 'the demo names the nginx pid').to.be.a('number');
  expect(nginxDir, "the demo names nginx's prefix").to.be.a('string');
  expect(pidAlive(nginxPid!), `nginx pid ${nginxPid} stopped`).to.equal(false);
  expect(existsSync(nginxDir!), `${nginxDir} removed`).to.equal(false);
  expect(processesUsing(`${nginxDir}/`), 'no nginx process left').to.deep.equal([]);
  expect(existsSync(stackDir!), `${stackDir} removed`).to.equal(false);
  expect(processesUsing(`${stackDir}/`), 'no stack process left').to.deep.equal([]);
  expect(existsSync(workDir!), `${workDir} removed`).to.equal(false);
  expect(processesUsing(workDir!), 'no process using the policy dir left').to.deep.equal([]);
  expect(pidAlive(webhookPid!), `webhook pid ${webhookPid} stopped`).to.equal(false);
}

describe('integration: npm run demo', function () {
  this.timeout(180_000);

  it('exits 0 with the expected verdict, pin or reason for every case, and cleans up', async () => {
    const run = await runDemo();
    expect(run.code, `demo failed:\n${run.stdout}\n${run.stderr}`).to.equal(0);

    const rows = tableRows(run.stdout);
    const byLabel = new Map(rows.map((r) => [r.label, r]));
    const expected: Array<[string, RegExp, 'allowed' | 'denied', RegExp]> = [
      ['signed in releases', /^demo\/app:1\.0$/, 'allowed', /^pinned to sha256:[0-9a-f]{12}…$/],
      ['signed, by digest', /^demo\/app@sha256:[0-9a-f]{8}…$/, 'allowed', /^signed digest, left as is$/],
      ['pushed, never signed', /^demo\/app:1\.2-rc$/, 'denied', /^not signed by targets\/releases$/],
      ['signed by ci role only', /^demo\/app:ci-build$/, 'denied', /^not signed by targets\/releases$/],
      ['releases role expired', /^demo\/stale:1\.0$/, 'denied', /^targets\/releases expired \d\d:\d\d:\d\dZ$/],
      ['TUF: signed in release', /^demo\/tuf\/app:1\.0$/, 'allowed', /^pinned to sha256:[0-9a-f]{12}…$/],
      ['TUF: never listed', /^demo\/tuf\/app:1\.1-rc$/, 'denied', /^not signed by demo-release$/],
      ['TUF: role expired', /^demo\/tuf\/nightly:1\.0$/, 'denied', /^demo-nightly expired \d\d:\d\d:\d\dZ$/],
      ['Deployment, /validate', /^demo\/app:1\.0 \+2$/, 'allowed', /^all 3 signed/],
    ];
    expect(rows.map((r) => r.label)).to.deep.equal(expected.map((e) => e[0]));
    for (const [label, image, result, detail] of expected) {
      const row = byLabel.get(label)!;
      expect(row.ok, `row ${label}`).to.equal('ok');
      expect(row.image, `image of ${label}`).to.match(image);
      expect(row.result, `result of ${label}`).to.equal(result);
      expect(row.detail, `detail of ${label}`).to.match(detail);
    }
    expect(run.stdout).to.match(/All 9 answers as expected/);
    expect(run.stdout).to.match(/^trust data: Notary https:\/\/127\.0\.0\.1:\d+, TUF 1\.0 https:\/\/127\.0\.0\.1:\d+\/ /m);
    // The full denial messages name the policy, the role and the cause.
    expect(run.stdout).to.match(/\[3\] pushed, never signed: container "app" image "[^"]+\/demo\/app:1\.2-rc":\s+ClusterTrustPolicy demo-app, role targets\/releases/);
    expect(run.stdout).to.match(/\[5\] releases role expired: .*\n.*ClusterTrustPolicy demo-stale, role targets\/releases, .*\n\s+targets\/releases: expired at /);
    const tufServer = /TUF 1\.0 (https:\/\/127\.0\.0\.1:\d+)\//.exec(run.stdout)![1]!;
    const flat = run.stdout.replace(/\n\s+/g, ' ');
    expect(flat).to.contain(`ClusterTrustPolicy demo-tuf-app, role demo-release, server ${tufServer}`);
    expect(flat).to.match(/\[7\] TUF: never listed: container "app" image "[^"]+\/demo\/tuf\/app:1\.1-rc": .*"1\.1-rc" .*not signed/);
    expect(flat).to.match(/\[8\] TUF: role expired: container "app" image "[^"]+\/demo\/tuf\/nightly:1\.0": ClusterTrustPolicy demo-tuf-nightly, role demo-nightly, server https:\/\/\S+ demo-nightly: expired at /);
    for (const line of run.stdout.split('\n')) expect(line.length, line).to.be.at.most(100);

    expectNothingLeft(run.stderr);
  });

  it('stops the webhook and the stack and removes its files when interrupted (Ctrl-C)', async () => {
    const run = await runDemo({ when: /webhook \(pid \d+\)/, then: (pid) => process.kill(pid, 'SIGINT') });
    expect(run.code, run.stderr).to.equal(130);
    expect(run.stderr).to.match(/SIGINT: stopping everything the demo started/);
    expect(run.stdout, 'no table after an interruption').not.to.match(/answers/);
    expectNothingLeft(run.stderr);
  });
});
