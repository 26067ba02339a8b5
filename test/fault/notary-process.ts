/**
 * Killing and restarting the stack's real notary-server by PID. Its storage is in memory, so a
 * restarted server has forgotten every repository: `republish` puts back the exact files it
 * served before (the signer, still running, keeps the timestamp key, so the server signs
 * fresh timestamps for them again).
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { postFiles } from '../support/publish.js';
import { fetchTuf, httpGet, pidAlive, type Stack } from '../support/stack.js';

const SERVICE = 'notary-server';

export function notaryServerPid(stack: Stack): number {
  const pid = Number(readFileSync(join(stack.runDir, `${SERVICE}.pid`), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no ${SERVICE} pid in ${stack.runDir}`);
  return pid;
}

/** SIGKILL the notary-server; resolves with its command line (to restart it) once it is gone. */
export async function killNotaryServer(stack: Stack): Promise<string[]> {
  const pid = notaryServerPid(stack);
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  // The PID file may be stale and the PID reused: only a process of this stack is killed.
  if (!cmdline.some((a) => a.startsWith(`${stack.dir}/`))) throw new Error(`pid ${pid} is not this stack's ${SERVICE}: ${cmdline.join(' ')}`);
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(20);
  if (pidAlive(pid)) throw new Error(`${SERVICE} ${pid} survived SIGKILL`);
  return cmdline;
}

/**
 * Start the notary-server again with the same command line, the way hack/notary-stack.sh
 * does (own session, PID file written by the process), so the stack's stop() ends it.
 */
export async function restartNotaryServer(stack: Stack, cmdline: string[]): Promise<void> {
  const pidFile = join(stack.runDir, `${SERVICE}.pid`);
  const log = openSync(join(stack.runDir, `${SERVICE}.log`), 'a');
  try {
    const child = spawn('setsid', ['bash', '-c', 'echo $$ >"$0"; exec "$@"', pidFile, ...cmdline], { stdio: ['ignore', log, log], detached: true });
    child.unref();
  } finally {
    closeSync(log);
  }
  for (let i = 0; i < 200; i++) {
    try {
      const r = await httpGet(stack, `${stack.notaryUrl}/_notary_server/health`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`${SERVICE} did not come back on ${stack.notaryUrl}`);
}

/** The signed files of a GUN as served now (root, targets, snapshot and any delegations). */
export async function captureRepository(stack: Stack, gun: string): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {};
  for (const role of ['root', 'targets', 'snapshot']) {
    const r = await fetchTuf(stack, gun, `${role}.json`);
    if (r.status !== 200) throw new Error(`GET ${gun} ${role}.json: ${r.status}`);
    files[role] = r.body;
  }
  const snapshot = JSON.parse(files['snapshot']!.toString('utf8')) as { signed: { meta: Record<string, unknown> } };
  for (const role of Object.keys(snapshot.signed.meta).filter((r) => r.startsWith('targets/'))) {
    const r = await fetchTuf(stack, gun, `${role}.json`);
    if (r.status !== 200) throw new Error(`GET ${gun} ${role}.json: ${r.status}`);
    files[role] = r.body;
  }
  return files;
}

export async function republish(stack: Stack, gun: string, files: Record<string, Buffer>): Promise<void> {
  await postFiles(stack, gun, files);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
