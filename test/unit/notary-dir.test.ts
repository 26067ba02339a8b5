import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DirSource } from '../../webhook/src/notary/dir-source.js';
import { FetchError, type MetadataRequest } from '../../webhook/src/notary/source.js';
import { InvalidNameError } from '../../webhook/src/notary/paths.js';

const HEX = '0123456789abcdef'.repeat(4);
const OTHER_HEX = 'f'.repeat(64);

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the fetch to fail');
}

describe('notary DirSource', () => {
  let top: string;
  let dir: string;
  let src: DirSource;
  const text = async (req: MetadataRequest) => Buffer.from(await src.fetch(req)).toString('utf8');

  before(() => {
    // top/secret.json and top/bundle/... : the secret sits right outside the bundle.
    top = mkdtempSync(path.join(tmpdir(), 'trustgate-notary-dir-'));
    dir = path.join(top, 'bundle');
    mkdirSync(path.join(dir, 'targets', 'releases'), { recursive: true });
    const files: Record<string, string> = {
      'root.json': 'root current',
      '1.root.json': 'root v1',
      '2.root.json': 'root v2',
      'timestamp.json': 'timestamp',
      'snapshot.json': 'snapshot plain',
      [`snapshot.${HEX}.json`]: 'snapshot by hash',
      'targets.json': 'targets',
      'targets/releases.json': 'releases',
      'targets/releases/nightly.json': 'nightly',
      'targets/plainfile': 'not a directory',
    };
    for (const [name, body] of Object.entries(files)) writeFileSync(path.join(dir, name), body);
    writeFileSync(path.join(top, 'secret.json'), 'SECRET');
    writeFileSync(path.join(top, 'root.json'), 'SECRET ROOT');
    mkdirSync(path.join(dir, 'targets', 'adir.json'));
    src = new DirSource({ dir, gun: 'localhost:5000/demo/app' });
  });
  after(() => rmSync(top, { recursive: true, force: true }));

  it('reads the top-level roles, versioned roots and nested delegations', async () => {
    expect(await text({ role: 'root', maxBytes: 100 })).to.equal('root current');
    expect(await text({ role: 'root', version: 2, maxBytes: 100 })).to.equal('root v2');
    expect(await text({ role: 'timestamp', maxBytes: 100 })).to.equal('timestamp');
    expect(await text({ role: 'targets', maxBytes: 100 })).to.equal('targets');
    expect(await text({ role: 'targets/releases', maxBytes: 100 })).to.equal('releases');
    expect(await text({ role: 'targets/releases/nightly', maxBytes: 100 })).to.equal('nightly');
    expect(src.server).to.equal(dir);
    expect(src.gun).to.equal('localhost:5000/demo/app');
  });

  it('prefers the hash-addressed file and falls back to the plain one', async () => {
    expect(await text({ role: 'snapshot', sha256Hex: HEX, maxBytes: 100 })).to.equal('snapshot by hash');
    expect(await text({ role: 'snapshot', sha256Hex: OTHER_HEX, maxBytes: 100 })).to.equal('snapshot plain');
    expect(await text({ role: 'targets/releases', sha256Hex: OTHER_HEX, maxBytes: 100 })).to.equal('releases');
    expect(src.candidates({ role: 'targets/qa', sha256Hex: HEX, maxBytes: 1 })).to.deep.equal([`targets/qa.${HEX}.json`, 'targets/qa.json']);
  });

  it('reports a missing file as not-found, naming what it looked for', async () => {
    const e = await failure(src.fetch({ role: 'targets/qa', sha256Hex: HEX, maxBytes: 100 }));
    expect(e).to.be.instanceOf(FetchError);
    const f = e as FetchError;
    expect(f.kind).to.equal('not-found');
    expect(f.role).to.equal('targets/qa');
    expect(f.server).to.equal(dir);
    expect(f.message).to.contain(`targets/qa.${HEX}.json`).and.to.contain('targets/qa.json');
    const v = (await failure(src.fetch({ role: 'root', version: 9, maxBytes: 100 }))) as FetchError;
    expect(v.kind).to.equal('not-found');
    expect(v.message).to.contain('9.root.json');
    // a file where a directory is expected (ENOTDIR)
    expect(((await failure(src.fetch({ role: 'targets/plainfile/x', maxBytes: 100 }))) as FetchError).kind).to.equal('not-found');
  });

  it('names the origin as configured', async () => {
    const named = new DirSource({ dir, gun: 'g', server: 'bundle:/audit/2026' });
    const e = (await failure(named.fetch({ role: 'targets/none', maxBytes: 1 }))) as FetchError;
    expect(e.server).to.equal('bundle:/audit/2026');
    expect(e.message).to.contain('bundle:/audit/2026');
  });

  it('caps size: exactly maxBytes passes, one byte less fails with too-large', async () => {
    expect(await text({ role: 'timestamp', maxBytes: 9 })).to.equal('timestamp');
    const e = (await failure(src.fetch({ role: 'timestamp', maxBytes: 8 }))) as FetchError;
    expect(e.kind).to.equal('too-large');
    expect(e.message).to.contain('9 bytes').and.to.contain('8');
  });

  it('stops at maxBytes+1 even when the size on disk understates the content', async () => {
    // /proc files report size 0 but have content: the stat check passes, the read must not.
    const d = mkdtempSync(path.join(top, 'proc-'));
    symlinkSync('/proc/self/status', path.join(d, 'root.json'));
    const s = new DirSource({ dir: d, gun: 'g' });
    const e = (await failure(s.fetch({ role: 'root', maxBytes: 50 }))) as FetchError;
    expect(e.kind).to.equal('too-large');
    expect(e.message).to.contain('while being read');
  });

  it('never escapes the directory, whatever the role name', async () => {
    const attempts: MetadataRequest[] = [
      { role: '../secret', maxBytes: 100 },
      { role: '../root', maxBytes: 100 },
      { role: 'targets/../../secret', maxBytes: 100 },
      { role: 'targets/../../../../../../etc/passwd', maxBytes: 100000 },
      { role: path.join(top, 'secret'), maxBytes: 100 },
      { role: '/etc/passwd', maxBytes: 100000 },
      { role: 'targets\\..\\..\\secret', maxBytes: 100 },
      { role: 'targets/./releases', maxBytes: 100 },
      { role: 'targets//releases', maxBytes: 100 },
      { role: 'targets/releases/', maxBytes: 100 },
      { role: 'targets/%2e%2e', maxBytes: 100 },
      { role: 'targets/\u0000', maxBytes: 100 },
      { role: '', maxBytes: 100 },
      { role: 'root', version: -1, maxBytes: 100 },
      { role: 'root', sha256Hex: '/../../secret', maxBytes: 100 },
      { role: 'root', sha256Hex: '../'.repeat(21) + 'x', maxBytes: 100 },
    ];
    for (const req of attempts) {
      const e = await failure(src.fetch(req));
      expect(e, JSON.stringify(req)).to.be.instanceOf(InvalidNameError);
      expect(e.message).not.to.contain('SECRET');
    }
  });

  it('refuses something that is not a regular file without hanging on it', async () => {
    const e = (await failure(src.fetch({ role: 'targets/adir', maxBytes: 100 }))) as FetchError;
    expect(e.kind).to.equal('not-found');
    expect(e.message).to.contain('not a regular file');
    const d = mkdtempSync(path.join(top, 'fifo-'));
    execFileSync('mkfifo', [path.join(d, 'timestamp.json')]);
    const s = new DirSource({ dir: d, gun: 'g' });
    const f = (await failure(s.fetch({ role: 'timestamp', maxBytes: 100 }))) as FetchError;
    expect(f.kind).to.equal('not-found');
  });

  it('honours an aborted signal', async () => {
    const e = (await failure(src.fetch({ role: 'root', maxBytes: 100 }, AbortSignal.abort()))) as FetchError;
    expect(e.kind).to.equal('timeout');
  });

  it('refuses an empty directory or GUN at construction', () => {
    expect(() => new DirSource({ dir: '', gun: 'g' })).to.throw(TypeError);
    expect(() => new DirSource({ dir, gun: '' })).to.throw(TypeError);
  });
});
