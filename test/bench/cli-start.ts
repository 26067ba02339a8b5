// How fast the CLI answers as installed (`npm link`: node runs dist/.../main.js directly):
// `trustgate --version`, and one offline `verify` (forged trust data in a directory, clock
// pinned), each the median of several runs, next to a bare `node -e 0` in the same run.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { GUN, RepoForge } from '../support/forge.js';
import { DIST, median } from './common.js';

export interface CliStartResult {
  runs: number;
  nodeMs: number;
  startMs: number;
  verifyMs: number;
}

const CLI = `${DIST}webhook/src/cli/main.js`;

function timed(args: string[], runs: number): number {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    execFileSync(process.execPath, args, { stdio: 'ignore' });
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

export function cliStartFigure(runs = 9): CliStartResult {
  const work = mkdtempSync(join(tmpdir(), 'tg-bench-cli-'));
  try {
    const now = new Date('2031-06-01T12:00:00Z');
    const repo = new RepoForge({ now }).build();
    const dir = join(work, 'bundle');
    for (const [role, bytes] of repo.files) {
      mkdirSync(dirname(join(dir, `${role}.json`)), { recursive: true });
      writeFileSync(join(dir, `${role}.json`), bytes);
    }
    repo.roots.forEach((bytes, i) => writeFileSync(join(dir, `${i + 1}.root.json`), bytes));
    const policy = join(work, 'policy.json');
    writeFileSync(policy, JSON.stringify({
      apiVersion: 'trustgate.dev/v1alpha1',
      kind: 'ClusterTrustPolicy',
      metadata: { name: 'bench' },
      spec: { images: [GUN], trustServer: { url: 'https://notary.test:4443' }, root: { keys: repo.rootPems, threshold: 1 } },
    }));
    const verify = [CLI, 'verify', `${GUN}:v2.0`, '--policy', policy, '--metadata-dir', dir, '--at', now.toISOString()];
    // Fails loudly (non-zero exit) rather than timing a refusal.
    execFileSync(process.execPath, verify, { stdio: 'ignore' });
    return { runs, nodeMs: timed(['-e', '0'], runs), startMs: timed([CLI, '--version'], runs), verifyMs: timed(verify, runs) };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
