// hack/tuf-conformance-client driven the way the TUF conformance suite drives a client under
// test (CLIENT-CLI.md): one process per command, a metadata directory kept between commands,
// repositories built and signed by @tufjs/models and served as static files by nginx over
// plain HTTP (as the suite serves them) or HTTPS. What the suite measures is what these check:
// exit codes, the metadata directory, the target directory and the requests made.
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../support/stack.js';
import { startStaticServer, type StaticServer } from '../support/static-server.js';
import { TufRepo, sha256hex, type RepoOptions } from '../support/tuf1-repo.js';

const CLIENT = join(repoRoot(), 'hack', 'tuf-conformance-client');

interface Run {
  code: number;
  stderr: string;
}

/** Runs the client from an unrelated working directory, as the suite does (it passes an absolute path). */
function client(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const cwd = mkdtempSync(join(tmpdir(), 'tg-conf-cwd-'));
  return new Promise((resolve, reject) => {
    const child = spawn(CLIENT, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      rmSync(cwd, { recursive: true, force: true });
      resolve({ code: code ?? 128, stderr });
    });
  });
}

/** A repository on disk under DIR/metadata and DIR/targets, served by nginx. */
class Served {
  readonly dir = mkdtempSync(join(tmpdir(), 'tg-conf-repo-'));
  readonly repo: TufRepo;
  server!: StaticServer;
  files = new Map<string, Buffer>();

  constructor(opts: RepoOptions = {}) {
    this.repo = new TufRepo(opts);
    mkdirSync(join(this.dir, 'metadata'));
    mkdirSync(join(this.dir, 'targets'));
  }

  async start(tls = false): Promise<this> {
    this.server = await startStaticServer(this.dir, { tls });
    return this;
  }

  get metadataUrl(): string {
    return `${this.server.url}metadata/`;
  }

  get targetsUrl(): string {
    return `${this.server.url}targets/`;
  }

  /** Writes what TufRepo.publish returns; older versioned files stay, as on a real repository. */
  publish(opts: Parameters<TufRepo['publish']>[0] = {}): Map<string, Buffer> {
    this.files = this.repo.publish(opts);
    this.serve(this.files);
    return this.files;
  }

  serve(files: Map<string, Buffer>): void {
    for (const [name, bytes] of files) writeFileSync(join(this.dir, 'metadata', name), bytes);
  }

  /** Adds a target and its file, under HASH.NAME when the root uses consistent snapshots. */
  addArtifact(role: string, path: string, content: string): void {
    const t = this.repo.addTarget(role, path, content);
    this.writeArtifact(path, content, t.hashes['sha256']!);
  }

