// HttpSource and DirSource against the real notary-server 0.7.0: a repository published
// with the notary CLI (root rotated once, a delegation) is read back file by file in the
// official client's order, and every byte is compared with what the server serves raw.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import { DirSource } from '../../webhook/src/notary/dir-source.js';
import { FetchError, type MetadataSource } from '../../webhook/src/notary/source.js';
import { fetchTuf, makeEcdsaCert, notaryOk, startStack, TOKEN_USER, notaryAuthEnv, type Stack } from '../support/stack.js';

interface FileMeta {
  length: number;
  hashes: { sha256: string };
}

const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const b64ToHex = (s: string) => Buffer.from(s, 'base64').toString('hex');
const json = (b: Uint8Array): any => JSON.parse(Buffer.from(b).toString('utf8'));

async function fetchError(p: Promise<unknown>): Promise<FetchError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FetchError) return e;
    throw e;
  }
  throw new Error('expected a FetchError');
}

/** Reads what the official client reads, in its order, checking hashes and lengths as it goes. */
async function walk(source: MetadataSource, delegations: string[] = ['targets/releases']): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const root = await source.fetch({ role: 'root', maxBytes: 512 * 1024 });
  files.set('root.json', root);
  const ts = await source.fetch({ role: 'timestamp', maxBytes: 64 * 1024 });
  files.set('timestamp.json', ts);
  const snapMeta = json(ts).signed.meta.snapshot as FileMeta;
  const snapHex = b64ToHex(snapMeta.hashes.sha256);
  const snap = await source.fetch({ role: 'snapshot', sha256Hex: snapHex, maxBytes: snapMeta.length });
  expect(hex(snap)).to.equal(snapHex);
  expect(snap.length).to.equal(snapMeta.length);
  files.set(`snapshot.${snapHex}.json`, snap);
  const meta = json(snap).signed.meta as Record<string, FileMeta>;
  expect(hex(root)).to.equal(b64ToHex(meta.root!.hashes.sha256));
  for (const role of ['targets', ...delegations]) {
    const m = meta[role];
    expect(m, role).to.not.equal(undefined);
    const h = b64ToHex(m!.hashes.sha256);
    const bytes = await source.fetch({ role, sha256Hex: h, maxBytes: m!.length });
    expect(hex(bytes), role).to.equal(h);
    files.set(`${role}.${h}.json`, bytes);
  }
  return files;
}

