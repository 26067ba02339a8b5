// The Dockerfile's structure, which the built image (test/integration/image.test.ts) cannot
// show: the bases are pinned by digest, both on Node 24, the release build needs no stand-in,
// the runtime stage has no shell step, and only what the image needs reaches the build.
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNTIME_NODE_FLAGS } from '../support/runtime.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Instruction {
  op: string;
  arg: string;
}
interface Stage {
  from: string;
  name?: string;
  body: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped; ARGs before FROM are global. */
function parseDockerfile(text: string): { globals: Map<string, string>; stages: Stage[] } {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([A-Z]+)\s+(.*)$/.exec(l);
      if (!m) throw new Error(`not an instruction: ${l}`);
      return { op: m[1]!, arg: m[2]!.trim() };
    });
  const globals = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.arg)!;
      const from = m[1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => globals.get(name) ?? `\${${name}}`);
      stages.push({ from, ...(m[2] ? { name: m[2] } : {}), body: [] });
    } else if (stages.length === 0) {
      expect(ins.op, 'only ARG comes before the first FROM').to.equal('ARG');
      const [name, value] = ins.arg.split('=', 2) as [string, string | undefined];
      globals.set(name, value ?? '');
    } else {
      stages[stages.length - 1]!.body.push(ins);
    }
  }
  return { globals, stages };
}

/** Whether `version` satisfies `range`, for the forms engines uses here: `^X.Y.Z` and `>=X.Y.Z` joined by `||`. */
function admits(range: string, version: string): boolean {
  const v = version.split('.').map(Number);
  const atLeast = (min: number[]) => {
    for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
    return true;
  };
  return range.split('||').some((alt) => {
    const m = /^\s*(\^|>=)(\d+)\.(\d+)\.(\d+)\s*$/.exec(alt);
    if (!m) throw new Error(`engines form not understood by this test: "${alt.trim()}"`);
    const min = [Number(m[2]), Number(m[3]), Number(m[4])];
    return atLeast(min) && (m[1] === '>=' || v[0] === min[0]);
  });
}

describe('Dockerfile', () => {
  const { globals, stages } = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const [build, final] = stages as [Stage, Stage];
  const args = (stage: Stage, op: string) => stage.body.filter((i) => i.op === op).map((i) => i.arg);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
    license: string;
    engines: { node: string };
    dependencies: Record<string, string>;
  };

  it('builds on node:24-bookworm-slim and runs on distroless Node 24 (nonroot), both pinned by digest', () => {
    expect(stages).to.have.length(2);
    expect(build.name).to.be.a('string');
    expect(build.from).to.match(/^node:24-bookworm-slim@sha256:[0-9a-f]{64}$/);
    expect(final.from).to.match(/^gcr\.io\/distroless\/nodejs24-debian12:nonroot@sha256:[0-9a-f]{64}$/);
    // hack/build-image.sh reads these two defaults to name its stand-ins.
    expect([...globals.keys()]).to.deep.equal(['BUILD_BASE', 'RUNTIME_BASE']);
  });

  it('package.json engines admits the Node the image ships and the Node this test runs on (CI runs both)', () => {
    const imageMajor = Number(/^node:(\d+)-/.exec(build.from)![1]);
    expect(imageMajor).to.equal(Number(/nodejs(\d+)-/.exec(final.from)![1]));
    expect(admits(pkg.engines.node, `${imageMajor}.0.0`), pkg.engines.node).to.equal(true);
    expect(admits(pkg.engines.node, process.versions.node), pkg.engines.node).to.equal(true);
    expect(admits(pkg.engines.node, '18.20.0'), 'end-of-life Node 18').to.equal(false);
  });

  it('build stage: npm ci (all dependencies, no scripts), npm run build, then prune to production', () => {
    const runs = args(build, 'RUN');
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r));
    const b = runs.findIndex((r) => /\bnpm run build\b/.test(r));
    expect(ci).to.be.at.least(0);
    expect(runs[ci]).to.include('--ignore-scripts').and.not.include('--omit=dev');
    expect(b).to.be.above(ci);
    expect(runs[b]).to.match(/npm run build\s+&&\s+npm prune --omit=dev --ignore-scripts/);
  });

  it('runtime stage: no RUN (no shell to run it), only production modules, the compiled webhook and the CRDs', () => {
    expect(args(final, 'RUN')).to.deep.equal([]);
    const copies = args(final, 'COPY');
    expect(copies).to.have.members([
      `--from=${build.name} /src/package.json ./`,
      `--from=${build.name} /src/node_modules ./node_modules`,
      `--from=${build.name} /src/dist/webhook ./dist/webhook`,
      'crds ./crds',
    ]);
  });

  it('runs as 65532 the command the chart expects, with OCI labels', () => {
    const users = args(final, 'USER');
    expect(users[users.length - 1]).to.equal('65532:65532');
    expect(JSON.parse(args(final, 'ENTRYPOINT')[0]!)).to.deep.equal(['/nodejs/bin/node', ...RUNTIME_NODE_FLAGS, pkg.bin['trustgate']]);
    expect(JSON.parse(args(final, 'CMD')[0]!)).to.deep.equal(['serve', '--kubernetes']);
    expect(args(final, 'EXPOSE')).to.deep.equal(['8443']);
    const labels = args(final, 'LABEL').join(' ');
    for (const key of ['title', 'description', 'source', 'licenses', 'version', 'revision', 'created', 'base.name']) {
      expect(labels).to.match(new RegExp(`org\\.opencontainers\\.image\\.${key.replace('.', '\\.')}="[^"]+"`));
    }
    expect(labels).to.contain(`org.opencontainers.image.licenses="${pkg.license}"`);
    expect(labels).to.contain(`org.opencontainers.image.base.name="${final.from.split('@')[0]}"`);
  });

  it('the ENTRYPOINT exists after `npm run build`, and what dist/webhook imports is a production dependency', () => {
    expect(existsSync(join(ROOT, pkg.bin['trustgate']!))).to.equal(true);
    const prod = new Set(Object.keys(pkg.dependencies));
    const builtins = new Set(builtinModules);
    const files: string[] = [];
    const walkDir = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walkDir(join(d, e.name));
        else if (e.name.endsWith('.js')) files.push(join(d, e.name));
      }
    };
    walkDir(join(ROOT, 'dist', 'webhook'));
    expect(files.length).to.be.above(5);
    const bad: string[] = [];
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      for (const m of src.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s*['"]([^'"]+)['"]/gm)) {
        const spec = (m[1] ?? m[2] ?? m[3])!;
        if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!prod.has(name)) bad.push(`${relative(ROOT, f)} imports ${spec}`);
      }
    }
    expect(bad, 'imports the runtime image would not have').to.deep.equal([]);
  });

  it('.dockerignore lets in only what the Dockerfile copies', () => {
    const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(rules[0]).to.equal('*');
    const allowed = rules.filter((r) => r.startsWith('!')).map((r) => r.slice(1).replace(/\/$/, ''));
    const sources = stages
      .flatMap((s) => s.body.filter((i) => i.op === 'COPY' && !i.arg.startsWith('--from')))
      .flatMap((i) => i.arg.split(/\s+/).slice(0, -1));
    expect(new Set(sources.map((s) => s.replace(/\/$/, '')))).to.deep.equal(new Set(allowed));
    for (const a of allowed) expect(existsSync(join(ROOT, a)), `${a} exists`).to.equal(true);
  });
});
