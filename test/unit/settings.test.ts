// Every setting of `trustgate serve` (flags and environment): refused at start-up by the real
// binary when invalid, in effect when valid, documented in --help and the README, and read
// from process.env in one module only.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { stringify } from 'yaml';
import { parseServeArgs, SERVE_SETTINGS, stateStoreOf } from '../../webhook/src/cli/settings.js';
import { postJson } from '../fixtures/admission/https-client.js';
import { CLI, reviewFrom, spawnWebhook, type WebhookProcess } from '../support/e2e-webhook.js';
import { policyYaml } from '../support/e2e-policies.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { RepoForge } from '../support/forge.js';
import { repoRoot } from '../support/stack.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The process got as far as serving (and was then stopped by the test). */
  served: boolean;
}

/** Runs the CLI with exactly `env` (plus PATH); a webhook that starts serving is stopped and reported. */
function runCli(args: string[], env: Record<string, string> = {}): Promise<Exit> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let served = false;
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('utf8');
    if (!served && stdout.includes('serving on')) {
      served = true;
      child.kill('SIGTERM');
    }
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr, served });
    });
  });
}

const REVIEW_IMAGES = ['/spec/initContainers/0/image', '/spec/containers/0/image', '/spec/containers/1/image'];

describe('settings: every flag and environment variable of serve', () => {
  let work: string;
  let policyDir: string;
  let aFile: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'tg-settings-'));
    policyDir = join(work, 'policies');
    mkdirSync(policyDir);
    aFile = join(work, 'not-a-dir');
    writeFileSync(aFile, 'x');
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  const standalone = () => ['serve', '--policy-dir', policyDir, '--port', '0', '--host', '127.0.0.1'];
  const cluster = () => ['serve', '--kubernetes', '--port', '0', '--host', '127.0.0.1'];

  describe('an invalid setting refuses the start: exit 2, naming the setting, the value and an accepted example', () => {
    const cases: Array<{ what: string; args: () => string[]; env?: Record<string, string>; names: string; value: string; example: RegExp }> = [
      { what: 'a refresh interval that is not a number (was NaN: never refreshed)', args: standalone, env: { TRUSTGATE_REFRESH_SECONDS: 'soon' }, names: 'TRUSTGATE_REFRESH_SECONDS', value: '"soon"', example: /e\.g\. TRUSTGATE_REFRESH_SECONDS=60/ },
      { what: 'a negative refresh interval', args: standalone, env: { TRUSTGATE_REFRESH_SECONDS: '-5' }, names: 'TRUSTGATE_REFRESH_SECONDS', value: '"-5"', example: /TRUSTGATE_REFRESH_SECONDS=60/ },
      { what: 'a refresh interval in exponent notation', args: standalone, env: { TRUSTGATE_REFRESH_SECONDS: '1e3' }, names: 'TRUSTGATE_REFRESH_SECONDS', value: '"1e3"', example: /TRUSTGATE_REFRESH_SECONDS=60/ },
      { what: 'a refresh interval over a day', args: standalone, env: { TRUSTGATE_REFRESH_SECONDS: '86401' }, names: 'TRUSTGATE_REFRESH_SECONDS', value: '"86401"', example: /0-86400/ },
      { what: 'a secrets directory that does not exist', args: standalone, env: { TRUSTGATE_SECRETS_DIR: '/nonexistent/secrets' }, names: 'TRUSTGATE_SECRETS_DIR', value: '"/nonexistent/secrets"', example: /TRUSTGATE_SECRETS_DIR=\// },
      { what: 'a secrets directory that is a file', args: standalone, env: { TRUSTGATE_SECRETS_DIR: 'FILE' }, names: 'TRUSTGATE_SECRETS_DIR', value: 'not-a-dir', example: /existing directory/ },
      { what: 'a secrets directory in cluster mode (it would be ignored)', args: cluster, env: { TRUSTGATE_SECRETS_DIR: 'DIR' }, names: 'TRUSTGATE_SECRETS_DIR', value: 'policies', example: /applies only with --policy-dir/ },
      { what: 'a state ConfigMap that is not a name', args: cluster, env: { TRUSTGATE_STATE_CONFIGMAP: 'Trust_State' }, names: 'TRUSTGATE_STATE_CONFIGMAP', value: '"Trust_State"', example: /TRUSTGATE_STATE_CONFIGMAP=trustgate-state/ },
      { what: 'a state ConfigMap standalone (it would be ignored)', args: standalone, env: { TRUSTGATE_STATE_CONFIGMAP: 'trustgate-state' }, names: 'TRUSTGATE_STATE_CONFIGMAP', value: 'trustgate-state', example: /--state-file FILE/ },
      { what: 'a namespace that is not a name', args: cluster, env: { POD_NAMESPACE: 'Trust Gate' }, names: 'POD_NAMESPACE', value: '"Trust Gate"', example: /POD_NAMESPACE=trustgate-system/ },
      { what: 'a misspelt variable (it would silently do nothing)', args: standalone, env: { TRUSTGATE_REFRESH_SECOND: '5' }, names: 'TRUSTGATE_REFRESH_SECOND ', value: 'not a trustgate setting', example: /TRUSTGATE_REFRESH_SECONDS/ },
      { what: 'a port out of range', args: () => [...standalone().slice(0, -4), '--port', '70000'], names: '--port', value: '"70000"', example: /e\.g\. --port 8443/ },
      { what: 'a deadline of zero', args: () => [...standalone(), '--deadline', '0'], names: '--deadline', value: '"0"', example: /e\.g\. --deadline 8/ },
      { what: 'a deadline that is not a number', args: () => [...standalone(), '--deadline', 'NaN'], names: '--deadline', value: '"NaN"', example: /--deadline 8/ },
      { what: 'an unknown log level', args: () => [...standalone(), '--log-level', 'loud'], names: '--log-level', value: '"loud"', example: /--log-level info/ },
      { what: 'an empty host', args: () => [...standalone().slice(0, -2), '--host', ''], names: '--host', value: '""', example: /--host 127\.0\.0\.1/ },
      { what: 'an empty policy directory', args: () => ['serve', '--policy-dir', '', '--port', '0'], names: '--policy-dir', value: '""', example: /--policy-dir \// },
      { what: 'an exemption with a glob in the registry', args: () => [...standalone(), '--exempt', 'registry.test*/infra/**'], names: '--exempt', value: '"registry.test*/infra/**"', example: /must be literal.*e\.g\. --exempt registry\.k8s\.io\/pause:3\.9/ },
      { what: 'an unqualified exemption', args: () => [...standalone(), '--exempt', 'nginx'], names: '--exempt', value: '"nginx"', example: /docker\.io\/library\/nginx/ },
      { what: 'an exemption with a short digest', args: () => [...standalone(), '--exempt', 'registry.test/tools/helper@sha256:abc'], names: '--exempt', value: 'sha256:abc', example: /64 lowercase hex/ },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const env = Object.fromEntries(Object.entries(c.env ?? {}).map(([k, v]) => [k, v === 'FILE' ? aFile : v === 'DIR' ? policyDir : v]));
        const r = await runCli(c.args(), env);
        expect(r.served, r.stderr).to.equal(false);
        expect(r.code, r.stderr).to.equal(2);
        expect(r.stderr).to.contain(c.names).and.contain(c.value).and.match(c.example);
        expect(r.stdout).to.equal('');
      });
    }

    it('names every invalid setting of one start at once', async () => {
      const r = await runCli([...cluster(), '--deadline', '99'], { TRUSTGATE_REFRESH_SECONDS: 'x', POD_NAMESPACE: 'UPPER' });
      expect(r.code).to.equal(2);
      expect(r.stderr).to.contain('3 settings are invalid').and.contain('--deadline').and.contain('TRUSTGATE_REFRESH_SECONDS').and.contain('POD_NAMESPACE');
      expect(r.stderr).to.contain('trustgate serve --help');
    });

    it('refuses a --state-file that cannot be parsed, naming it (not a raw JSON error)', async () => {
      const corrupt = join(work, 'corrupt-state.json');
      writeFileSync(corrupt, '{"truncated":');
      const r = await runCli([...standalone(), '--state-file', corrupt]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.contain(`--state-file ${corrupt} cannot be used`);
    });

    it('verify: credentials half set, or a timeout that is not a number of seconds', async () => {
      const policy = join(work, 'p.yaml');
      const rootPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      writeFileSync(policy, policyYaml({ kind: 'ClusterTrustPolicy', name: 'p', images: ['registry.test/**'], server: 'https://127.0.0.1:1', rootPems: [rootPem] }));
      const half = await runCli(['verify', 'registry.test/a:1', '--policy', policy], { TRUSTGATE_PASSWORD: 'secret' });
      expect(half.code).to.equal(2);
      expect(half.stderr).to.contain('TRUSTGATE_PASSWORD is set but TRUSTGATE_USERNAME is not');
      const timeout = await runCli(['verify', 'registry.test/a:1', '--policy', policy, '--timeout', 'Infinity']);
      expect(timeout.code).to.equal(2);
      expect(timeout.stderr).to.contain('--timeout must be seconds in (0, 3600], got "Infinity" (e.g. --timeout 30)');
    });
  });

  describe('valid settings take effect', () => {
    it('parses each environment variable into the settings object', () => {
      const o = parseServeArgs(['--kubernetes', '--state-file', '/tmp/s.json'], {
        TRUSTGATE_REFRESH_SECONDS: '2.5',
        TRUSTGATE_STATE_CONFIGMAP: 'tg-state',
        POD_NAMESPACE: 'trustgate-system',
        // Set for other programs: an empty variable counts as unset.
        TRUSTGATE_SECRETS_DIR: '',
        HOME: '/root',
      });
      expect(o).to.deep.include({ refreshIntervalMs: 2500, stateConfigMap: 'tg-state', podNamespace: 'trustgate-system' });
      expect(o).to.not.have.property('secretsDir');
      expect(stateStoreOf(o)).to.deep.equal({ kind: 'configmap', namespace: 'trustgate-system', name: 'tg-state' });
      expect(stateStoreOf(parseServeArgs(['--kubernetes', '--state-file', '/tmp/s.json'], { TRUSTGATE_STATE_CONFIGMAP: '' }))).to.deep.equal({ kind: 'file', path: '/tmp/s.json' });
      expect(parseServeArgs(['--policy-dir', policyDir], { TRUSTGATE_SECRETS_DIR: work, TRUSTGATE_REFRESH_SECONDS: '0' })).to.deep.include({ secretsDir: work, refreshIntervalMs: 0 });
    });

    describe('the refresh interval reaches the cache', () => {
      let trust: http.Server;
      let fetches: string[];
      let refreshPolicies: string;
      const started: WebhookProcess[] = [];
      const image = 'localhost:5000/demo/app:v1.0';

      before(async () => {
        // Fresh signed metadata, served the way notary-server lays it out.
        const repo = new RepoForge({ now: new Date(), noDelegations: true }).build();
        fetches = [];
        trust = http.createServer((req, res) => {
          const m = /^\/v2\/localhost:5000\/demo\/app\/_trust\/tuf\/(.+)\.json$/.exec(req.url ?? '');
          const bytes = m ? repo.files.get(m[1]!) : undefined;
          fetches.push(m?.[1] ?? String(req.url));
          if (!bytes) return void res.writeHead(404).end();
          res.writeHead(200, { 'content-type': 'application/json' }).end(bytes);
        });
        await new Promise<void>((r) => trust.listen(0, '127.0.0.1', r));
        const dir = join(work, 'refresh-policies');
        mkdirSync(dir);
        writeFileSync(
          join(dir, 'p.yaml'),
          policyYaml({ kind: 'ClusterTrustPolicy', name: 'demo', images: ['localhost:5000/demo/**'], server: `http://127.0.0.1:${(trust.address() as { port: number }).port}`, rootPems: repo.rootPems }),
        );
        refreshPolicies = dir;
      });

      after(async () => {
        for (const w of started) await w.stop();
        await new Promise<void>((r) => trust.close(() => r()));
      });

      const timestamps = () => fetches.filter((f) => f === 'timestamp').length;
      async function admitTwice(env: Record<string, string>): Promise<number[]> {
        const webhook = await spawnWebhook(['--policy-dir', refreshPolicies, '--port', '0', '--host', '127.0.0.1'], env);
        started.push(webhook);
        const counts: number[] = [];
        for (let i = 0; i < 2; i++) {
          const before = timestamps();
          const review = reviewFrom('pod-create.json', { images: Object.fromEntries(REVIEW_IMAGES.map((p) => [p, image])) });
          const res = JSON.parse((await postJson(webhook.port, '/mutate', review)).body).response;
          expect(res.allowed, res.status?.message).to.equal(true);
          counts.push(timestamps() - before);
        }
        await webhook.stop();
        return counts;
      }

      it('default (60 s): the second admission answers from the cache', async () => {
        const [first, second] = await admitTwice({});
        expect(first).to.be.at.least(1);
        expect(second).to.equal(0);
      });

      it('TRUSTGATE_REFRESH_SECONDS=0: every admission refreshes from the trust server', async () => {
        const [first, second] = await admitTwice({ TRUSTGATE_REFRESH_SECONDS: '0' });
        expect(first).to.be.at.least(1);
        expect(second).to.be.at.least(1);
      });
    });

    it('with the ConfigMap configured, --state-file is not opened (the chart passes both)', async () => {
      const fake = await FakeApiServer.start();
      const kubeconfig = join(work, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'fake', cluster: { server: fake.url, 'insecure-skip-tls-verify': true } }],
          users: [{ name: 'tester', user: { token: fake.token } }],
          contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'tester' } }],
          'current-context': 'fake',
        }),
      );
      // A file the file store would refuse to load: opening it would stop the start.
      const corrupt = join(work, 'emptydir-state.json');
      writeFileSync(corrupt, '{"truncated":');
      let webhook: WebhookProcess | undefined;
      try {
        webhook = await spawnWebhook(['--kubernetes', '--port', '0', '--host', '127.0.0.1', '--state-file', corrupt], {
          KUBECONFIG: kubeconfig,
          TRUSTGATE_STATE_CONFIGMAP: 'tg-state',
          POD_NAMESPACE: 'trustgate-system',
        });
        expect(fake.requests.some((r) => r.method === 'GET' && r.path === '/api/v1/namespaces/trustgate-system/configmaps/tg-state')).to.equal(true);
        const starting = webhook.logs().find((l) => l.msg === 'starting');
        expect(starting?.['state']).to.deep.equal({ kind: 'configmap', namespace: 'trustgate-system', name: 'tg-state' });
        expect(readFileSync(corrupt, 'utf8')).to.equal('{"truncated":');
      } finally {
        await webhook?.stop();
        await fake.close();
      }
    });
  });

  describe('documentation', () => {
    it('serve --help lists every flag and environment variable with its default', async () => {
      const r = await runCli(['serve', '--help']);
      expect(r.code).to.equal(0);
      for (const s of SERVE_SETTINGS) {
        expect(r.stdout).to.contain(s.flag ? `--${s.flag}` : `${s.env}=`);
        if (s.default !== undefined) expect(r.stdout).to.contain(`(default ${s.default})`);
      }
      expect(r.stdout).to.contain('KUBECONFIG');
    });

    it("the README's settings table has exactly the settings the binary reads", () => {
      const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
      const section = readme.slice(readme.indexOf('### Settings'));
      const rows = section.slice(0, section.indexOf('\n\n', section.indexOf('|'))).split('\n').filter((l) => l.startsWith('| `'));
      const named = rows.flatMap((l) => [...l.split('|')[1]!.matchAll(/`([^` ]+)[^`]*`/g)].map((m) => m[1]!));
      const expected = SERVE_SETTINGS.map((s) => (s.flag ? `--${s.flag}` : s.env!));
      // Besides serve's own: what the Kubernetes client reads, and the credentials of verify/inspect.
      expect(named).to.deep.equal([...expected, 'KUBECONFIG', 'TRUSTGATE_USERNAME', 'TRUSTGATE_PASSWORD']);
    });
  });

  it('no module under webhook/src but cli/settings.ts reads the environment', () => {
    const src = join(repoRoot(), 'webhook', 'src');
    const readers: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith('.ts')) {
          const text = readFileSync(path, 'utf8');
          if (/process\s*\.\s*env\b|process\s*\[\s*['"]env['"]\s*\]|from\s+['"](node:)?process['"]|import\.meta\.env/.test(text)) readers.push(relative(src, path));
        }
      }
    };
    walk(src);
    expect(readers).to.deep.equal(['cli/settings.ts']);
  });
});
