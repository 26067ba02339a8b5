// End-to-end plumbing for the admission webhook: `trustgate serve` as a real child process
// (real flags, real TLS), AdmissionReviews built from the kube-apiserver fixtures with the
// images swapped for ones on the local stack, and a trust server that accepts connections
// and never answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { fixture } from '../fixtures/admission/support.js';
import { call, postJson } from '../fixtures/admission/https-client.js';
import { pidAlive, repoRoot } from './stack.js';

export const CLI = join(repoRoot(), 'dist', 'webhook', 'src', 'cli', 'main.js');

export interface LogLine {
  msg: string;
  level: string;
  [field: string]: unknown;
}

export interface WebhookProcess {
  port: number;
  pid: number;
  /** Every JSON log line written so far (stderr). */
  logs(): LogLine[];
  /** SIGTERM, then SIGKILL if it does not exit within 5 s; resolves once it has exited. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A failing run must not leave webhooks behind: kill whatever is still ours on exit.
process.once('exit', () => {
  for (const c of running) if (c.pid !== undefined && c.exitCode === null) c.kill('SIGKILL');
});

/**
 * Starts `node dist/webhook/src/cli/main.js serve ...args` and resolves once it prints the
 * line naming its port. Rejects with its stderr when it exits first.
 */
export function spawnWebhook(args: string[], env: Record<string, string> = {}): Promise<WebhookProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    running.delete(child);
    resolve();
  }));
  return new Promise((resolve, reject) => {
    const onExit = () => reject(new Error(`trustgate serve exited before listening:\n${stderr}`));
    child.once('exit', onExit);
    child.once('error', reject);
    child.stdout!.on('data', (b: Buffer) => {
      stdout += b.toString('utf8');
      const m = /serving on https:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (!m) return;
      child.removeListener('exit', onExit);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      resolve({
        port: Number(m[1]),
        pid: child.pid!,
        logs: () =>
          stderr
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as LogLine),
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        },
      });
    });
  });
}

/** Stops a process of the stack by PID (only if its command line names `marker`) and waits until it is gone. */
export async function stopPid(pid: number, marker: string): Promise<void> {
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  if (!cmdline.includes(marker)) throw new Error(`PID ${pid} is not ours (${cmdline.replace(/\0/g, ' ')})`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (pidAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  }
  if (pidAlive(pid)) throw new Error(`PID ${pid} did not exit`);
}

// ---- AdmissionReviews ---------------------------------------------------------------------

export interface ReviewEdit {
  /** Image field pointer (e.g. /spec/containers/0/image) -> image, in `object`. */
  images?: Record<string, string>;
  /** The same for `oldObject` (UPDATE, ephemeralcontainers). */
  oldImages?: Record<string, string>;
  namespace?: string;
}

function setAt(doc: any, pointer: string, value: unknown): void {
  const keys = pointer.slice(1).split('/');
  let v = doc;
  for (const k of keys.slice(0, -1)) {
    if (v?.[k] === undefined) throw new Error(`fixture has nothing at ${pointer}`);
    v = v[k];
  }
  const last = keys[keys.length - 1]!;
  if (typeof v?.[last] !== 'string') throw new Error(`fixture has no image at ${pointer}`);
  v[last] = value;
}

/** A fixture review with a fresh uid and the given images (and namespace) swapped in; every other byte as the API server sent it. */
export function reviewFrom(name: string, edit: ReviewEdit = {}): any {
  const review = fixture(name);
  const req = review.request;
  req.uid = randomUUID();
  for (const [p, image] of Object.entries(edit.images ?? {})) setAt(req.object, p, image);
  for (const [p, image] of Object.entries(edit.oldImages ?? {})) setAt(req.oldObject, p, image);
  if (edit.namespace !== undefined) {
    req.namespace = edit.namespace;
    for (const o of [req.object, req.oldObject]) if (o?.metadata) o.metadata.namespace = edit.namespace;
  }
  return review;
}

export interface AdmissionReply {
  status: number;
  /** The AdmissionReview the webhook answered with. */
  review: any;
  response: any;
}

/** POSTs a review over HTTPS (certificate checked against `ca` for "localhost"). */
export async function admit(port: number, path: string, review: unknown, ca: string): Promise<AdmissionReply> {
  const r = await postJson(port, path, review, { ca });
  if (r.status !== 200) throw new Error(`${path} answered ${r.status}: ${r.body}`);
  const body = JSON.parse(r.body);
  return { status: r.status, review: body, response: body.response };
}

export async function getText(port: number, path: string, ca: string): Promise<{ status: number; body: string }> {
  const r = await call({ port, path, ca });
  return { status: r.status, body: r.body };
}

/** Value of one sample in Prometheus text format (0 when the series is absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (want.length === have.size && want.every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return 0;
}

// ---- a trust server that hangs ------------------------------------------------------------

export interface StallingServer {
  url: string;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** HTTPS on 127.0.0.1 that completes the TLS handshake, reads the request, and never answers. */
export async function startStallingServer(certFile: string, keyFile: string): Promise<StallingServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: TlsServer = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `https://127.0.0.1:${port}`,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
