// The publishing history trustgate has to cope with, played with the real notary CLI
// against one GUN on the local stack: plain targets, x509 and plain-key delegations,
// a nested delegation, server-managed snapshot, key rotations of every role, a removal.
// Each stage is a function; callers check the served trust data between stages.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  makeEcdsaCert,
  makeEcdsaPublicKey,
  makeRsaCert,
  notaryOk,
  pushImage,
  rootPublicKeyPem,
  type KeyMaterial,
  type SignedTarget,
  type Stack,
} from './stack.js';

export type StageName =
  | 'init'
  | 'targets'
  | 'delegation-releases'
  | 'delegation-qa'
  | 'delegation-nightly'
  | 'snapshot-to-server'
  | 'rotate-targets'
  | 'rotate-timestamp'
  | 'rotate-root'
  | 'remove-target';

export interface ScenarioTarget extends SignedTarget {
  /** Target name in TUF (what `notary lookup` takes). */
  name: string;
  /** Role the target was signed into. */
  role: string;
  /** Set for image targets: where the signed manifest lives in the stack registry. */
  image?: { repo: string; reference: string };
}

export interface ScenarioState {
  stack: Stack;
  /** <registry host:port>/<repo>, e.g. 127.0.0.1:5000/demo/app */
  gun: string;
  /** Repository path inside the registry, e.g. demo/app */
  repo: string;
  /** Scratch directory (delegation keys, file targets); inside stack.dir. */
  workDir: string;
  /** Every target ever signed, by name (a removed one stays here; see Stage.absent). */
  targets: Map<string, ScenarioTarget>;
  /** Root certificate PEM served right after `init`: pin it to test root rotation. */
  originalRootPem?: string;
  delegationKeys: { releases?: KeyMaterial; qa?: KeyMaterial; nightly?: KeyMaterial };
}

export interface Stage {
  name: StageName;
  description: string;
  run(state: ScenarioState): Promise<void>;
  /** Target names that must resolve to their signed digest after this stage. */
  present: readonly string[];
  /** Target names that must not resolve after this stage. */
  absent: readonly string[];
}

export const FILE_TARGET = 'hello-file';
const ALL_TARGETS = [FILE_TARGET, 'v1.0', 'v2.0', 'qa/rc1', 'nightly/build-1'] as const;

function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function signImage(
  state: ScenarioState,
  name: string,
  registryTag: string,
  content: string,
  role: string,
  kind: 'docker' | 'oci' = 'docker',
): Promise<void> {
  const pushed = await pushImage(state.stack, state.repo, registryTag, content, kind);
  const args = ['addhash', state.gun, name, String(pushed.size), '--sha256', pushed.digest.slice('sha256:'.length)];
  if (role !== 'targets') args.push('--roles', role);
  await notaryOk(state.stack, args);
  state.targets.set(name, { name, role, ...pushed, image: { repo: state.repo, reference: registryTag } });
}

async function publish(state: ScenarioState): Promise<void> {
  await notaryOk(state.stack, ['publish', state.gun]);
}

async function importKey(state: ScenarioState, key: KeyMaterial, role: string): Promise<void> {
  await notaryOk(state.stack, ['key', 'import', key.keyFile, '--role', role]);
}

function stage(
  name: StageName,
  description: string,
  present: readonly string[],
  run: (s: ScenarioState) => Promise<void>,
): Stage {
  return { name, description, run, present, absent: ALL_TARGETS.filter((t) => !present.includes(t)) };
}

const AFTER_TARGETS = [FILE_TARGET, 'v1.0'];
const AFTER_RELEASES = [...AFTER_TARGETS, 'v2.0'];
const AFTER_QA = [...AFTER_RELEASES, 'qa/rc1'];
const ALL = [...AFTER_QA, 'nightly/build-1'];

