/**
 * `trustgate check -f FILE... --policy FILE...`: the webhook's verdict on every image of some
 * manifests, before they are deployed. Each object becomes the AdmissionReview the API
 * server would send on CREATE and goes through the real admission handler, engine and
 * policy store in-process; what is printed per image is read from the verdicts the handler
 * asked for, and whether an object is admitted is the handler's own answer.
 */
import { randomUUID } from 'node:crypto';
import { createAdmissionHandler } from '../admission/handler.js';
import { describeFailure, isDenied } from '../admission/report.js';
import type { AdmissionResponse } from '../admission/types.js';
import { imagesOf, podSpecPath, WorkloadError, type ImageUse } from '../images/workloads.js';
import { PolicyDirSource } from '../policy/dir-source.js';
import { compileExemptions, exemptionProblems } from '../policy/exemption.js';
import { PolicyStore } from '../policy/store.js';
import { VerificationEngine } from '../verify/engine.js';
import type { ImageVerdict, ImageVerifier } from '../verify/types.js';
import { commandSpec, parseCommand } from './commands.js';
import { InputError, parseAt, parseDocuments, parseOutput, readInputPaths } from './inputs.js';
import { loadPolicyFiles } from './policy-files.js';
import { cliTimeoutMs, type Env } from './settings.js';
import { cliSourceFor, tufSource } from './trust-sources.js';
import { UsageError } from './usage.js';

export type ImageResult = 'admitted' | 'denied' | 'warn' | 'audit';

export interface CheckedImage {
  /** container, initContainer, ephemeralContainer or volume, and its name. */
  kind: ImageUse['kind'];
  name: string;
  image: string;
  result: ImageResult;
  /** The reference the webhook pins (Pods) or that the tag resolves to (workloads). */
  pinned?: string;
  /** Why it is denied, warned about or audited; why it is admitted unverified. */
  reason?: string;
}

export interface CheckedObject {
  file: string;
  /** Line of the document in the file. */
  line: number;
  kind: string;
  name: string;
  namespace: string;
  allowed: boolean;
  /** The webhook's denial message, as kubectl would print it after "denied the request:". */
  message?: string;
  warnings?: string[];
  images: CheckedImage[];
}

interface ManifestObject {
  file: string;
  line: number;
  value: Record<string, unknown>;
}

export async function checkCommand(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parseCommand(commandSpec('check')!, argv);
  if (positionals.length > 0) throw new UsageError(`check takes no IMAGE or FILE arguments (got ${JSON.stringify(positionals[0])}): give manifests with -f FILE`);
  const files = (values['file'] as string[] | undefined) ?? [];
  if (files.length === 0) throw new UsageError('check needs -f FILE (manifests; a directory, or - for stdin)');
  const policyFiles = (values['policy'] as string[] | undefined) ?? [];
  const policyDir = values['policy-dir'] as string | undefined;
  if ((policyFiles.length > 0) === (policyDir !== undefined)) throw new UsageError('check needs exactly one of --policy FILE... and --policy-dir DIR');
  const output = parseOutput(values['output']);
  const timeoutMs = cliTimeoutMs(values['timeout'] as string);
  const at = values['at'] === undefined ? undefined : parseAt(values['at'] as string);
  const exempt = (values['exempt'] as string[] | undefined) ?? [];
  for (const p of exempt) {
    const problems = exemptionProblems(p);
    if (problems.length > 0) throw new InputError(`--exempt ${JSON.stringify(p)}: ${problems.join('; ')} (e.g. --exempt registry.k8s.io/pause:3.9)`);
  }
  const namespaceFlag = values['namespace'] as string | undefined;
  const metadataDir = values['metadata-dir'] as string | undefined;

  const objects = readManifests(files);
  const store = policyDir !== undefined ? await loadPolicyDir(policyDir) : loadPolicyFiles(policyFiles, { requireNamespace: true }).store;
  const clock = at ? () => at : () => new Date();
  const engine = new VerificationEngine({
    policies: store,
    sourceFor: cliSourceFor({ ...(metadataDir !== undefined ? { metadataDir, perRepository: true } : {}) }, env),
    ...tufSource(metadataDir),
    clock,
    allowUnmatched: values['allow-unmatched'] === true,
    isExempt: compileExemptions(exempt),
  });
  const checked = await checkObjects(objects, { verifier: engine, timeoutMs, ...(namespaceFlag !== undefined ? { namespace: namespaceFlag } : {}) });
  const allowed = checked.every((o) => o.allowed);
  if (output === 'json') process.stdout.write(JSON.stringify({ allowed, objects: checked }, null, 2) + '\n');
  else {
    process.stdout.write(table(checked));
    const images = checked.flatMap((o) => o.images);
    const denied = checked.filter((o) => !o.allowed).length;
    process.stderr.write(
      `${images.length} image${images.length === 1 ? '' : 's'} in ${checked.length} object${checked.length === 1 ? '' : 's'}: ` +
        (denied === 0 ? 'every object would be admitted\n' : `${denied} object${denied === 1 ? '' : 's'} would be denied\n`),
    );
  }
  return allowed ? 0 : 1;
}