describe('notary HttpSource against the real notary-server', function () {
  this.timeout(120_000);
  let stack: Stack | undefined;
  const sources: HttpSource[] = [];
  let gun: string;
  const s = (): Stack => {
    if (!stack) throw new Error('stack did not start');
    return stack;
  };
  const http = (opts: Partial<ConstructorParameters<typeof HttpSource>[0]> = {}) => {
    const src = new HttpSource({ url: s().notaryUrl, gun, caBundle: s().caPem, ...opts });
    sources.push(src);
    return src;
  };

  before(async function () {
    this.timeout(600_000); // first run may install the Debian packages
    stack = await startStack({ tokenAuth: true });
    gun = `${stack.registryHost}/httpsource/app`;
    // init, a target, a delegation with its own target, then a root rotation: root v2,
    // so 1.root.json and 2.root.json both exist.
    await notaryOk(stack, ['init', '-p', gun]);
    await notaryOk(stack, ['addhash', gun, 'v1', '3', '--sha256', 'ab'.repeat(32), '-p']);
    const key = makeEcdsaCert(mkdtempSync(join(stack.dir, 'releases-key-')), 'releases');
    await notaryOk(stack, ['key', 'import', key.keyFile, '--role', 'targets/releases']);
    await notaryOk(stack, ['delegation', 'add', gun, 'targets/releases', key.publicFile, '--all-paths', '-p']);
    await notaryOk(stack, ['addhash', gun, 'v2', '5', '--sha256', 'cd'.repeat(32), '--roles', 'targets/releases', '-p']);
    const r = await notaryOk(stack, ['key', 'rotate', gun, 'root'], { input: 'yes\n' });
    if (/Aborting/i.test(r.stdout + r.stderr)) throw new Error(`root rotation aborted: ${r.stdout}${r.stderr}`);
  });

  after(async () => {
    for (const src of sources) src.close();
    await stack?.stop();
  });

  it('reads root, timestamp, snapshot/targets/delegation by hash, byte for byte as served', async () => {
    const files = await walk(http());
    for (const [file, bytes] of files) {
      const raw = await fetchTuf(s(), gun, file);
      expect(raw.status, file).to.equal(200);
      expect(Buffer.from(bytes).equals(raw.body), file).to.equal(true);
    }
    // root.json is above 2 KiB, so the server sent it chunked without Content-Length.
    expect(files.get('root.json')!.length).to.be.above(2048);
    expect(json(files.get('root.json')!).signed.version).to.equal(2);
  });

  it('reads versioned roots', async () => {
    const src = http();
    const v1 = await src.fetch({ role: 'root', version: 1, maxBytes: 512 * 1024 });
    const v2 = await src.fetch({ role: 'root', version: 2, maxBytes: 512 * 1024 });
    const current = await src.fetch({ role: 'root', maxBytes: 512 * 1024 });
    expect(json(v1).signed.version).to.equal(1);
    expect(Buffer.from(v2).equals(Buffer.from(current))).to.equal(true);
    expect(Buffer.from(v1).equals(Buffer.from(v2))).to.equal(false);
    const e = await fetchError(src.fetch({ role: 'root', version: 3, maxBytes: 512 * 1024 }));
    expect(e.kind).to.equal('not-found');
    expect(e.message).to.contain('3.root.json').and.to.contain('METADATA_NOT_FOUND');
  });

  it('reports an unknown GUN as not-found', async () => {
    const e = await fetchError(http({ gun: `${s().registryHost}/no/such/repo` }).fetch({ role: 'root', maxBytes: 4096 }));
    expect(e.kind).to.equal('not-found');
    expect(e.status).to.equal(404);
    expect(e.server).to.equal(s().notaryUrl);
  });

  it('stops a chunked root at a cap below its size', async () => {
    const e = await fetchError(http().fetch({ role: 'root', maxBytes: 1024 }));
    expect(e.kind).to.equal('too-large');
  });

  it('refuses the server\'s certificate without its CA', async () => {
    const e = await fetchError(http({ caBundle: undefined }).fetch({ role: 'root', maxBytes: 4096 }));
    expect(e.kind).to.equal('tls');
  });

  it('reads the same files from a directory bundle', async () => {
    const files = await walk(http());
    const dir = mkdtempSync(join(s().dir, 'bundle-'));
    for (const [name, bytes] of files) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), bytes);
    }
    const again = await walk(new DirSource({ dir, gun }));
    expect([...again.keys()]).to.deep.equal([...files.keys()]);
  });

  describe('with token auth', () => {
    let tokenGun: string;
    before(async () => {
      tokenGun = `${s().registryHost}/httpsource/token-app`;
      const trustDir = mkdtempSync(join(s().dir, 'token-trust-'));
      const opts = { server: s().tokenNotaryUrl!, trustDir, env: notaryAuthEnv(s()) };
      await notaryOk(s(), ['init', '-p', tokenGun], opts);
      await notaryOk(s(), ['addhash', tokenGun, 'v1', '3', '--sha256', 'ef'.repeat(32), '-p'], opts);
    });
    const tokenSource = (opts: Partial<ConstructorParameters<typeof HttpSource>[0]> = {}) =>
      http({ url: s().tokenNotaryUrl!, gun: tokenGun, ...opts });

    it('walks the repository with an anonymous pull token', async () => {
      const files = await walk(tokenSource(), []);
      expect(json(files.get('root.json')!).signed._type).to.equal('Root');
      const targets = [...files].find(([name]) => name.startsWith('targets.'))![1];
      expect(json(targets).signed.targets.v1.length).to.equal(3);
    });

    it('works with credentials too, and refuses a wrong password', async () => {
      const ok = await tokenSource({ credentials: { ...TOKEN_USER } }).fetch({ role: 'timestamp', maxBytes: 64 * 1024 });
      expect(json(ok).signed._type).to.equal('Timestamp');
      const e = await fetchError(tokenSource({ credentials: { username: TOKEN_USER.username, password: 'wrong' } }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('auth');
      expect(e.message).to.contain('token service');
    });

    it('reports an unknown GUN as not-found once it holds a token (401 before)', async () => {
      const e = await fetchError(tokenSource({ gun: `${s().registryHost}/httpsource/none` }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('not-found');
    });
  });
});

