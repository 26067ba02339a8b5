// The container image as it ships: built from the repository's Dockerfile by
// hack/build-image.sh (buildah; local stand-in bases where no registry is reachable), then run
// with podman as the chart runs it: non-root, read-only root filesystem, no capabilities,
// TLS and policies mounted read-only. Loopback only: host network, --host 127.0.0.1.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { issueServerCert, makeCa } from '../fault/certs.js';
import { call } from '../fixtures/admission/https-client.js';
import { fixture } from '../fixtures/admission/support.js';
import { freePorts, repoRoot } from '../support/stack.js';
import { RUNTIME_NODE_FLAGS } from '../support/runtime.js';

const run = promisify(execFile);
const ROOT = repoRoot();
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('container image (buildah build, podman run)', function () {
  // A first build fetches the npm dependencies and compiles; later runs reuse the image.
  this.timeout(600_000);

  let work: string;
  let env: NodeJS.ProcessEnv;
  let image: string;
  const containers: string[] = [];

  const podman = async (args: string[], timeout = 60_000) =>
    (await run('podman', ['--runtime', 'runc', ...args], { env, timeout, maxBuffer: 16 << 20 })).stdout;
  /** Runs the image with the chart's security settings; `args` go to the trustgate CLI. */
  const runArgs = (extra: string[], args: string[]) => [
    'run', '--read-only', '--network', 'host', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', ...extra, image, ...args,
  ];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'trustgate-image-'));
    // The sandbox refuses the default rlimits podman would set (containers.conf(5)).
    const conf = join(work, 'containers.conf');
    writeFileSync(conf, '[containers]\ndefault_ulimits = []\n');
    env = { ...process.env, CONTAINERS_CONF: conf };
    const built = await run('bash', [join(ROOT, 'hack', 'build-image.sh')], { cwd: ROOT, env, timeout: 540_000, maxBuffer: 64 << 20 });
    for (const line of built.stderr.split('\n')) if (/^build-image: /.test(line)) console.log(`      ${line}`);
    image = built.stdout.trim().split('\n').pop()!;
    expect(image, `hack/build-image.sh printed no image:\n${built.stderr}`).to.match(/^sha256:[0-9a-f]{64}$/);
  });

  after(async () => {
    for (const name of containers) await podman(['rm', '--force', '--time', '0', name]).catch(() => undefined);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is a small non-root image with OCI labels, Node 24 and no shell or npm', async () => {
    const [config] = JSON.parse(await podman(['image', 'inspect', image])) as Array<{
      Size: number;
      Config: { User: string; Entrypoint: string[]; Labels: Record<string, string> };
    }>;
    const mb = config!.Size / 1e6;
    console.log(`      image size: ${mb.toFixed(1)} MB (${config!.Size} bytes)`);
    expect(mb).to.be.above(50).and.below(250);
    expect(config!.Config.User).to.equal('65532:65532');
    expect(config!.Config.Entrypoint).to.deep.equal(['/nodejs/bin/node', ...RUNTIME_NODE_FLAGS, 'dist/webhook/src/cli/main.js']);
    const labels = config!.Config.Labels;
    expect(labels['org.opencontainers.image.title']).to.equal('trustgate');
    expect(labels['org.opencontainers.image.version']).to.equal(VERSION);
    expect(labels['org.opencontainers.image.licenses']).to.equal('Apache-2.0');
    expect(labels['org.opencontainers.image.source']).to.match(/^https:\/\//);
    expect(labels['org.opencontainers.image.revision']).to.match(/^[0-9a-f]{40}$/);

    const probe = `const fs = require('node:fs');
      console.log(JSON.stringify({ node: process.version, uid: process.getuid(), gid: process.getgid(),
        shell: ['/bin/sh', '/bin/bash', '/bin/dash', '/usr/bin/sh'].filter((f) => fs.existsSync(f)),
        npm: fs.existsSync('/usr/local/bin/npm') || fs.existsSync('/usr/local/lib/node_modules/npm'),
        devDependency: fs.existsSync('/app/node_modules/typescript') || fs.existsSync('/app/node_modules/mocha'),
        crds: fs.readdirSync('/app/crds').filter((f) => f.endsWith('.yaml')).length }));`;
    const seen = JSON.parse(await podman(runArgs(['--rm', '--entrypoint', '/nodejs/bin/node'], ['-e', probe]))) as Record<string, unknown>;
    expect(seen).to.deep.include({ uid: 65532, gid: 65532, shell: [], npm: false, devDependency: false });
    expect(seen['node']).to.match(/^v24\./);
    expect(seen['crds']).to.be.above(0);
  });

  it('answers --help with the usage and exit code 0', async () => {
    const out = await podman(runArgs(['--rm'], ['--help']));
    expect(out).to.contain('usage: trustgate COMMAND').and.match(/^\s+serve\s+Serve the admission webhook/m).and.match(/^\s+verify\s+Verify one image/m);
    const serve = await podman(runArgs(['--rm'], ['serve', '--help']));
    expect(serve).to.contain('--policy-dir').and.contain('--tls-secret');
  });

  it('serves: ready, /readyz and /metrics over HTTPS on 127.0.0.1, as uid 65532 on a read-only root, stops cleanly on SIGTERM', async () => {
    const ca = makeCa(work, 'trustgate-image-test-ca');
    const leaf = issueServerCert(ca, work, 'localhost', ['DNS:localhost', 'IP:127.0.0.1']);
    const tls = join(work, 'tls');
    const policies = join(work, 'policies');
    mkdirSync(tls);
    mkdirSync(policies);
    writeFileSync(join(tls, 'tls.crt'), leaf.cert);
    writeFileSync(join(tls, 'tls.key'), leaf.key, { mode: 0o644 }); // read by uid 65532 through the mount
    copyFileSync(join(ROOT, 'crds', 'examples', 'clustertrustpolicy-docker-hub.yaml'), join(policies, 'docker-hub.yaml'));

    const [port] = (await freePorts(1)) as [number];
    const name = `trustgate-image-test-${process.pid}-${port}`;
    containers.push(name);
    await podman(runArgs(['--detach', '--name', name, '-v', `${tls}:/etc/trustgate/tls:ro`, '-v', `${policies}:/policies:ro`], [
      'serve', '--policy-dir', '/policies', '--host', '127.0.0.1', '--port', String(port),
      '--tls-cert', '/etc/trustgate/tls/tls.crt', '--tls-key', '/etc/trustgate/tls/tls.key',
    ]));

    // Ready once the policies are loaded; polled, with mocha's timeout as the bound.
    let ready = await call({ port, path: '/readyz', ca: ca.certPem }).catch((e: Error) => e);
    for (let i = 0; i < 300 && (ready instanceof Error || ready.status !== 200); i++) {
      const state = (await podman(['inspect', '--format', '{{.State.Status}}', name])).trim();
      expect(state, `container stopped: ${await podman(['logs', name]).catch(() => '')}`).to.equal('running');
      await new Promise((r) => setTimeout(r, 200));
      ready = await call({ port, path: '/readyz', ca: ca.certPem }).catch((e: Error) => e);
    }
    if (ready instanceof Error) throw ready;
    expect(ready.status).to.equal(200);
    expect(ready.body).to.equal('ok\n');

    // A pod whose image no policy covers is denied: the whole admission path runs in the image.
    const review = fixture('pod-create.json');
    const denied = await call({ port, path: '/mutate', method: 'POST', ca: ca.certPem, body: JSON.stringify(review), headers: { 'content-type': 'application/json' } });
    expect(denied.status).to.equal(200);
    const answer = JSON.parse(denied.body) as { response: { uid: string; allowed: boolean; status?: { message: string } } };
    expect(answer.response.uid).to.equal(review.request.uid);
    expect(answer.response.allowed).to.equal(false);
    expect(answer.response.status?.message).to.contain('registry.example.com/payments/api:1.4.2');

    const metrics = await call({ port, path: '/metrics', ca: ca.certPem });
    expect(metrics.status).to.equal(200);
    expect(metrics.body).to.match(/^trustgate_\w+/m);
    expect(metrics.body).to.match(/^nodejs_heap_size_used_bytes \d+/m);

    // The process as the kernel sees it, from outside the container.
    const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', name])).trim();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).to.match(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    expect(status).to.match(/^Gid:\s+65532\s+65532\s+65532\s+65532$/m);
    expect(status).to.match(/^CapEff:\s+0+$/m);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).to.equal('/nodejs/bin/node');
    // Its listening sockets, from its own network view (the host's): loopback only.
    expect(listeningSockets(pid)).to.deep.equal([`127.0.0.1:${port}`]);

    expect((await podman(['inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', name])).trim()).to.equal('true');
    const write = await podman(['exec', name, '/nodejs/bin/node', '-e',
      `for (const f of ['/app/x', '/x', '/etc/trustgate/tls/x', '/policies/x']) { try { require('fs').writeFileSync(f, ''); console.log(f, 'written'); } catch (e) { console.log(f, e.code); } }`]);
    expect(write.trim().split('\n')).to.deep.equal(['/app/x EROFS', '/x EROFS', '/etc/trustgate/tls/x EROFS', '/policies/x EROFS']);

    await podman(['stop', '--time', '20', name]);
    expect((await podman(['inspect', '--format', '{{.State.ExitCode}}', name])).trim()).to.equal('0');
    const logs = await podman(['logs', name]);
    expect(logs).to.contain(`https://127.0.0.1:${port}`);
  });
});

/** "addr:port" of every TCP socket process `pid` listens on, from /proc (IPv4 and IPv6). */
function listeningSockets(pid: string): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
    if (m) inodes.add(m[1]!);
  }
  const found: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9]!)) continue; // 0A: LISTEN
      const [hex, port] = f[1]!.split(':') as [string, string];
      const addr = table === 'tcp'
        ? (hex.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)).join('.')
        : `[${hex}]`;
      found.push(`${addr}:${parseInt(port, 16)}`);
    }
  }
  return found;
}