function readManifests(paths: string[]): ManifestObject[] {
  const out: ManifestObject[] = [];
  for (const file of readInputPaths(paths, 'manifest')) {
    for (const doc of parseDocuments(file)) {
      const add = (value: unknown, where: string) => {
        if (!isObject(value) || typeof value['kind'] !== 'string' || typeof value['apiVersion'] !== 'string') {
          throw new InputError(`${file.name}:${doc.line}: ${where}is not a Kubernetes object (needs apiVersion and kind)`);
        }
        out.push({ file: file.name, line: doc.line, value });
      };
      const v = doc.value;
      // `kind: List` and the typed lists kubectl prints (PodList, DeploymentList, ...).
      if (isObject(v) && typeof v['kind'] === 'string' && v['kind'].endsWith('List') && Array.isArray(v['items'])) {
        v['items'].forEach((item, i) => add(item, `items[${i}] `));
      } else add(v, '');
    }
  }
  return out;
}

/** The directory as `serve --policy-dir` reads it (same loader, same rules); rejected files are reported, as serve logs them. */
async function loadPolicyDir(dir: string): Promise<PolicyStore> {
  const store = new PolicyStore();
  const problems: string[] = [];
  const source = new PolicyDirSource(dir, store, (event) => {
    const e = event as { level?: string; file?: string; error?: string; problems?: unknown[]; event?: string };
    if (e.level !== 'error' && e.event !== 'policy-file-empty') return;
    const detail = e.problems?.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('; ') ?? e.error ?? e.event;
    problems.push(`${e.file ?? dir}: ${detail}`);
  }, { rescanMs: 0 });
  try {
    await source.start();
  } catch (e) {
    throw new InputError(`--policy-dir: ${(e as Error).message}`);
  } finally {
    source.stop();
  }
  // The webhook would run without these files' policies; a check must not quietly do the same.
  if (problems.length > 0) throw new InputError(`--policy-dir ${dir}: the webhook would ignore these files:\n  ${problems.join('\n  ')}`);
  if (store.all().length === 0) throw new InputError(`--policy-dir ${dir} holds no policy`);
  return store;
}

export interface CheckOptions {
  verifier: ImageVerifier;
  timeoutMs: number;
  /** Overrides each object's metadata.namespace. */
  namespace?: string;
}