/** The stages in order. `present`/`absent` list the target names to check after each. */
export const STAGES: readonly Stage[] = [
  stage('init', 'notary init -p: root/targets/snapshot keys on the client, timestamp key on the server', [], async (s) => {
    await notaryOk(s.stack, ['init', '-p', s.gun]);
    s.originalRootPem = await rootPublicKeyPem(s.stack, s.gun);
  }),
  stage('targets', `a file target (${FILE_TARGET}) and an image target v1.0 in targets`, AFTER_TARGETS, async (s) => {
    const file = join(s.workDir, 'hello.txt');
    const text = `hello from ${s.gun}\n`;
    writeFileSync(file, text);
    await notaryOk(s.stack, ['add', s.gun, FILE_TARGET, file]);
    s.targets.set(FILE_TARGET, {
      name: FILE_TARGET,
      role: 'targets',
      digest: `sha256:${sha256Hex(text)}`,
      size: Buffer.byteLength(text),
    });
    await signImage(s, 'v1.0', 'v1.0', 'app v1.0', 'targets');
    await publish(s);
  }),
  stage('delegation-releases', 'targets/releases from an ECDSA certificate (all paths), v2.0 signed into it', AFTER_RELEASES, async (s) => {
    const key = makeEcdsaCert(s.workDir, 'releases');
    s.delegationKeys.releases = key;
    await notaryOk(s.stack, ['delegation', 'add', s.gun, 'targets/releases', key.publicFile, '--all-paths']);
    await importKey(s, key, 'targets/releases');
    await publish(s);
    await signImage(s, 'v2.0', 'v2.0', 'app v2.0', 'targets/releases');
    await publish(s);
  }),
  stage('delegation-qa', 'targets/qa from an RSA-2048 certificate, paths qa/, qa/rc1 (OCI manifest) signed into it', AFTER_QA, async (s) => {
    const key = makeRsaCert(s.workDir, 'qa');
    s.delegationKeys.qa = key;
    await notaryOk(s.stack, ['delegation', 'add', s.gun, 'targets/qa', key.publicFile, '--paths', 'qa/']);
    await importKey(s, key, 'targets/qa');
    await publish(s);
    await signImage(s, 'qa/rc1', 'qa-rc1', 'app qa rc1', 'targets/qa', 'oci');
    await publish(s);
  }),
  stage('delegation-nightly', 'nested targets/releases/nightly from a plain PUBLIC KEY PEM, paths nightly/, one target', ALL, async (s) => {
    const key = makeEcdsaPublicKey(s.workDir, 'nightly');
    s.delegationKeys.nightly = key;
    await notaryOk(s.stack, [
      'delegation', 'add', s.gun, 'targets/releases/nightly', key.publicFile, '--paths', 'nightly/', '-p',
    ]);
    await importKey(s, key, 'targets/releases/nightly');
    await signImage(s, 'nightly/build-1', 'nightly-build-1', 'app nightly build 1', 'targets/releases/nightly');
    await publish(s);
  }),
  stage('snapshot-to-server', 'snapshot key handed to the server (key rotate snapshot -r)', ALL, async (s) => {
    await notaryOk(s.stack, ['key', 'rotate', s.gun, 'snapshot', '-r']);
  }),
  stage('rotate-targets', 'new targets key (key rotate targets)', ALL, async (s) => {
    await notaryOk(s.stack, ['key', 'rotate', s.gun, 'targets']);
  }),
  stage('rotate-timestamp', 'new server-side timestamp key (key rotate timestamp -r)', ALL, async (s) => {
    await notaryOk(s.stack, ['key', 'rotate', s.gun, 'timestamp', '-r']);
  }),
  stage('rotate-root', 'new root key (echo yes | key rotate root); the new root is signed by old and new key', ALL, async (s) => {
    const r = await notaryOk(s.stack, ['key', 'rotate', s.gun, 'root'], { input: 'yes\n' });
    // The CLI exits 0 even when it did not get its "yes".
    if (/Aborting/i.test(r.stdout + r.stderr)) throw new Error(`root rotation aborted: ${r.stdout}${r.stderr}`);
  }),
  stage('remove-target', `${FILE_TARGET} removed from targets`, ALL.filter((t) => t !== FILE_TARGET), async (s) => {
    await notaryOk(s.stack, ['remove', s.gun, FILE_TARGET, '-p']);
  }),
];

export interface ScenarioOptions {
  /** Repository inside the registry (default demo/app). */
  repo?: string;
}

/** Fresh state for running STAGES against `stack`. */
export function createScenario(stack: Stack, opts: ScenarioOptions = {}): ScenarioState {
  const repo = opts.repo ?? 'demo/app';
  return {
    stack,
    repo,
    gun: `${stack.registryHost}/${repo}`,
    workDir: mkdtempSync(join(stack.dir, 'scenario-')),
    targets: new Map(),
    delegationKeys: {},
  };
}

/** What each present target must resolve to after `stage` (digest and size as signed). */
export function expectedTargets(state: ScenarioState, stage: Stage): ScenarioTarget[] {
  return stage.present.map((name) => {
    const t = state.targets.get(name);
    if (!t) throw new Error(`stage ${stage.name} expects ${name}, which no stage so far has signed`);
    return t;
  });
}

/** Runs every stage in order, calling afterStage (if given) after each. */
export async function runScenario(
  stack: Stack,
  opts: ScenarioOptions & { afterStage?: (stage: Stage, state: ScenarioState) => void | Promise<void> } = {},
): Promise<ScenarioState> {
  const state = createScenario(stack, opts);
  for (const st of STAGES) {
    await st.run(state);
    if (opts.afterStage) await opts.afterStage(st, state);
  }
  return state;
}
