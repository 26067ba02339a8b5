// TUF 1.0 rows of `npm run bench` (issue 12, part 7): the repository kinds of the Notary rows,
// with the same targets. Repositories are built with @tufjs/models (test/support/tuf1-repo.ts)
// and served as static files by a real nginx over TLS on 127.0.0.1.
//
// - cold admission, 3 delegations: the first Pod for a repository, answered by the real
//   `trustgate serve` process (as the Notary row), against the reference client doing the same
//   cold lookup of the same repository in the same run: tuf-js's Updater with only the trusted
//   root in its metadata directory (in a warm process of its own, its connection to nginx kept
//   open: a stricter baseline than a CLI started per lookup, as `notary lookup` is);
// - 10,000 targets in one delegated role: cold verify and warm lookup through the engine in a
//   child process (tuf1-child.ts), as the Notary 10,000-tag rows.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { canonicalize } from '@tufjs/canonical-json';
import { TargetFile } from '@tufjs/models';
import { stringify } from 'yaml';
import { issueServerCert, makeCa, type CertAuthority } from '../fault/certs.js';
import { startStaticServer } from '../support/static-server.js';
import { sha256hex, TufRepo } from '../support/tuf1-repo.js';
import { bigTagName, DIST, fmt, median, runNodeJson, singleImageReview, startNode } from './common.js';
import type { BigTufConfig, BigTufResult, LookupJob } from './tuf1-child.js';
import { RUNTIME_NODE_FLAGS } from '../support/runtime.js';

const REG = 'registry.example.com';
const TAG = 'v1';
const BIG_TARGETS = 10_000;

export interface TufColdResult {
  admissionMs: number[];
  lookupMs: number[];
  ratio: number;
}

export interface Tuf1Results {
  cold?: TufColdResult;
  big?: BigTufResult;
}

interface Built {
  url: string;
  trustedRoot: string;
  /** Image -> signed digest. */
  digests: Map<string, string>;
}

/** Writes a published repository under `dir/name` (nginx serves `dir`). */
function write(dir: string, name: string, files: Map<string, Buffer>): void {
  mkdirSync(join(dir, name));
  for (const [file, bytes] of files) writeFileSync(join(dir, name, file), bytes);
}

/**
 * The Notary cold row's repository in TUF 1.0: targets delegates to qa (RSA), ops and
 * releases (ECDSA), each trusted for the repository's paths; the image is signed in releases,
 * last in the search order, so the first lookup fetches and verifies all three (§5.6.7).
 */
function buildDelegated(dir: string, name: string, url: string): Built {
  const repo = new TufRepo({ kinds: { root: 'ecdsa-p256', timestamp: 'ecdsa-p256', snapshot: 'ecdsa-p256', targets: 'ecdsa-p256' } });
  const image = `${REG}/bench/${name}`;
  const paths = [`${REG}/bench/*`];
  repo.delegate('qa', { paths, kind: 'rsa' });
  repo.delegate('ops', { paths, kind: 'ecdsa-p256' });
  repo.delegate('releases', { paths, kind: 'ecdsa-p256' });
  repo.addTarget('qa', `${image}:qa`, `qa ${name}`);
  repo.addTarget('ops', `${image}:ops`, `ops ${name}`);
  const t = repo.addTarget('releases', `${image}:${TAG}`, `bench ${name}`);
  write(dir, name, repo.publish());
  return { url: `${url}${name}/`, trustedRoot: repo.roots.get(1)!.toString('utf8'), digests: new Map([[`${image}:${TAG}`, `sha256:${t.hashes['sha256']}`]]) };
}

/**
 * 10,000 targets in releases, a third with sha512 too (as the Notary row's `notary add`).
 * The repository is made with @tufjs/models, but the releases file is signed here: the
 * models' Targets.toJSON copies every entry once per entry (quadratic: 55 s for 10,000), so
 * its signed part is built as the models write it (TargetFile.toJSON per entry) and signed
 * over the same canonical JSON (@tufjs/canonical-json) with the role's key.
 */
function buildBig(dir: string, url: string): Built & { targetsBytes: number } {
  const repo = new TufRepo({ kinds: { root: 'ecdsa-p256', timestamp: 'ecdsa-p256', snapshot: 'ecdsa-p256', targets: 'ecdsa-p256' } });
  const [key] = repo.delegate('releases', { paths: [`${REG}/bench/*`], kind: 'ecdsa-p256' });
  const files = repo.publish();
  const signed = repo.targets.get('releases')!.signed.toJSON() as { version: number; targets: Record<string, unknown> };
  const digests = new Map<string, string>();
  for (let i = 0; i < BIG_TARGETS; i++) {
    const path = `${REG}/bench/tuf-big:${bigTagName(i)}`;
    const content = Buffer.from(`big repository manifest ${i}`);
    const sha256 = sha256hex(content);
    const hashes: Record<string, string> = { sha256 };
    if (i % 3 === 0) hashes['sha512'] = createHash('sha512').update(content).digest('hex');
    signed.targets[path] = new TargetFile({ path, length: content.length, hashes }).toJSON();
    digests.set(path, `sha256:${sha256}`);
  }
  const signature = key!.sign(Buffer.from(canonicalize(signed))).toJSON();
  const releases = Buffer.from(JSON.stringify({ signatures: [signature], signed }));
  // The snapshot lists releases by version only (python-tuf's default), so the re-signed file takes the place of the empty one.
  files.set(`${signed.version}.releases.json`, releases);
  write(dir, 'big', files);
  return { url: `${url}big/`, trustedRoot: repo.roots.get(1)!.toString('utf8'), digests, targetsBytes: releases.length };
}


