// `npm run demo`: trustgate end to end on one machine. A real Notary stack and registry, images
// signed (and not) with the notary CLI, a TUF 1.0 repository served as static files by nginx,
// the webhook started as an admin would start it, and the AdmissionReviews an API server would
// send it. Prints one line per request and exits 0
// only when every answer is the expected one. Everything it starts is stopped on the way
// out, including on errors and Ctrl-C.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts, repoRoot, startStack, type Stack } from '../test/support/stack.js';
import { startStaticServer, type StaticServer } from '../test/support/static-server.js';
import { writePolicies } from './demo-policy.js';
import { cases, judge } from './demo-cases.js';
import { deploymentCreate, podCreate, readAnswer } from './demo-reviews.js';
import { prepareDemo, REQUIRED_ROLES } from './demo-setup.js';
import { prepareTufDemo, TUF_RELEASE_ROLE } from './demo-tuf.js';
import { formatReasons, formatTable, shortImage, type Row } from './demo-table.js';
import { cliPath, postReview, startWebhook, type Webhook } from './demo-webhook.js';

const WIDTH = 100;
const say = (line: string): void => void process.stderr.write(`demo: ${line}\n`);

/** Last-in, first-out cleanup that runs once, whoever asks first (normal end, error, signal). */
class Cleanup {
  private readonly steps: Array<{ what: string; run: () => unknown }> = [];
  private running: Promise<void> | undefined;

  add(what: string, run: () => unknown): void {
    this.steps.push({ what, run });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        try {
          await step.run();
        } catch (e) {
          say(`cleanup: ${step.what} failed: ${(e as Error).message}`);
        }
      }
    })();
    return this.running;
  }
}

