// The real local trust stack (notary-signer + notary-server + docker-registry, optional
// ed25519 and token-auth notary-servers) for integration tests, the demo and benchmarks.
// Everything runs on 127.0.0.1 from hack/notary-stack.sh; this module picks free ports,
// drives the notary CLI and the push script, and reads back what the servers serve.
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StackOptions {
  /** Also run a notary-server that signs timestamp/snapshot itself with ed25519 keys. */
  ed25519?: boolean;
  /** Also run a notary-server with token auth and the test token service. */
  tokenAuth?: boolean;
}

export interface Stack {
  dir: string;
  /** https://127.0.0.1:<port> of the main notary-server (remote signer, ecdsa keys). */
  notaryUrl: string;
  /** CA that issued every TLS certificate in the stack. */
  caFile: string;
  caPem: string;
  /** http://127.0.0.1:<port> */
  registryUrl: string;
  /** 127.0.0.1:<port>: the registry as it appears in image references and GUNs. */
  registryHost: string;
  /** notary client config (absolute trust_dir = dir/trust). */
  clientConfig: string;
  ed25519Url?: string;
  tokenNotaryUrl?: string;
  /** https://127.0.0.1:<port>/token */
  tokenRealm?: string;
  /** Credentials the token service accepts for push: user:secret. */
  tokenUser?: { username: string; password: string };
  /** Run directory holding <service>.pid / <service>.log. */
  runDir: string;
  stop(): Promise<void>;
}

export interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface CliOptions {
  /** Written to the CLI's stdin (otherwise stdin is empty, so prompts fail fast). */
  input?: string;
  /** Overrides the config's trust_dir (-d). */
  trustDir?: string;
  /** Overrides the config's server URL (-s). */
  server?: string;
  env?: Record<string, string>;
}

export interface SignedTarget {
  /** sha256:<hex> */
  digest: string;
  size: number;
}

/** Passphrases the notary CLI uses for keys it creates and imports. */
export const PASSPHRASES = {
  NOTARY_ROOT_PASSPHRASE: 'tg-root-pass',
  NOTARY_TARGETS_PASSPHRASE: 'tg-targets-pass',
  NOTARY_SNAPSHOT_PASSPHRASE: 'tg-snapshot-pass',
  NOTARY_DELEGATION_PASSPHRASE: 'tg-delegation-pass',
} as const;

export const TOKEN_USER = { username: 'user', password: 'secret' } as const;

const HERE = dirname(fileURLToPath(import.meta.url));

/** The repository root: the nearest parent holding hack/notary-stack.sh (works from src and dist). */
export function repoRoot(): string {
  let d = HERE;
  for (;;) {
    if (existsSync(join(d, 'hack', 'notary-stack.sh'))) return d;
    const up = dirname(d);
    if (up === d) throw new Error(`hack/notary-stack.sh not found above ${HERE}`);
    d = up;
  }
}

/** Free TCP ports on 127.0.0.1: all held open together so they are distinct, then released. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    // A child that exits before reading its input (killed, or failing fast) must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.once('close', (code, signal) => {
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (signal ? `\n(killed by ${signal})` : ''),
        code: code ?? 128,
      });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** PIDs recorded in a stack's run directory. */
export function stackPids(runDir: string): number[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(runDir, f), 'utf8').trim()))
    .filter((p) => Number.isInteger(p) && p > 1);
}

/** True while a process exists and has not exited (a zombie waiting for its reaper counts as gone). */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // Field 3, after the parenthesised command name (which may itself contain spaces).
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  // A port found free can be taken by someone else before the service binds it; that race
  // is the one start-up failure worth another try with fresh ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !err.message.includes('address already in use')) throw err;
    }
  }
}