function policyFile(name: string, images: string, built: Built, caPem: string): string {
  return stringify({
    apiVersion: 'trustgate.dev/v1alpha1',
    kind: 'ClusterTrustPolicy',
    metadata: { name },
    spec: { images: [images], trustServer: { protocol: 'tuf', url: built.url, caBundle: caPem }, root: { trustedRoot: built.trustedRoot }, mode: 'enforce' },
  });
}

/** One AdmissionReview to the webhook: its milliseconds when the image is admitted pinned to `digest`; otherwise an error saying why not. */
function admit(agent: Agent, port: number, image: string, digest: string, uid: string): Promise<number> {
  const body = singleImageReview(image, uid);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const ms = performance.now() - t0;
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
        const r = (JSON.parse(text) as { response: { allowed: boolean; patch?: string; status?: { message?: string } } }).response;
        const patch = r.patch ? Buffer.from(r.patch, 'base64').toString('utf8') : '';
        if (!r.allowed || !patch.includes(`${image}@${digest}`)) return reject(new Error(`${image} was not admitted pinned to ${digest}: ${r.status?.message ?? patch.slice(0, 300)}`));
        resolve(ms);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The tuf-js process: one lookup at a time over stdin/stdout. */
class ReferenceClient {
  private readonly child: ChildProcess;
  private readonly lines: Interface;
  private readonly pending: ((line: string) => void)[] = [];

  constructor(caFile: string) {
    this.child = spawn(process.execPath, [`${DIST}test/bench/tuf1-child.js`, 'reference'], { env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile }, stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (l) => this.pending.shift()?.(l));
  }

  lookup(job: LookupJob): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('tuf-js lookup did not answer within 30 s')), 30_000);
      this.pending.push((line) => {
        clearTimeout(timer);
        const r = JSON.parse(line) as { ms?: number; error?: string };
        if (r.ms === undefined) reject(new Error(`tuf-js lookup of ${job.path}: ${r.error}`));
        else resolve(r.ms);
      });
      this.child.stdin!.write(JSON.stringify(job) + '\n');
    });
  }

  stop(): void {
    this.lines.close();
    if (this.child.exitCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }
}

const job = (b: Built, image: string): LookupJob => ({ url: b.url, trustedRoot: b.trustedRoot, path: image, sha256: b.digests.get(image)!.slice('sha256:'.length) });

export interface Tuf1Options {
  quick: boolean;
  cold: boolean;
  big: boolean;
  coldRepos: number;
  /** CPU profiles of the webhook into this directory (--profile). */
  profile?: string;
  log(line: string): void;
}