async function run(cleanup: Cleanup, signal: AbortSignal): Promise<number> {
  const started = Date.now();
  const root = repoRoot();

  const work = mkdtempSync(join(tmpdir(), 'trustgate-demo-'));
  cleanup.add(`removing ${work}`, () => rmSync(work, { recursive: true, force: true }));
  const policyDir = join(work, 'policies');
  const childTmp = join(work, 'tmp');
  const tufDir = join(work, 'tuf');
  for (const d of [policyDir, childTmp, tufDir]) mkdirSync(d);

  say('starting the local Notary stack (notary-signer, notary-server, docker-registry) and nginx on 127.0.0.1');
  const pendingStack = startStack();
  const pendingNginx = startStaticServer(tufDir);
  // Registered before they resolve: an interrupted start-up is waited for, then stopped.
  cleanup.add('stopping the Notary stack', async () => (await pendingStack.catch(() => undefined))?.stop());
  cleanup.add('stopping nginx', async () => (await pendingNginx.catch(() => undefined))?.stop());
  const [stack, nginx]: [Stack, StaticServer] = await Promise.all([pendingStack, pendingNginx]);
  signal.throwIfAborted();
  say(`notary-server ${stack.notaryUrl}, registry ${stack.registryUrl}, state in ${stack.dir}`);
  say(`TUF repository ${nginx.url} (nginx pid ${nginx.pid}, prefix ${nginx.dir}), files in ${tufDir}`);

  // Both repositories are prepared at once; when one fails, the other stops at its next step.
  const failed = new AbortController();
  const setupSignal = AbortSignal.any([signal, failed.signal]);
  const abortOnFailure = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (e) {
      failed.abort(e);
      throw e;
    }
  };
  const [setup, tuf] = await Promise.all([
    abortOnFailure(prepareDemo(stack, say, setupSignal)),
    abortOnFailure(prepareTufDemo(stack, tufDir, say, setupSignal)),
  ]);
  signal.throwIfAborted();

  const notary = { url: stack.notaryUrl, caPem: stack.caPem };
  const tufServer = { url: nginx.url, caPem: nginx.ca.certPem, protocol: 'tuf' as const };
  const files = writePolicies(policyDir, [
    { name: 'demo-app', repository: setup.app.gun, server: notary, root: { keys: [setup.app.rootPem] }, roles: REQUIRED_ROLES },
    { name: 'demo-stale', repository: setup.stale.gun, server: notary, root: { keys: [setup.stale.rootPem] } },
    { name: 'demo-tuf-app', repository: tuf.app, server: tufServer, root: { trustedRoot: tuf.trustedRoot }, roles: [TUF_RELEASE_ROLE] },
    { name: 'demo-tuf-nightly', repository: tuf.nightly, server: tufServer, root: { trustedRoot: tuf.trustedRoot } },
  ]);
  say(`policies: ${files.map((f) => f.slice(work.length + 1)).join(', ')} in ${work}`);

  const [port] = await freePorts(1);
  signal.throwIfAborted();
  const logFile = join(work, 'webhook.log');
  let hook: Webhook | undefined;
  try {
    hook = await startWebhook({
      policyDir,
      port: port!,
      tmpDir: childTmp,
      logFile,
      cli: cliPath(root),
      onSpawn: (stop, kill) => {
        cleanup.add('stopping the webhook', () => stop());
        process.once('exit', kill);
      },
    });
  } catch (e) {
    printLogTail(logFile);
    throw e;
  }
  say(`webhook (pid ${hook.pid}): ${hook.command}`);
  say(`webhook certificate SHA-256 ${hook.fingerprint}`);

  const wait = Math.max(setup.staleExpiresAt.getTime(), tuf.nightlyExpiresAt.getTime()) + 500 - Date.now();
  if (wait > 0) {
    say(`waiting ${(wait / 1000).toFixed(1)} s for demo/stale's targets/releases and TUF's demo-nightly to expire`);
    await sleep(wait, undefined, { signal });
  }

  const rows: Row[] = [];
  for (const [n, c] of cases([...setup.images, ...tuf.images]).entries()) {
    const name = `demo-${n + 1}`;
    const images = c.images.map((i) => i.image);
    const review: any = c.kind === 'Pod' ? podCreate(root, name, images[0]!) : deploymentCreate(root, name, images);
    const path = c.kind === 'Pod' ? '/mutate' : '/validate';
    signal.throwIfAborted();
    const reply = await postReview(hook, path, review);
    const answer = readAnswer(review, reply.status, reply.body);
    const { ok, detail } = judge(c, answer);
    const shown = images.map((i) => shortImage(i, stack.registryHost));
    rows.push({
      ok,
      label: c.label,
      image: shown.length === 1 ? shown[0]! : `${shown[0]} +${shown.length - 1}`,
      result: answer.allowed ? 'allowed' : 'denied',
      detail,
      ...(answer.message !== undefined ? { message: answer.message } : {}),
    });
  }

  const out = (l: string) => process.stdout.write(l + '\n');
  out('');
  out(`webhook https://127.0.0.1:${hook.port}: Pods sent to /mutate, the Deployment to /validate`);
  out(`images on ${stack.registryHost}; ok = the expected answer`);
  out(`trust data: Notary ${stack.notaryUrl}, TUF 1.0 ${nginx.url} (demo/tuf/*)`);
  out('');
  formatTable(rows, WIDTH).forEach(out);
  const reasons = formatReasons(rows, WIDTH);
  if (reasons.length > 0) {
    out('');
    out('Denials as kubectl prints them after "admission webhook ... denied the request:":');
    reasons.forEach(out);
  }
  const bad = rows.filter((r) => !r.ok).length;
  out('');
  out(
    bad === 0
      ? `All ${rows.length} answers as expected (${((Date.now() - started) / 1000).toFixed(1)} s).`
      : `${bad} of ${rows.length} answers NOT as expected (rows marked XX); the webhook's log ends:`,
  );
  if (bad > 0) printLogTail(logFile);
  return bad === 0 ? 0 : 1;
}

function printLogTail(logFile: string): void {
  try {
    const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-15);
    say(`last lines of the webhook's log:\n${lines.join('\n')}`);
  } catch {
    /* no log yet */
  }
}

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  const interrupt = new AbortController();
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    const code = sig === 'SIGINT' ? 130 : 143;
    if (signalled) process.exit(code); // a second Ctrl-C: stop waiting for the cleanup
    signalled = true;
    interrupt.abort(new Error(`interrupted by ${sig}`));
    say(`${sig}: stopping everything the demo started`);
    void cleanup.run().finally(() => process.exit(code));
  };
  // Persistent listeners, so the stack's own signal handler never re-raises the signal
  // (which would end the process before the webhook child is stopped).
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code = 1;
  try {
    code = await run(cleanup, interrupt.signal);
  } catch (e) {
    if (!signalled) say(`failed: ${(e as Error)?.message ?? String(e)}`);
  } finally {
    await cleanup.run();
  }
  if (!signalled) process.exit(code);
}

void main();
