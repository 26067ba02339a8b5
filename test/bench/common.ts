// Pieces shared by the benchmark's processes: statistics, the AdmissionReview under test,
// the policy file, and child processes that are always stopped by their own PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root as seen from dist/test/bench/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DIST = `${ROOT}dist/`;
const FIXTURE = `${ROOT}test/fixtures/admission/pod-create.json`;

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/**
 * The faithful Pod CREATE fixture (two containers and an init container, managed fields,
 * service-account volume) with its three images replaced, so both servers parse the same
 * bytes a real API server sends.
 */
export function podReview(images: [string, string, string], uid = 'b3a4c6d0-0000-4000-8000-000000000000'): string {
  const review = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const spec = review.request.object.spec;
  const old = [spec.containers[0].image, spec.containers[1].image, spec.initContainers[0].image] as string[];
  spec.containers[0].image = images[0];
  spec.containers[1].image = images[1];
  spec.initContainers[0].image = images[2];
  review.request.uid = uid;
  let text = JSON.stringify(review);
  // The last-applied annotation repeats the images as text; keep it consistent.
  old.forEach((o, i) => (text = text.split(JSON.stringify(o).slice(1, -1)).join(images[i]!)));
  return text;
}

/** A Pod with a single container (burst and cold figures). */
export function singleImageReview(image: string, uid: string): string {
  const review = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const spec = review.request.object.spec;
  spec.containers = [{ ...spec.containers[0], image }];
  delete spec.initContainers;
  delete review.request.object.metadata.annotations;
  review.request.uid = uid;
  return JSON.stringify(review);
}

function indent(text: string, by: string): string {
  return text.trimEnd().split('\n').map((l) => by + l).join('\n');
}

export function policyYaml(opts: { name: string; images: string; url: string; caPem: string; rootPem: string }): string {
  return [
    'apiVersion: trustgate.dev/v1alpha1',
    'kind: ClusterTrustPolicy',
    `metadata: {name: ${opts.name}}`,
    'spec:',
    `  images: ["${opts.images}"]`,
    '  trustServer:',
    `    url: ${opts.url}`,
    '    caBundle: |',
    indent(opts.caPem, '      '),
    '  root:',
    '    keys:',
    '      - |',
    indent(opts.rootPem, '        '),
    '  mode: enforce',
    '',
  ].join('\n');
}

/** Children started by this process, stopped by PID on every way out. */
const children = new Set<ChildProcess>();

export function killChildren(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  children.clear();
}
process.once('exit', killChildren);

export interface Started {
  child: ChildProcess;
  /** The first stdout line that matched `ready`. */
  match: RegExpExecArray;
  stop(): Promise<void>;
}

/**
 * Starts `node <args>` and waits for a stdout line matching `ready`. stderr goes to
 * `stderrFile` (a file, as a container runtime would take it) or is ignored.
 */
export function startNode(
  args: string[],
  ready: RegExp,
  opts: { env?: NodeJS.ProcessEnv; stderrFd?: number | 'ignore'; timeoutMs?: number } = {},
): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', opts.stderrFd ?? 'ignore'],
    });
    children.add(child);
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`node ${args.join(' ')} did not print ${ready} within ${opts.timeoutMs ?? 20000} ms`)), opts.timeoutMs ?? 20_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      void stop();
      reject(e);
    };
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
      children.delete(child);
    };
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      for (const line of buf.split('\n')) {
        const m = ready.exec(line);
        if (m) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          resolve({ child, match: m, stop });
          return;
        }
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, sig) => fail(new Error(`node ${args.join(' ')} exited (${code ?? sig}) before it was ready`)));
    child.once('error', fail);
  });
}

/** Runs `node <args>` to completion and returns its last stdout line parsed as JSON. */
export function runNodeJson<T>(args: string[], opts: { timeoutMs?: number } = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
    child.once('error', reject);
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      children.delete(child);
      const text = Buffer.concat(out).toString('utf8').trim();
      if (code !== 0) {
        reject(new Error(`node ${args.join(' ')} exited ${code ?? sig}:\n${Buffer.concat(err).toString('utf8')}\n${text}`));
        return;
      }
      const last = text.split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`node ${args.join(' ')} printed no JSON line: ${text.slice(-500)}`));
      }
    });
  });
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

/** In-process CPU profile of one phase of a benchmark (node --cpu-prof covers the whole run). */
export async function startProfiler(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    async stop(file: string) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux clock ticks of 10 ms). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the full line are utime and stime; the slice starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Tag names of the 10,000-tag repository, as a CI system makes them (~30 characters). */
export function bigTagName(i: number): string {
  return `v3.${Math.floor(i / 100)}.${i % 100}-build.${createHash('sha256').update(String(i)).digest('hex').slice(0, 12)}`;
}