async function startStackOnce(opts: StackOptions): Promise<Stack> {
  const root = repoRoot();
  const script = join(root, 'hack', 'notary-stack.sh');
  const dir = mkdtempSync(join(tmpdir(), 'trustgate-stack-'));
  const [notaryPort, signerPort, registryPort, edPort, tokenNotaryPort, tokenPort] = (await freePorts(6)) as [
    number, number, number, number, number, number,
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TG_NOTARY_PORT: String(notaryPort),
    TG_SIGNER_PORT: String(signerPort),
    TG_REGISTRY_PORT: String(registryPort),
    TG_NOTARY_ED25519_PORT: opts.ed25519 ? String(edPort) : '',
    TG_NOTARY_TOKEN_PORT: opts.tokenAuth ? String(tokenNotaryPort) : '',
    TG_TOKEN_PORT: opts.tokenAuth ? String(tokenPort) : '',
    TG_TOKEN_SERVER_JS: join(HERE, 'token-server.js'),
  };

  let stopping: Promise<void> | undefined;
  // While `up` runs, services are still being started: removing the directory then would leave
  // the later ones running with nowhere to record their PIDs. A signal waits for `up` to end.
  let upRunning = false;
  let deferredSignal: NodeJS.Signals | undefined;
  const runDir = join(dir, 'run');
  // If the test process dies without calling stop(), the setsid'ed services would outlive it.
  const onExit = (): void => {
    for (const pid of stackPids(runDir)) {
      try {
        // Only a process that still names this stack's directory (the PID may be reused).
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`)) continue;
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  // Ctrl-C / kill of the test run: clean up, then let the signal do what it would have done.
  const onSignal = (sig: NodeJS.Signals): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (upRunning) {
      deferredSignal = sig;
      return;
    }
    onExit();
    process.removeListener('exit', onExit);
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const r = await run('bash', [script, 'down', dir]);
      process.removeListener('exit', onExit);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      if (r.code !== 0) throw new Error(`notary-stack down failed (${r.code}): ${r.stderr}`);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  upRunning = true;
  const up = await run('bash', [script, 'up', dir], { env }).finally(() => (upRunning = false));
  if (deferredSignal !== undefined) {
    const sig = deferredSignal;
    onExit();
    process.removeListener('exit', onExit);
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    throw new Error(`interrupted by ${sig} while the stack was starting`);
  }
  if (up.code !== 0) {
    await stop().catch(() => undefined);
    throw new Error(`notary-stack up failed (${up.code}):\n${up.stderr}`);
  }
  const caFile = join(dir, 'pki', 'ca.crt');
  const stack: Stack = {
    dir,
    notaryUrl: `https://127.0.0.1:${notaryPort}`,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    registryUrl: `http://127.0.0.1:${registryPort}`,
    registryHost: `127.0.0.1:${registryPort}`,
    clientConfig: join(dir, 'notary-client.json'),
    runDir,
    stop,
  };
  if (opts.ed25519) stack.ed25519Url = `https://127.0.0.1:${edPort}`;
  if (opts.tokenAuth) {
    stack.tokenNotaryUrl = `https://127.0.0.1:${tokenNotaryPort}`;
    stack.tokenRealm = `https://127.0.0.1:${tokenPort}/token`;
    stack.tokenUser = { ...TOKEN_USER };
  }
  return stack;
}

/** Runs `notary -c <stack config> [-d trustDir] [-s server] ...args` with the test passphrases. */
export function notaryCli(stack: Stack, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const full = ['-c', stack.clientConfig];
  if (opts.trustDir !== undefined) full.push('-d', opts.trustDir);
  if (opts.server !== undefined) full.push('-s', opts.server);
  full.push(...args);
  const env: NodeJS.ProcessEnv = { ...process.env, ...PASSPHRASES, ...(opts.env ?? {}) };
  return run('notary', full, { env, input: opts.input ?? '', cwd: stack.dir });
}

/** Like notaryCli but throws with the CLI's output when it exits non-zero. */
export async function notaryOk(stack: Stack, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const r = await notaryCli(stack, args, opts);
  if (r.code !== 0) {
    throw new Error(`notary ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

export interface LookupOptions {
  server?: string;
  env?: Record<string, string>;
}

/**
 * `notary lookup GUN TAG` with a brand-new empty trust dir, so every call downloads and
 * verifies the whole chain itself (trust on first use of the current root). Returns null
 * when the GUN or the tag has no trust data; any other failure throws.
 */
export async function notaryLookup(
  stack: Stack,
  gun: string,
  tag: string,
  opts: LookupOptions = {},
): Promise<SignedTarget | null> {
  const trustDir = mkdtempSync(join(stack.dir, 'lookup-'));
  try {
    const cli: CliOptions = { trustDir };
    if (opts.server !== undefined) cli.server = opts.server;
    if (opts.env !== undefined) cli.env = opts.env;
    const r = await notaryCli(stack, ['lookup', gun, tag], cli);
    if (r.code !== 0) {
      // The CLI prints "* fatal: ..." on stdout.
      const said = `${r.stdout}\n${r.stderr}`;
      if (/fatal: (No valid trust data for |.* does not have trust data for )/.test(said)) return null;
      throw new Error(`notary lookup ${gun} ${tag} exited ${r.code}: ${said.trim()}`);
    }
    // Output: "<tag> sha256:<hex> <size>" (the tag itself never has spaces).
    const m = /^(\S+) sha256:([0-9a-f]{64}) (\d+)$/m.exec(r.stdout);
    if (!m || m[1] !== tag) throw new Error(`unexpected notary lookup output: ${JSON.stringify(r.stdout)}`);
    return { digest: `sha256:${m[2]}`, size: Number(m[3]) };
  } finally {
    rmSync(trustDir, { recursive: true, force: true });
  }
}

export interface KeyMaterial {
  /** Private key PEM file (for `notary key import`). */
  keyFile: string;
  /** The file handed to `notary delegation add`: a certificate or a PUBLIC KEY PEM. */
  publicFile: string;
  publicPem: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** ECDSA P-256 key + self-signed certificate CN=<name> (=> delegation key type ecdsa-x509). */
export function makeEcdsaCert(dir: string, name: string): KeyMaterial {
  const keyFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.crt`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], dir);
  openssl(['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '365', '-subj', `/CN=${name}`, '-out', publicFile], dir);
  return { keyFile, publicFile, publicPem: readFileSync(publicFile, 'utf8') };
}

/** RSA-2048 key + self-signed certificate CN=<name> (=> delegation key type rsa-x509). */
export function makeRsaCert(dir: string, name: string): KeyMaterial {
  const keyFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.crt`);
  openssl(['genrsa', '-out', keyFile, '2048'], dir);
  openssl(['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '365', '-subj', `/CN=${name}`, '-out', publicFile], dir);
  return { keyFile, publicFile, publicPem: readFileSync(publicFile, 'utf8') };
}

/** ECDSA P-256 key + plain PUBLIC KEY PEM (=> delegation key type ecdsa). */
export function makeEcdsaPublicKey(dir: string, name: string): KeyMaterial {
  const keyFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.pub`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], dir);
  openssl(['ec', '-in', keyFile, '-pubout', '-out', publicFile], dir);
  return { keyFile, publicFile, publicPem: readFileSync(publicFile, 'utf8') };
}

/** Pushes a deterministic image (hack/push-image.sh) and returns the manifest digest and size. */
export async function pushImage(
  stack: Stack,
  repo: string,
  tag: string,
  content: string,
  kind: 'docker' | 'oci' = 'docker',
): Promise<SignedTarget> {
  const r = await run('bash', [join(repoRoot(), 'hack', 'push-image.sh'), repo, tag, content, kind], {
    env: { ...process.env, TG_REGISTRY_URL: stack.registryUrl },
  });
  if (r.code !== 0) throw new Error(`push-image ${repo}:${tag} failed (${r.code}): ${r.stderr.trim()}`);
  const m = /^sha256:([0-9a-f]{64}) (\d+)$/m.exec(r.stdout);
  if (!m) throw new Error(`unexpected push-image output: ${JSON.stringify(r.stdout)}`);
  return { digest: `sha256:${m[1]}`, size: Number(m[2]) };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One GET (HTTPS with the stack CA, or plain HTTP), no redirects, no keep-alive. */
export function httpGet(stack: Stack, url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const common = { method: 'GET', headers, agent: false as const, timeout: 10_000 };
    const onRes = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    };
    const req =
      u.protocol === 'https:' ? httpsRequest(u, { ...common, ca: stack.caPem }, onRes) : httpRequest(u, common, onRes);
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET {server}/v2/{gun}/_trust/tuf/{role}.json from the main notary-server (or opts.server). */
export function fetchTuf(
  stack: Stack,
  gun: string,
  file: string,
  opts: { server?: string; token?: string } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers['Authorization'] = `Bearer ${opts.token}`;
  return httpGet(stack, `${opts.server ?? stack.notaryUrl}/v2/${gun}/_trust/tuf/${file}`, headers);
}

/** Fetches a JSON metadata file and fails with the status and body when it is not 200. */
export async function fetchTufJson(
  stack: Stack,
  gun: string,
  file: string,
  opts: { server?: string; token?: string } = {},
): Promise<any> {
  const r = await fetchTuf(stack, gun, file, opts);
  if (r.status !== 200) throw new Error(`GET ${file} for ${gun}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
  return JSON.parse(r.body.toString('utf8'));
}

export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

/** GET a manifest from the stack registry; the Accept header is required for schema 2 / OCI. */
export function getManifest(stack: Stack, repo: string, reference: string): Promise<HttpResult> {
  return httpGet(stack, `${stack.registryUrl}/v2/${repo}/manifests/${reference}`, { Accept: MANIFEST_ACCEPT });
}

/** Certificate PEMs of the root role's keys as the server currently serves them in root.json. */
export async function rootCertPems(stack: Stack, gun: string, opts: { server?: string } = {}): Promise<string[]> {
  const root = await fetchTufJson(stack, gun, 'root.json', opts);
  const ids: unknown = root?.signed?.roles?.root?.keyids;
  if (!Array.isArray(ids) || ids.length === 0) throw new Error(`root.json of ${gun} lists no root keys`);
  return ids.map((id: unknown) => {
    const key = root.signed.keys?.[String(id)];
    if (!key || !/-x509$/.test(String(key.keytype))) {
      throw new Error(`root key ${String(id)} of ${gun} is not an x509 key (${String(key?.keytype)})`);
    }
    const pem = Buffer.from(String(key.keyval.public), 'base64').toString('utf8');
    new X509Certificate(pem); // throws on anything that is not a certificate
    return pem;
  });
}

/** The (first) root certificate PEM of a GUN: what a policy pins. */
export async function rootPublicKeyPem(stack: Stack, gun: string, opts: { server?: string } = {}): Promise<string> {
  const [first] = await rootCertPems(stack, gun, opts);
  if (first === undefined) throw new Error(`no root certificate for ${gun}`);
  return first;
}

/** Token from the stack's token service; with credentials it may grant push. */
export async function fetchToken(
  stack: Stack,
  scope: string,
  credentials?: { username: string; password: string },
): Promise<HttpResult & { token?: string }> {
  if (!stack.tokenRealm) throw new Error('stack was started without tokenAuth');
  const u = new URL(stack.tokenRealm);
  u.searchParams.set('service', 'notary-server');
  u.searchParams.set('scope', scope);
  const headers: Record<string, string> = {};
  if (credentials) {
    headers['Authorization'] = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  }
  const r = await httpGet(stack, u.toString(), headers);
  if (r.status !== 200) return r;
  const body = JSON.parse(r.body.toString('utf8')) as { token?: unknown };
  return typeof body.token === 'string' ? { ...r, token: body.token } : r;
}

/** NOTARY_AUTH value for the token user (the CLI sends it as Basic auth to the realm). */
export function notaryAuthEnv(stack: Stack): Record<string, string> {
  const u = stack.tokenUser ?? TOKEN_USER;
  return { NOTARY_AUTH: Buffer.from(`${u.username}:${u.password}`).toString('base64') };
}