  writeArtifact(path: string, content: string, hash: string): string {
    const slash = path.lastIndexOf('/');
    const name = this.repo.root.signed.consistentSnapshot ? `${path.slice(0, slash + 1)}${hash}.${path.slice(slash + 1)}` : path;
    const file = join(this.dir, 'targets', name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    return `/targets/${name}`;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A client's own directories, as the suite's ClientRunner makes them. */
class Client {
  readonly home = mkdtempSync(join(tmpdir(), 'tg-conf-client-'));
  readonly metadataDir = join(this.home, 'metadata');
  readonly targetDir = join(this.home, 'targets');
  readonly trustedRoot = join(this.home, 'initial_root.json');

  constructor(readonly served: Served, readonly env: NodeJS.ProcessEnv = {}) {
    mkdirSync(this.metadataDir);
    mkdirSync(this.targetDir);
  }

  init(root: Buffer = this.served.repo.roots.get(1)!): Promise<Run> {
    writeFileSync(this.trustedRoot, root);
    return client(['--metadata-dir', this.metadataDir, 'init', this.trustedRoot], this.env);
  }

  refresh(): Promise<Run> {
    return client(['--metadata-url', this.served.metadataUrl, '--metadata-dir', this.metadataDir, 'refresh'], this.env);
  }

  download(target: string): Promise<Run> {
    const s = this.served;
    return client(['--metadata-url', s.metadataUrl, '--metadata-dir', this.metadataDir, '--target-name', target, '--target-dir', this.targetDir, '--target-base-url', s.targetsUrl, 'download'], this.env);
  }

  stored(role: string): Buffer {
    return readFileSync(join(this.metadataDir, `${role}.json`));
  }

  version(role: string): number {
    return (JSON.parse(this.stored(role).toString()) as { signed: { version: number } }).signed.version;
  }

  /** Every file in the metadata directory, temporary files included. */
  metadataFiles(): string[] {
    return readdirSync(this.metadataDir).sort();
  }

  downloads(): Map<string, string> {
    return new Map(readdirSync(this.targetDir).map((n) => [n, readFileSync(join(this.targetDir, n), 'utf8')]));
  }

  remove(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}

function ok(r: Run): void {
  expect(r.stderr, 'stderr of a command that should succeed').to.equal('');
  expect(r.code).to.equal(0);
}

function refused(r: Run, ...words: string[]): void {
  expect(r.code, r.stderr).to.equal(1);
  expect(r.stderr.trim().split('\n')).to.have.length(1);
  for (const w of words) expect(r.stderr).to.contain(w);
}

describe('hack/tuf-conformance-client (the TUF conformance suite\'s client protocol)', function () {
  this.timeout(120_000);
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(opts: RepoOptions = {}, tls = false): Promise<{ s: Served; c: Client }> {
    const s = new Served(opts);
    cleanup.push(() => s.stop());
    s.publish();
    await s.start(tls);
    const c = new Client(s, tls ? { NODE_EXTRA_CA_CERTS: s.server.ca.certFile } : {});
    cleanup.push(() => c.remove());
    return { s, c };
  }

  it('is an executable file in git (mode 755), so the suite can run it by path', () => {
    expect(statSync(CLIENT).mode & 0o111).to.equal(0o111);
  });

  it('init stores the trusted root as root.json without a metadata URL; refuses a file that is not a root signed by itself', async () => {
    const { s, c } = await setup();
    ok(await c.init());
    expect(c.metadataFiles()).to.deep.equal(['root.json']);
    expect(c.stored('root').equals(s.repo.roots.get(1)!)).to.equal(true);
    expect(await s.server.takeRequests()).to.deep.equal([]);

    const bad = new Client(s);
    cleanup.push(() => bad.remove());
    const root = JSON.parse(s.repo.roots.get(1)!.toString());
    root.signed.expires = '2099-01-01T00:00:00Z';
    refused(await bad.init(Buffer.from(JSON.stringify(root))), 'root', 'not signed by its own root keys');
    expect(bad.metadataFiles()).to.deep.equal([]);
    refused(await client(['--metadata-dir', bad.metadataDir, 'init', join(bad.home, 'missing.json')]), 'cannot read the trusted root', 'ENOENT');
    refused(await client(['--metadata-dir', bad.metadataDir, 'frobnicate']), 'usage:');
    // A stored root that no longer parses fails the refresh before any request is made.
    writeFileSync(join(bad.metadataDir, 'root.json'), '{"signed":');
    refused(await bad.refresh(), `the trusted root ${join(bad.metadataDir, 'root.json')} is not usable`);
    expect(await s.server.takeRequests()).to.deep.equal([]);
  });

  it('runs through a symbolic link, as a client checked out elsewhere would be', async () => {
    const { s, c } = await setup();
    const link = join(c.home, 'client');
    symlinkSync(CLIENT, link);
    writeFileSync(c.trustedRoot, s.repo.roots.get(1)!);
    const r = spawnSync(link, ['--metadata-dir', c.metadataDir, '--metadata-url', s.metadataUrl, 'init', c.trustedRoot], { cwd: c.home, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(c.metadataFiles()).to.deep.equal(['root.json']);
  });

  it('refresh runs the client workflow in spec order and keeps every verified file, byte for byte, under unversioned names', async () => {
    const { s, c } = await setup({ kinds: { root: 'rsa-pkcs1v15', timestamp: 'ecdsa-p256', snapshot: 'rsa', targets: 'ecdsa-p384' } });
    ok(await c.init());
    ok(await c.refresh());
    expect(await s.server.takeRequests()).to.deep.equal(['/metadata/2.root.json', '/metadata/timestamp.json', '/metadata/1.snapshot.json', '/metadata/1.targets.json']);
    expect(c.metadataFiles()).to.deep.equal(['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
    for (const [role, file] of [['timestamp', 'timestamp.json'], ['snapshot', '1.snapshot.json'], ['targets', '1.targets.json']]) {
      expect(c.stored(role!).equals(s.files.get(file!)!), role).to.equal(true);
    }
    // Nothing new: the stored snapshot and targets are still what the timestamp names.
    ok(await c.refresh());
    expect(await s.server.takeRequests()).to.deep.equal(['/metadata/2.root.json', '/metadata/timestamp.json']);
  });

  it('refresh fails on an expired timestamp and stores nothing it did not trust', async () => {
    const { s, c } = await setup({ consistentSnapshot: false });
    (s.repo.timestamp.signed as { expires: string }).expires = s.repo.expiresIn(-1);
    s.publish();
    ok(await c.init());
    refused(await c.refresh(), `${s.metadataUrl}: timestamp: expired at`);
    expect(c.metadataFiles()).to.deep.equal(['root.json']);

    // After a good refresh, an expired newer timestamp does not replace the trusted one.
    (s.repo.timestamp.signed as { expires: string }).expires = s.repo.expiresIn(1);
    const good = s.publish();
    ok(await c.refresh());
    (s.repo.timestamp.signed as { expires: string }).expires = s.repo.expiresIn(-1);
    s.publish({ bump: ['timestamp'] });
    refused(await c.refresh(), 'timestamp', 'expired');
    expect(c.stored('timestamp').equals(good.get('timestamp.json')!)).to.equal(true);
    expect(c.metadataFiles()).to.deep.equal(['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
  });

  it('a second refresh follows the repository through a rotation of every key and keeps the new root', async () => {
    const { s, c } = await setup();
    ok(await c.init());
    ok(await c.refresh());
    const oldRoot = s.repo.signers.get('root')!;
    s.repo.signers.set('root', s.repo.rotate('root', ['ecdsa-p256']));
    for (const role of ['timestamp', 'snapshot', 'targets'] as const) s.repo.signers.set(role, s.repo.rotate(role, ['ed25519']));
    s.repo.publishRoot(oldRoot);
    s.addArtifact('targets', 'after-rotation.txt', 'new');
    const files = s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    await s.server.takeRequests();
    ok(await c.refresh());
    expect(await s.server.takeRequests()).to.deep.equal(['/metadata/2.root.json', '/metadata/3.root.json', '/metadata/timestamp.json', '/metadata/2.snapshot.json', '/metadata/2.targets.json']);
    expect(c.stored('root').equals(s.repo.roots.get(2)!)).to.equal(true);
    expect(c.stored('targets').equals(files.get('2.targets.json')!)).to.equal(true);
    expect([c.version('timestamp'), c.version('snapshot'), c.version('targets')]).to.deep.equal([2, 2, 2]);
  });

  it('keeps a verified root rotation even when the final root has expired (§5.3.10 is checked after the walk)', async () => {
    const { s, c } = await setup();
    ok(await c.init());
    (s.repo.root.signed as { expires: string }).expires = s.repo.expiresIn(-1);
    s.repo.publishRoot();
    s.publish();
    refused(await c.refresh(), 'root', 'expired');
    expect(c.version('root')).to.equal(2);
    expect(c.metadataFiles()).to.deep.equal(['root.json']);
  });

  it('refuses a rollback across invocations: the stored timestamp and snapshot are the floors', async () => {
    const { s, c } = await setup();
    const v1 = s.publish();
    ok(await c.init());
    ok(await c.refresh());
    s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    const v2 = s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    ok(await c.refresh());
    expect([c.version('timestamp'), c.version('snapshot'), c.version('targets')]).to.deep.equal([3, 3, 3]);

    // A mirror serves the old timestamp again.
    s.serve(new Map([['timestamp.json', v1.get('timestamp.json')!]]));
    refused(await c.refresh(), 'timestamp', 'version 1 is older than version 3');
    expect(c.stored('timestamp').equals(v2.get('timestamp.json')!)).to.equal(true);

    // A stolen snapshot key lists targets at an older version under a newer timestamp.
    (s.repo.targets.get('targets')!.signed as { version: number }).version = 1;
    s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    refused(await c.refresh(), 'snapshot', 'targets.json at version 2, older than version 3');
    expect([c.version('timestamp'), c.version('snapshot'), c.version('targets')]).to.deep.equal([4, 3, 3]);
  });

  it('recovers from a fast-forward attack once the repository rotates the timestamp and snapshot keys (§5.3.11)', async () => {
    const { s, c } = await setup();
    ok(await c.init());
    // Stolen keys pushed timestamp, snapshot and targets far ahead; the client trusted them.
    for (const role of ['timestamp', 'snapshot'] as const) (s.repo[role].signed as { version: number }).version = 1000;
    (s.repo.targets.get('targets')!.signed as { version: number }).version = 1000;
    s.publish();
    ok(await c.refresh());
    for (const role of ['timestamp', 'snapshot'] as const) (s.repo[role].signed as { version: number }).version = 1;
    (s.repo.targets.get('targets')!.signed as { version: number }).version = 1;
    s.publish();
    refused(await c.refresh(), 'timestamp', 'older than version 1000');
    const oldRoot = s.repo.signers.get('root')!;
    for (const role of ['timestamp', 'snapshot'] as const) s.repo.signers.set(role, s.repo.rotate(role));
    s.repo.publishRoot(oldRoot);
    s.publish();
    ok(await c.refresh());
    expect([c.version('root'), c.version('timestamp'), c.version('snapshot'), c.version('targets')]).to.deep.equal([2, 1, 1, 1]);
  });

  for (const consistentSnapshot of [true, false]) {
    it(`download ${consistentSnapshot ? 'with consistent snapshots fetches DIR/HASH.NAME' : 'without consistent snapshots fetches the target path'}, stores it under the quoted path, and skips a copy already there`, async () => {
      const { s, c } = await setup({ consistentSnapshot });
      const path = 'path/to/a/target_file.txt';
      s.addArtifact('targets', path, 'target file contents');
      s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
      ok(await c.init());
      ok(await c.download(path));
      const hash = sha256hex(Buffer.from('target file contents'));
      const artifact = consistentSnapshot ? `/targets/path/to/a/${hash}.target_file.txt` : `/targets/${path}`;
      const metadata = consistentSnapshot ? ['/metadata/2.root.json', '/metadata/timestamp.json', '/metadata/2.snapshot.json', '/metadata/2.targets.json'] : ['/metadata/2.root.json', '/metadata/timestamp.json', '/metadata/snapshot.json', '/metadata/targets.json'];
      expect(await s.server.takeRequests()).to.deep.equal([...metadata, artifact]);
      expect(c.downloads()).to.deep.equal(new Map([['path%2Fto%2Fa%2Ftarget_file.txt', 'target file contents']]));
      const stored = join(c.targetDir, 'path%2Fto%2Fa%2Ftarget_file.txt');
      const mtime = statSync(stored).mtimeMs;

      ok(await c.download(path));
      expect(await s.server.takeRequests()).to.deep.equal(['/metadata/2.root.json', '/metadata/timestamp.json']);
      expect(statSync(stored).mtimeMs).to.equal(mtime);

      // The repository changes the file legitimately: the new content replaces the old under the same name.
      s.addArtifact('targets', path, 'modified contents');
      s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
      ok(await c.download(path));
      expect(c.downloads()).to.deep.equal(new Map([['path%2Fto%2Fa%2Ftarget_file.txt', 'modified contents']]));
    });
  }

  it('download refuses an artifact whose bytes differ from the trusted entry and keeps nothing of it', async () => {
    const { s, c } = await setup();
    s.addArtifact('targets', 'a.txt', 'legitimate');
    s.addArtifact('targets', 'b.txt', 'content b');
    s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    ok(await c.init());
    ok(await c.download('a.txt'));
    // The server's files are replaced (same length, then longer) without new metadata.
    s.writeArtifact('a.txt', 'malicious!', sha256hex(Buffer.from('legitimate')));
    s.writeArtifact('b.txt', 'malicious content b', sha256hex(Buffer.from('content b')));
    ok(await c.download('a.txt')); // the verified copy is already there: nothing is fetched
    refused(await c.download('b.txt'), 'targets declares 9 bytes', 'GET', 'exceeds the limit of 9 bytes');
    // New metadata for a.txt, but the server sends other bytes of the declared length.
    const t = s.repo.addTarget('targets', 'a.txt', 'legitimat3');
    s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    s.writeArtifact('a.txt', 'malicious!', t.hashes['sha256']!);
    refused(await c.download('a.txt'), `GET ${s.targetsUrl}`, 'a.txt: sha256 of the file differs from what the entry in targets declares');
    expect(c.downloads()).to.deep.equal(new Map([['a.txt', 'legitimate']]));
  });

  it('download of a target no trusted role lists fails, after refreshing the metadata', async () => {
    const { s, c } = await setup();
    ok(await c.init());
    refused(await c.download('nonexistent artifact'), 'not listed');
    expect(await s.server.takeRequests()).to.deep.equal(['/metadata/2.root.json', '/metadata/timestamp.json', '/metadata/1.snapshot.json', '/metadata/1.targets.json']);
    expect(c.metadataFiles()).to.deep.equal(['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
    expect(c.downloads().size).to.equal(0);
  });

  it('finds a target through delegations over HTTPS, and stores each delegated role under its quoted name', async () => {
    const { s, c } = await setup({}, true);
    s.repo.delegate('a?b', { paths: ['team/*'], kind: 'rsa-pkcs1v15' });
    s.repo.delegate('team', { parent: 'a?b', paths: ['team/*'] });
    s.addArtifact('team', 'team/app.tar', 'app');
    s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    ok(await c.init());
    ok(await c.download('team/app.tar'));
    const hash = sha256hex(Buffer.from('app'));
    expect(await s.server.takeRequests()).to.deep.equal([
      '/metadata/2.root.json',
      '/metadata/timestamp.json',
      '/metadata/2.snapshot.json',
      '/metadata/2.targets.json',
      '/metadata/1.a%3Fb.json',
      '/metadata/1.team.json',
      `/targets/team/${hash}.app.tar`,
    ]);
    expect(c.metadataFiles()).to.deep.equal(['a%3Fb.json', 'root.json', 'snapshot.json', 'targets.json', 'team.json', 'timestamp.json']);
    expect(c.downloads()).to.deep.equal(new Map([['team%2Fapp.tar', 'app']]));
    // The stored delegated roles are used again while the snapshot still names them.
    refused(await c.download('team/other.tar'), 'not listed');
    expect(await s.server.takeRequests()).to.deep.equal(['/metadata/2.root.json', '/metadata/timestamp.json']);
  });

  it("runs the README's commands as written", async () => {
    const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## TUF conformance adapter'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
    const commands = block.replace(/\\\n\s*/g, '').split('\n').filter((l) => l.trim() !== '');
    expect(commands).to.have.length(3);
    const { s, c } = await setup();
    s.addArtifact('targets', 'path/to/file.txt', 'from the README');
    s.publish({ bump: ['targets', 'snapshot', 'timestamp'] });
    writeFileSync(c.trustedRoot, s.repo.roots.get(1)!);
    const env = { ...process.env, MD: c.metadataDir, ROOT: c.trustedRoot, REPO: s.server.url.replace(/\/$/, ''), OUT: c.targetDir };
    for (const command of commands) {
      const r = spawnSync('sh', ['-c', command], { cwd: repoRoot(), env, encoding: 'utf8' });
      expect(r.status, `${command}\n${r.stderr}`).to.equal(0);
    }
    expect(c.metadataFiles()).to.deep.equal(['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
    expect(c.downloads()).to.deep.equal(new Map([['path%2Fto%2Ffile.txt', 'from the README']]));
  });
});
