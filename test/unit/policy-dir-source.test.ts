// PolicyDirSource: initial load, reload on change / invalid / delete / add (awaiting the
// store's change events, never fixed sleeps), fail-closed handling of bad files, and a
// ConfigMap-style symlink swap.
import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { MAX_POLICY_FILE_BYTES, PolicyDirSource } from '../../webhook/src/policy/dir-source.js';
import { policyId } from '../../webhook/src/policy/model.js';
import { PolicyStore } from '../../webhook/src/policy/store.js';

const KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;

function cluster(name: string, image: string): string {
  return `apiVersion: trustgate.dev/v1alpha1
kind: ClusterTrustPolicy
metadata: {name: ${name}}
spec:
  images: [${JSON.stringify(image)}]
  trustServer: {url: "https://notary.example.com"}
  root: {keys: [${JSON.stringify(KEY)}]}
`;
}

function namespaced(name: string, namespace: string | undefined, image: string): string {
  return cluster(name, image)
    .replace('kind: ClusterTrustPolicy', 'kind: TrustPolicy')
    .replace(`metadata: {name: ${name}}`, namespace ? `metadata: {name: ${name}, namespace: ${namespace}}` : `metadata: {name: ${name}}`);
}

/** Resolves on the next store change for `file` (or any source when omitted); fails after 10 s instead of hanging. */
function nextChange(store: PolicyStore, file?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no store change for ${file ?? 'any source'} within 10 s`));
    }, 10_000);
    const off = store.onChange((c) => {
      if (file !== undefined && c.source !== file) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** Atomic write (temp file + rename), so a watcher never reads a half-written file. */
function put(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

interface LogEvent {
  level?: string;
  event?: string;
  file?: string;
  problems?: { path: string; message: string }[];
  error?: string;
}

describe('policy directory source', () => {
  let dir: string;
  let store: PolicyStore;
  let logs: LogEvent[];
  let source: PolicyDirSource | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-policies-'));
    store = new PolicyStore();
    logs = [];
    source = undefined;
  });
  afterEach(() => {
    source?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (rescanMs = 250) => {
    source = new PolicyDirSource(dir, store, (e) => logs.push(e as LogEvent), { debounceMs: 20, rescanMs });
    await source.start();
    return source;
  };
  const ids = () => store.all().map(policyId);

  it('loads valid files, reports invalid ones without loading them, ignores other names, and marks the store ready', async () => {
    writeFileSync(join(dir, 'a.yaml'), cluster('a', 'registry.example.com/a/**'));
    writeFileSync(join(dir, 'b.yml'), namespaced('b', 'team', 'registry.example.com/b/**'));
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'trustgate.dev/v1alpha1', kind: 'ClusterTrustPolicy', metadata: { name: 'c' }, spec: { images: ['registry.example.com/c'], trustServer: { url: 'https://n.example.com' }, root: { keys: [KEY] } } }));
    writeFileSync(join(dir, 'bad.yaml'), cluster('bad', 'nginx'));
    writeFileSync(join(dir, 'notes.txt'), cluster('txt', 'registry.example.com/txt'));
    writeFileSync(join(dir, '.hidden.yaml'), cluster('hidden', 'registry.example.com/hidden'));
    mkdirSync(join(dir, 'sub.yaml'));
    writeFileSync(join(dir, 'sub.yaml', 'd.yaml'), cluster('d', 'registry.example.com/d'));
    expect(store.ready).to.equal(false);
    await start();
    expect(store.ready).to.equal(true);
    expect(ids()).to.deep.equal(['ClusterTrustPolicy/a', 'ClusterTrustPolicy/c', 'TrustPolicy/team/b']);
    expect(store.all().find((p) => p.name === 'a')!.source).to.equal(join(dir, 'a.yaml'));
    const rejected = logs.filter((l) => l.event === 'policy-file-rejected');
    expect(rejected.map((l) => l.file)).to.deep.equal([join(dir, 'bad.yaml')]);
    expect(rejected[0]!.problems![0]).to.deep.include({ path: 'spec.images[0]' });
  });

  it('a TrustPolicy without a namespace is rejected (it would apply nowhere)', async () => {
    writeFileSync(join(dir, 'n.yaml'), namespaced('n', undefined, 'registry.example.com/n'));
    await start();
    expect(ids()).to.deep.equal([]);
    expect(logs.find((l) => l.event === 'policy-file-rejected')!.problems![0]!.path).to.equal('metadata.namespace');
  });

  it('reloads a changed file, drops the policies of a file that turns invalid, loads it again when fixed, and follows deletes and new files', async () => {
    const a = join(dir, 'a.yaml');
    writeFileSync(a, cluster('a', 'registry.example.com/a/**'));
    writeFileSync(join(dir, 'keep.yaml'), cluster('keep', 'registry.example.com/keep/**'));
    await start();
    expect(store.policiesFor('registry.example.com/a/x:1', undefined).map((p) => p.name)).to.deep.equal(['a']);

    let changed = nextChange(store, a);
    put(a, cluster('a', 'registry.example.com/a2/**'));
    await changed;
    expect(store.policiesFor('registry.example.com/a/x:1', undefined)).to.deep.equal([]);
    expect(store.policiesFor('registry.example.com/a2/x:1', undefined).map((p) => p.name)).to.deep.equal(['a']);

    // Fail closed: the old version is not kept once the file is invalid; other files keep working.
    changed = nextChange(store, a);
    put(a, cluster('a', 'registry.example.com/a2/**').replace('root: {keys', 'root: {treshold: 1, keys'));
    await changed;
    expect(ids()).to.deep.equal(['ClusterTrustPolicy/keep']);
    const rejected = logs.filter((l) => l.event === 'policy-file-rejected' && l.file === a);
    expect(rejected.at(-1)!.problems).to.deep.equal([{ path: 'spec.root.treshold', message: 'unknown field "treshold" (did you mean "threshold"?)' }]);

    changed = nextChange(store, a);
    put(a, cluster('a', 'registry.example.com/a3/**'));
    await changed;
    expect(ids()).to.deep.equal(['ClusterTrustPolicy/a', 'ClusterTrustPolicy/keep']);

    changed = nextChange(store, a);
    unlinkSync(a);
    await changed;
    expect(ids()).to.deep.equal(['ClusterTrustPolicy/keep']);

    const b = join(dir, 'b.yaml');
    changed = nextChange(store, b);
    // Written elsewhere and renamed in, as editors and kubectl cp do.
    writeFileSync(join(dir, '.b.yaml.tmp'), namespaced('b', 'team', 'registry.example.com/b/**'));
    renameSync(join(dir, '.b.yaml.tmp'), b);
    await changed;
    expect(ids()).to.deep.equal(['ClusterTrustPolicy/keep', 'TrustPolicy/team/b']);
  });

  it('follows a ConfigMap-style update (the ..data symlink swapped to a new directory)', async () => {
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'policy.yaml'), cluster('cm', 'registry.example.com/v1/**'));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync(join('..data', 'policy.yaml'), join(dir, 'policy.yaml'));
    await start();
    expect(store.policiesFor('registry.example.com/v1/x:1', undefined)).to.have.length(1);

    mkdirSync(join(dir, '..v2'));
    writeFileSync(join(dir, '..v2', 'policy.yaml'), cluster('cm', 'registry.example.com/v2/**'));
    const changed = nextChange(store, join(dir, 'policy.yaml'));
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await changed;
    expect(store.policiesFor('registry.example.com/v1/x:1', undefined)).to.deep.equal([]);
    expect(store.policiesFor('registry.example.com/v2/x:1', undefined)).to.have.length(1);
  });

  it('the periodic rescan alone picks up changes (fs.watch may miss them)', async () => {
    await start(50);
    // Stop the watcher only: the rescan timer must still see the new file.
    (source as unknown as { watcher?: { close(): void } }).watcher?.close();
    (source as unknown as { watcher?: unknown }).watcher = undefined;
    const f = join(dir, 'late.yaml');
    const changed = nextChange(store, f);
    put(f, cluster('late', 'registry.example.com/late/**'));
    await changed;
    expect(ids()).to.deep.equal(['ClusterTrustPolicy/late']);
  });

  it('rejects a file larger than the cap', async () => {
    writeFileSync(join(dir, 'big.yaml'), `${cluster('big', 'registry.example.com/big')}#${'x'.repeat(MAX_POLICY_FILE_BYTES)}\n`);
    await start();
    expect(ids()).to.deep.equal([]);
    expect(logs.find((l) => l.event === 'policy-file-rejected')!.error).to.match(/larger than/);
  });

  it('start fails clearly when the directory is missing or a file', async () => {
    expect((await failure(new PolicyDirSource(join(dir, 'nope'), store, () => {}).start())).message).to.match(/nope: does not exist/);
    writeFileSync(join(dir, 'file'), '');
    expect((await failure(new PolicyDirSource(join(dir, 'file'), store, () => {}).start())).message).to.match(/is not a directory/);
    expect(store.ready).to.equal(false);
  });

  it('applies nothing after stop', async () => {
    const s = await start();
    s.stop();
    writeFileSync(join(dir, 'after.yaml'), cluster('after', 'registry.example.com/after'));
    await s.rescan();
    expect(ids()).to.deep.equal([]);
  });

  it('warns when two files define the same policy, and keeps both', async () => {
    writeFileSync(join(dir, 'one.yaml'), cluster('same', 'registry.example.com/x/**'));
    writeFileSync(join(dir, 'two.yaml'), cluster('same', 'registry.example.com/x/**'));
    await start();
    expect(store.policiesFor('registry.example.com/x/y:1', undefined)).to.have.length(2);
    expect(logs.some((l) => l.event === 'policy-defined-twice')).to.equal(true);
  });
});