export async function tuf1Figures(opts: Tuf1Options): Promise<Tuf1Results> {
  const results: Tuf1Results = {};
  const work = mkdtempSync(join(tmpdir(), 'tg-bench-tuf1-'));
  const repos = join(work, 'repos');
  mkdirSync(repos);
  const ca: CertAuthority = makeCa(work, 'trustgate bench CA');
  const server = await startStaticServer(repos, { ca });
  try {
    const t0 = performance.now();
    const cold = opts.cold ? Array.from({ length: opts.coldRepos + 1 }, (_, i) => buildDelegated(repos, i === 0 ? 'tuf-prime' : `tuf-cold-${i - 1}`, server.url)) : [];
    const big = opts.big ? buildBig(repos, server.url) : undefined;
    opts.log(`TUF 1.0: repositories built with @tufjs/models and served by nginx in ${fmt((performance.now() - t0) / 1000)} s`);
    if (opts.cold) results.cold = await coldFigure(opts, work, ca, cold);
    if (big) {
      opts.log(`TUF 1.0: ${BIG_TARGETS} targets (${fmt(big.targetsBytes / 1e6, 2)} MB), cold verify and warm lookup (child process)`);
      const cfg: BigTufConfig = {
        url: big.url,
        caPem: ca.certPem,
        trustedRoot: big.trustedRoot,
        expected: Object.fromEntries(big.digests),
        targetsBytes: big.targetsBytes,
        coldRuns: 7,
        lookups: opts.quick ? 5000 : 20_000,
      };
      const file = join(work, 'big.json');
      writeFileSync(file, JSON.stringify(cfg));
      const prof = opts.profile ? ['--cpu-prof', '--cpu-prof-dir', join(opts.profile, 'tuf-big')] : [];
      results.big = await runNodeJson<BigTufResult>([...prof, `${DIST}test/bench/tuf1-child.js`, 'big', file]);
    }
    return results;
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** First Pod for a TUF 1.0 repository with 3 delegations vs a cold tuf-js lookup of the same repository. */
async function coldFigure(opts: Tuf1Options, work: string, ca: CertAuthority, built: Built[]): Promise<TufColdResult> {
  const policies = join(work, 'policies');
  mkdirSync(policies);
  built.forEach((b, i) => {
    const image = [...b.digests.keys()][0]!.slice(0, -TAG.length - 1);
    writeFileSync(join(policies, `tuf-${i}.yaml`), policyFile(`tuf-${i}`, image, b, ca.certPem));
  });
  const leaf = issueServerCert(ca, work, '127.0.0.1', ['IP:127.0.0.1']);
  writeFileSync(join(work, 'webhook.crt'), leaf.cert);
  writeFileSync(join(work, 'webhook.key'), leaf.key, { mode: 0o600 });
  const errFd = openSync(join(work, 'webhook-tuf.log'), 'a');
  const prof = opts.profile ? ['--cpu-prof', '--cpu-prof-dir', join(opts.profile, 'tuf')] : [];
  const webhook = await startNode(
    [...RUNTIME_NODE_FLAGS, ...prof, `${DIST}webhook/src/cli/main.js`, 'serve', '--policy-dir', policies, '--port', '0', '--host', '127.0.0.1', '--tls-cert', join(work, 'webhook.crt'), '--tls-key', join(work, 'webhook.key')],
    /serving on https:\/\/127\.0\.0\.1:(\d+)/,
    { stderrFd: errFd },
  ).finally(() => closeSync(errFd));
  const reference = new ReferenceClient(ca.certFile);
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem });
  try {
    const port = Number(webhook.match[1]);
    // Both sides have served before: the webhook a first Pod, tuf-js a first lookup.
    const [prime, ...repos] = built;
    const [primeImage, primeDigest] = [...prime!.digests][0]!;
    await admit(agent, port, primeImage, primeDigest, 'prime');
    await reference.lookup(job(prime!, primeImage));
    opts.log('TUF 1.0: cold admissions vs tuf-js lookups');
    const admissionMs: number[] = [];
    const lookupMs: number[] = [];
    for (const [i, b] of repos.entries()) {
      const [image, digest] = [...b.digests][0]!;
      const lookup = async () => lookupMs.push(await reference.lookup(job(b, image)));
      const hook = async () => admissionMs.push(await admit(agent, port, image, digest, `tuf-cold-${i}`));
      // Alternate which goes first, so neither always meets a cooler machine.
      if (i % 2 === 0) {
        await lookup();
        await hook();
      } else {
        await hook();
        await lookup();
      }
    }
    return { admissionMs, lookupMs, ratio: median(admissionMs) / median(lookupMs) };
  } finally {
    agent.destroy();
    reference.stop();
    await webhook.stop();
  }
}

/** Rows of the bench table: [figure, measured, baseline / context, target, ok]. */
export function tuf1Rows(r: Tuf1Results): [string, string, string, string, boolean][] {
  const rows: [string, string, string, string, boolean][] = [];
  if (r.cold) {
    rows.push([
      `TUF 1.0 cold admission, 3 delegations (median of ${r.cold.admissionMs.length})`,
      `${fmt(median(r.cold.admissionMs))} ms = ${fmt(r.cold.ratio, 2)} x baseline`,
      `tuf-js lookup, empty metadata dir: ${fmt(median(r.cold.lookupMs))} ms`,
      '<= 0.5',
      r.cold.ratio <= 0.5,
    ]);
  }
  if (r.big) {
    const b = r.big;
    rows.push(
      [`TUF 1.0 ${b.targets} targets (${fmt(b.targetsBytes / 1e6, 2)} MB), cold verify`, `${fmt(b.coldMedianMs)} ms (median of ${b.coldRunsMs.length})`, '@tufjs/models, nginx', '<= 150 ms', b.coldMedianMs <= 150],
      [
        `TUF 1.0 ${b.targets} targets, warm lookup`,
        `${fmt(b.warmLookupUs)} us (max ${fmt(b.warmMaxUs / 1000, 1)} ms)`,
        `${b.warmLookups} lookups, ${fmt(100 * b.warmSyncShare, 0)} % answered synchronously`,
        '<= 50 us',
        b.warmLookupUs <= 50,
      ],
    );
  }
  return rows;
}

/** Keys of the bench's JSON line (added, never renamed: a contract); null when not measured. */
export function tuf1Json(r: Tuf1Results): Record<string, number | null> {
  const round = (v: number | undefined, digits: number) => (v === undefined ? null : Math.round(v * 10 ** digits) / 10 ** digits);
  return {
    tuf_cold_3_delegations_ratio: round(r.cold?.ratio, 3),
    tuf_10k_cold_ms: round(r.big?.coldMedianMs, 1),
    tuf_10k_warm_lookup_us: round(r.big?.warmLookupUs, 1),
  };
}
