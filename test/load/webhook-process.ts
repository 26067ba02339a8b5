/**
 * The real webhook as a child process (`trustgate serve`), the way it runs in a cluster,
 * so load figures include its whole HTTPS stack and its memory is its own to measure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, repoRoot } from '../support/stack.js';

export interface WebhookProcess {
  pid: number;
  port: number;
  /** PEM of its self-signed serving certificate (the client's trust anchor). */
  ca: string;
  /** Resident set size now, in MiB (from /proc). */
  rssMb(): number;
  stop(): Promise<void>;
}

export async function startWebhookProcess(opts: { policyDir: string; deadlineS: number; env?: Record<string, string> }): Promise<WebhookProcess> {
  const [port] = (await freePorts(1)) as [number];
  const main = join(repoRoot(), 'dist', 'webhook', 'src', 'cli', 'main.js');
  const child: ChildProcess = spawn(
    process.execPath,
    [main, 'serve', '--policy-dir', opts.policyDir, '--port', String(port), '--host', '127.0.0.1', '--deadline', String(opts.deadlineS), '--log-level', 'error'],
    { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 20_000) stderr += b.toString('utf8');
  });
  const certFile = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString('utf8');
      const m = /trustgate serving on \S+ with (?:a self-signed certificate )?(\S+) \(SHA-256/.exec(out);
      if (m) {
        child.stdout!.off('data', onData);
        // Keep draining so the child never blocks on a full pipe.
        child.stdout!.resume();
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`trustgate serve exited ${code} before serving:\n${out}\n${stderr}`)));
    setTimeout(() => reject(new Error(`trustgate serve did not start in 20 s:\n${out}\n${stderr}`)), 20_000).unref();
  });
  const pid = child.pid!;
  return {
    pid,
    port,
    ca: readFileSync(certFile, 'utf8'),
    rssMb() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
      return kb / 1024;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