/** Each object through the admission handler as a CREATE; exported for tests and other callers. */
export async function checkObjects(objects: ManifestObject[], opts: CheckOptions): Promise<CheckedObject[]> {
  const seen = new Map<string, ImageVerdict>();
  const recorder: ImageVerifier = {
    async verifyImage(image, namespace, signal) {
      const v = await opts.verifier.verifyImage(image, namespace, signal);
      seen.set(`${namespace ?? ''}\n${image}`, v);
      return v;
    },
  };
  const handler = createAdmissionHandler({ verifier: recorder, mutate: true, deadlineMs: opts.timeoutMs });
  const out: CheckedObject[] = [];
  for (const o of objects) {
    const [group, version] = splitApiVersion(o.value['apiVersion'] as string);
    const kind = o.value['kind'] as string;
    if (podSpecPath({ group, kind }) === undefined) continue;
    const metadata = isObject(o.value['metadata']) ? o.value['metadata'] : {};
    const namespace = opts.namespace ?? (typeof metadata['namespace'] === 'string' && metadata['namespace'] !== '' ? metadata['namespace'] : 'default');
    const name = typeof metadata['name'] === 'string' && metadata['name'] ? metadata['name'] : typeof metadata['generateName'] === 'string' ? `${metadata['generateName']}*` : '';
    const object = { ...o.value, metadata: { ...metadata, namespace } };
    const reviewed = await handler({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: randomUUID(),
        kind: { group, version, kind },
        resource: { group, version, resource: `${kind.toLowerCase()}s` },
        name,
        namespace,
        operation: 'CREATE',
        object,
        dryRun: true,
        userInfo: { username: 'trustgate-check' },
      },
    });
    const response = reviewed.response;
    let uses: ImageUse[] = [];
    try {
      uses = imagesOf({ group, kind }, object);
    } catch (e) {
      if (!(e instanceof WorkloadError)) throw e;
    }
    const images = uses.map((u) => imageResult(u, seen.get(`${namespace}\n${u.image}`), response));
    const checked: CheckedObject = { file: o.file, line: o.line, kind, name, namespace, allowed: response.allowed, images };
    if (!response.allowed && response.status?.message) checked.message = response.status.message;
    if (response.warnings?.length) checked.warnings = response.warnings;
    out.push(checked);
  }
  return out;
}

function imageResult(use: ImageUse, verdict: ImageVerdict | undefined, response: AdmissionResponse): CheckedImage {
  const base = { kind: use.kind, name: use.name, image: use.image };
  if (!verdict) {
    // No verdict: the handler refused before or without verifying (unreadable object, deadline).
    return { ...base, result: response.allowed ? 'admitted' : 'denied', reason: response.status?.message ?? 'not verified' };
  }
  if (isDenied({ image: use.image, uses: [use], verdict })) {
    const enforce = verdict.failures.filter((f) => f.mode === 'enforce');
    return { ...base, result: 'denied', reason: enforce.map(describeFailure).join('; ') || 'not allowed' };
  }
  const pinned = verdict.pinned ? { pinned: verdict.pinned } : {};
  const warn = verdict.failures.filter((f) => f.mode === 'warn');
  if (warn.length > 0) return { ...base, result: 'warn', ...pinned, reason: warn.map(describeFailure).join('; ') };
  const audit = verdict.failures.filter((f) => f.mode === 'audit');
  if (audit.length > 0) return { ...base, result: 'audit', ...pinned, reason: audit.map(describeFailure).join('; ') };
  if (!verdict.pinned) return { ...base, result: 'admitted', reason: verdict.passed.length === 0 ? 'not verified: exempt, or no policy matches and unmatched images are allowed' : 'verified' };
  return { ...base, result: 'admitted', ...pinned };
}

function table(objects: CheckedObject[]): string {
  const rows: string[][] = [];
  for (const o of objects) {
    const object = `${o.kind}/${o.name} (${o.namespace})`;
    if (o.images.length === 0) rows.push([object, '-', '-', o.allowed ? 'admitted' : 'DENIED', o.message ?? 'no images']);
    for (const i of o.images) {
      const detail = i.result === 'admitted' ? (i.pinned ?? i.reason ?? '') : i.pinned && i.reason ? `${i.reason} (pinned ${i.pinned})` : (i.reason ?? '');
      rows.push([object, `${i.kind} ${i.name}`, i.image, i.result === 'denied' ? 'DENIED' : i.result, detail]);
    }
  }
  if (rows.length === 0) return 'no Pods or workloads in the manifests\n';
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c < 4 ? cell.padEnd(widths[c]!) : cell)).join('  ').trimEnd()).join('\n') + '\n';
}

function splitApiVersion(apiVersion: string): [string, string] {
  const i = apiVersion.indexOf('/');
  return i < 0 ? ['', apiVersion] : [apiVersion.slice(0, i), apiVersion.slice(i + 1)];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
