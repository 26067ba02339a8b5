// The webhook as the demo runs it: `trustgate serve` in a child process, exactly the command
// an admin would type, and a client that talks to it the way the API server does (HTTPS
// POST of an AdmissionReview, trusting only the certificate the webhook says it serves).
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

export interface WebhookOptions {
  policyDir: string;
  port: number;
  /** Where the child's own temporary files (its self-signed certificate) go. */
  tmpDir: string;
  /** The child's stdout and stderr (JSON logs) are appended here. */
  logFile: string;
  /** dist/webhook/src/cli/main.js */
  cli: string;
  /** How long to wait for the "serving" line. */
  startTimeoutMs?: number;
  /** Called as soon as the child exists, so an interrupted start can still be cleaned up. */
  onSpawn?: (stop: (graceMs?: number) => Promise<void>, kill: () => void) => void;
}

export interface Webhook {
  pid: number;
  port: number;
  /** The certificate the webhook printed it serves, and its SHA-256 fingerprint. */
  caPem: string;
  fingerprint: string;
  /** The exact command line, for the reader to copy. */
  command: string;
  /** SIGTERM, then SIGKILL if it has not exited after graceMs. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
  /** Synchronous last resort for process 'exit' handlers. */
  kill(): void;
}

const SERVING = /^trustgate serving on https:\/\/\S+:(\d+) with (?:a self-signed certificate )?(\S+) \(SHA-256 ([0-9A-F:]+)\)$/m;

export async function startWebhook(o: WebhookOptions): Promise<Webhook> {
  const args = [o.cli, 'serve', '--policy-dir', o.policyDir, '--port', String(o.port), '--host', '127.0.0.1'];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, TMPDIR: o.tmpDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(o.logFile, { flags: 'a' });
  child.stderr!.pipe(log);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString('utf8');
    log.write(b);
  });

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5000): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(kill, graceMs);
        await exited;
        clearTimeout(timer);
      }
      await new Promise<void>((resolve) => log.end(() => resolve()));
    })();
    return stopping;
  };

  o.onSpawn?.(stop, kill);
  try {
    const [, port, certFile, fingerprint] = await waitForServing(child, () => out, o.startTimeoutMs ?? 15_000, o.logFile);
    const caPem = readFileSync(certFile!, 'utf8');
    // The file must be the certificate the line announced, not something put there since.
    if (new X509Certificate(caPem).fingerprint256 !== fingerprint) throw new Error(`${certFile} is not the certificate the webhook announced`);
    return { pid: child.pid!, port: Number(port), caPem, fingerprint: fingerprint!, command: `node ${args.join(' ')}`, stop, kill };
  } catch (e) {
    await stop(1000);
    throw e;
  }
}

function waitForServing(child: ChildProcess, output: () => string, timeoutMs: number, logFile: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error, m?: RegExpExecArray): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m!);
    };
    const onData = (): void => {
      const m = SERVING.exec(output());
      if (m) done(undefined, m);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`the webhook exited (${signal ?? `code ${code}`}) before serving (its log: ${logFile})`));
    const timer = setTimeout(() => done(new Error(`the webhook did not start serving within ${timeoutMs} ms; see ${logFile}`)), timeoutMs);
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    onData();
  });
}

export interface ReviewReply {
  status: number;
  body: any;
}

/** POSTs an AdmissionReview as the API server does (with its ?timeout=) and parses the answer. */
export function postReview(hook: Webhook, path: '/mutate' | '/validate', review: unknown, timeoutSeconds = 10): Promise<ReviewReply> {
  const payload = Buffer.from(JSON.stringify(review));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: hook.port,
        path: `${path}?timeout=${timeoutSeconds}s`,
        method: 'POST',
        ca: hook.caPem,
        servername: 'localhost',
        agent: false,
        timeout: (timeoutSeconds + 5) * 1000,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': String(payload.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            reject(new Error(`${path} answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${path} did not answer within ${timeoutSeconds + 5} s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export function cliPath(root: string): string {
  return join(root, 'dist', 'webhook', 'src', 'cli', 'main.js');
}
