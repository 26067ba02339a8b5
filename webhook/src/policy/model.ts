/**
 * TrustPolicy / ClusterTrustPolicy: parsing and validation into a typed model.
 * (Over 400 lines on purpose: strict parsing and the fail-closed reading of invalid objects share private validators.)
 *
 * The CRD manifests in crds/ are the single source of truth for the schema: crds.ts reads them
 * at run time, so a policy file is judged by the very schema an API server would apply,
 * and the CEL rules they carry run through their TypeScript twins (rules.ts). On top of
 * that come the checks no schema can express: root keys that parse, duplicate keys in
 * another spelling, image patterns that are well-formed globs and fully qualified.
 */
import { isScalar, parseAllDocuments } from 'yaml';
import { X509Certificate } from '../tuf/crypto.js';
import { pinFromPem, TufError } from '../tuf/index.js';
import { SpecTrustedSet } from '../tuf/tuf1/trusted-set.js';
import { splitPemCertificates } from '../tuf/keys.js';
import { imagePatternProblems } from './match.js';
import { GROUP, loadCrds, type LoadedCrd } from './crds.js';
import { celProblems, durationSeconds } from './rules.js';
import { isObject } from '../common/is-object.js';
import { applyDefaults, displayPath, validateSchema, type SchemaProblem } from './schema.js';

export type Mode = 'enforce' | 'warn' | 'audit';
export type PolicyKind = 'TrustPolicy' | 'ClusterTrustPolicy';

export type Protocol = 'notary' | 'tuf';

export interface TrustPolicySpec {
  images: string[];
  /** `protocol` is absent for notary (the default), so Notary policies read as before. */
  trustServer: { protocol?: Protocol; url: string; caBundle?: string; credentials?: { secretName: string } };
  /** `keys` is empty when a TUF 1.0 policy gives `trustedRoot` instead (the schema allows exactly one). */
  root: { keys: string[]; threshold: number; trustedRoot?: string };
  delegations?: { roles: string[]; threshold: number };
  freshness?: { maxMetadataAgeSeconds?: number };
  mode: Mode;
}

export interface TrustPolicy {
  kind: PolicyKind;
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  /** File path, or 'kubernetes'. */
  source: string;
  spec: TrustPolicySpec;
}

export type PolicyProblem = SchemaProblem;

export class PolicyValidationError extends Error {
  constructor(
    readonly problems: PolicyProblem[],
    readonly source?: string,
  ) {
    super(
      `${source ? `${source}: ` : ''}invalid policy: ${problems.length === 1 ? '' : `${problems.length} problems: `}` +
        problems.map((p) => `${p.path}: ${p.message}`).join('; '),
    );
    this.name = 'PolicyValidationError';
  }
}

export interface ParseOptions {
  /**
   * A TrustPolicy without metadata.namespace applies nowhere when loaded from files (there
   * is no `kubectl -n` to fill it in), so sources that serve policies require it. Off for
   * `trustgate verify --policy FILE`, where the namespace plays no part.
   */
  requireNamespace?: boolean;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Validates one object (a parsed YAML/JSON document or an API object); throws PolicyValidationError with every problem. */
export function parsePolicy(obj: unknown, source: string, options: ParseOptions = {}): TrustPolicy {
  const fail = (problems: PolicyProblem[]): never => {
    throw new PolicyValidationError(problems, source);
  };
  if (!isObject(obj)) fail([{ path: displayPath(''), message: `a policy must be a mapping (an object), not ${obj === null ? 'null' : Array.isArray(obj) ? 'a list' : typeof obj}` }]);
  const o = obj as Record<string, unknown>;
  const crds = loadCrds();

  const kind = o.kind;
  if (kind !== 'TrustPolicy' && kind !== 'ClusterTrustPolicy') {
    fail([{ path: 'kind', message: `must be TrustPolicy or ClusterTrustPolicy, not ${kind === undefined ? 'missing' : JSON.stringify(kind)}` }]);
  }
  const crd = crds.get(kind as PolicyKind)!;
  const problems: PolicyProblem[] = [];

  const expected = crd.versions.map((v) => `${GROUP}/${v}`);
  if (typeof o.apiVersion !== 'string' || !expected.includes(o.apiVersion)) {
    problems.push({ path: 'apiVersion', message: `must be ${expected.join(' or ')}, not ${o.apiVersion === undefined ? 'missing' : JSON.stringify(o.apiVersion)}` });
  }

  const meta = metadataOf(o.metadata, crd, options, problems);

  // Defaults first, then the schema, as an API server does.
  const defaulted = applyDefaults(crd.schema, o) as Record<string, unknown>;
  const schemaProblems = validateSchema(crd.schema, defaulted, { rejectUnknownFields: true });
  const failedPaths = new Set(schemaProblems.map((p) => p.path));
  // A rule is not run on a value, or an object whose own fields, already failed the schema:
  // CEL would not see such a value either, and a second message about it only confuses.
  const cel = celProblems(crd.schema, defaulted, '', (path) =>
    [...failedPaths].some((f) => f === path || (f.startsWith(`${path}.`) && !/[.[]/.test(f.slice(path.length + 1)))),
  );
  const semantic = isObject(defaulted.spec) ? specProblems(defaulted.spec, failedPaths) : [];
  // A specific explanation (with a hint) replaces the generic pattern/rule message for the same field.
  const explained = new Set(semantic.map((p) => p.path));
  problems.push(...[...schemaProblems, ...cel].filter((p) => !explained.has(p.path)), ...semantic);
  if (problems.length > 0 || !meta) fail(problems);

  return {
    kind: kind as PolicyKind,
    ...meta!,
    source,
    spec: toSpec(defaulted.spec as Record<string, unknown>),
  };
}

function metadataOf(
  metadata: unknown,
  crd: LoadedCrd,
  options: ParseOptions,
  problems: PolicyProblem[],
): Pick<TrustPolicy, 'name' | 'namespace' | 'uid' | 'generation' | 'resourceVersion'> | undefined {
  if (!isObject(metadata)) {
    problems.push({ path: 'metadata', message: metadata === undefined ? 'is required (with at least metadata.name)' : 'must be a mapping' });
    return undefined;
  }
  const before = problems.length;
  const { name, namespace, uid, generation, resourceVersion } = metadata;
  if (typeof name !== 'string' || name === '') problems.push({ path: 'metadata.name', message: 'is required' });
  else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    problems.push({ path: 'metadata.name', message: `${JSON.stringify(name)} must be a DNS subdomain: lowercase letters, digits, '-' and '.', at most 253 characters` });
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length > 63 || !DNS_LABEL.test(namespace))) {
    problems.push({ path: 'metadata.namespace', message: `${JSON.stringify(namespace)} must be a DNS label: lowercase letters, digits and '-', at most 63 characters` });
  }
  if (crd.scope === 'Cluster' && namespace !== undefined && namespace !== '') {
    problems.push({ path: 'metadata.namespace', message: `${crd.kind} is cluster-scoped and applies in every namespace: remove metadata.namespace (or use a TrustPolicy)` });
  }
  if (crd.scope === 'Namespaced' && options.requireNamespace && (namespace === undefined || namespace === '')) {
    problems.push({ path: 'metadata.namespace', message: 'a TrustPolicy applies in one namespace: set metadata.namespace (or use a ClusterTrustPolicy)' });
  }
  if (problems.length > before) return undefined;
  const out: Pick<TrustPolicy, 'name' | 'namespace' | 'uid' | 'generation' | 'resourceVersion'> = { name: name as string };
  if (crd.scope === 'Namespaced' && typeof namespace === 'string' && namespace !== '') out.namespace = namespace;
  if (typeof uid === 'string') out.uid = uid;
  if (typeof generation === 'number') out.generation = generation;
  if (typeof resourceVersion === 'string') out.resourceVersion = resourceVersion;
  return out;
}

/** Checks beyond schema and CEL. Fields that already failed the schema are not judged again. */
function specProblems(spec: Record<string, unknown>, failed: Set<string>): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const ok = (path: string) => !failed.has(path);

  if (Array.isArray(spec.images)) {
    spec.images.forEach((img, i) => {
      if (typeof img !== 'string') return;
      for (const message of imagePatternProblems(img)) problems.push({ path: `spec.images[${i}]`, message });
    });
  }

  const ts = isObject(spec.trustServer) ? spec.trustServer : undefined;
  if (ts && typeof ts.url === 'string') {
    const problem = urlProblem(ts.url);
    if (problem) problems.push({ path: 'spec.trustServer.url', message: problem });
  }
  if (ts && typeof ts.caBundle === 'string' && ts.caBundle !== '' && ok('spec.trustServer.caBundle')) {
    const certs = splitPemCertificates(ts.caBundle);
    if (certs.length === 0) problems.push({ path: 'spec.trustServer.caBundle', message: 'holds no PEM certificate' });
    certs.forEach((pem, i) => {
      try {
        new X509Certificate(pem);
      } catch (e) {
        problems.push({ path: 'spec.trustServer.caBundle', message: `certificate ${i + 1} cannot be parsed: ${(e as Error).message}` });
      }
    });
  }

  const root = isObject(spec.root) ? spec.root : undefined;
  const keys = root && Array.isArray(root.keys) ? (root.keys as unknown[]) : undefined;
  if (keys) {
    const seen: { der: Buffer; index: number }[] = [];
    keys.forEach((pem, i) => {
      const path = `spec.root.keys[${i}]`;
      if (typeof pem !== 'string' || !ok(path)) return;
      let der: Buffer;
      try {
        der = pinFromPem([pem], 1).keys[0]!;
      } catch (e) {
        problems.push({ path, message: `not a PEM public key or certificate: ${(e as Error).message.replace(/^.*pinned root key cannot be parsed: /, '')}` });
        return;
      }
      const dup = seen.find((s) => s.der.equals(der));
      // Textual duplicates are the schema's (list-type set); this catches one key pinned twice
      // in two spellings (public key and certificate), which would inflate the threshold.
      if (dup && keys[dup.index] !== pem) problems.push({ path, message: `pins the same key as spec.root.keys[${dup.index}]: each key counts once towards the threshold` });
      else seen.push({ der, index: i });
    });
  }
  if (ts && ts.protocol === 'tuf' && isObject(ts.credentials)) {
    problems.push({ path: 'spec.trustServer.credentials', message: 'protocol tuf reads static metadata files and sends no credentials: remove them (or use protocol notary)' });
  }
  if (root && typeof root.trustedRoot === 'string' && ok('spec.root.trustedRoot')) {
    const problem = trustedRootProblem(root.trustedRoot);
    if (problem) problems.push({ path: 'spec.root.trustedRoot', message: problem });
  }
  return problems;
}

/** A trusted root.json must be a TUF 1.0 root that its own keys sign (§5.2); it may be expired. */
function trustedRootProblem(text: string): string | undefined {
  try {
    new SpecTrustedSet(Buffer.from(text, 'utf8'), new Date(0));
    return undefined;
  } catch (e) {
    if (e instanceof TufError) return `not a usable TUF 1.0 root.json: ${e.message}`;
    throw e;
  }
}

function urlProblem(text: string): string | undefined {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return `${JSON.stringify(text)} is not a URL`;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must be an https:// (or http://) URL';
  if (u.username || u.password) return 'must not carry credentials: use trustServer.credentials.secretName';
  if (u.search || u.hash) return 'must not have a query or fragment';
  if (u.hostname === '') return 'needs a host';
  return undefined;
}

function toSpec(s: Record<string, unknown>): TrustPolicySpec {
  const ts = s.trustServer as Record<string, unknown>;
  const trustServer: TrustPolicySpec['trustServer'] = { url: (ts.url as string).replace(/\/+$/, '') };
  if (ts.protocol === 'tuf') trustServer.protocol = 'tuf';
  if (typeof ts.caBundle === 'string' && ts.caBundle !== '') trustServer.caBundle = ts.caBundle;
  if (isObject(ts.credentials)) trustServer.credentials = { secretName: ts.credentials.secretName as string };
  const root = s.root as Record<string, unknown>;
  const spec: TrustPolicySpec = {
    images: [...(s.images as string[])],
    trustServer,
    root: {
      keys: Array.isArray(root.keys) ? [...(root.keys as string[])] : [],
      threshold: root.threshold as number,
      ...(typeof root.trustedRoot === 'string' ? { trustedRoot: root.trustedRoot } : {}),
    },
    mode: s.mode as Mode,
  };
  if (isObject(s.delegations)) {
    const roles = [...(s.delegations.roles as string[])];
    // Default: every listed role must sign.
    spec.delegations = { roles, threshold: typeof s.delegations.threshold === 'number' ? s.delegations.threshold : roles.length };
  }
  if (isObject(s.freshness)) {
    spec.freshness = {};
    if (typeof s.freshness.maxMetadataAge === 'string') {
      const seconds = durationSeconds(s.freshness.maxMetadataAge);
      if (seconds !== undefined) spec.freshness.maxMetadataAgeSeconds = seconds;
    }
  }
  return spec;
}

/**
 * Every policy in a YAML (or JSON) text: several documents separated by `---`, and `kind:
 * List` documents, are read; empty documents are skipped. Throws PolicyValidationError with
 * the problems of every document (paths prefixed `documents[N].` when there are several).
 */
export function parsePolicyYaml(text: string, source: string, options: ParseOptions = {}): TrustPolicy[] {
  const { objects, problems } = policyDocuments(text);
  const policies: TrustPolicy[] = [];
  const ids = new Map<string, string>();
  for (const { obj, prefix } of objects) {
    try {
      const p = parsePolicy(obj, source, options);
      const id = policyId(p);
      const where = prefix || 'the document';
      if (ids.has(id)) problems.push({ path: prefix || displayPath(''), message: `${id} is defined twice (also in ${ids.get(id)}): which one applies would be unclear` });
      else ids.set(id, where);
      policies.push(p);
    } catch (e) {
      if (!(e instanceof PolicyValidationError)) throw e;
      for (const p of e.problems) problems.push({ path: prefix ? (p.path === displayPath('') ? prefix : `${prefix}.${p.path}`) : p.path, message: p.message });
    }
  }
  if (problems.length > 0) throw new PolicyValidationError(problems, source);
  return policies;
}

/** The objects of a YAML text (documents, `kind: List` items), each with its path prefix, and the YAML problems. */
function policyDocuments(text: string): { objects: { obj: unknown; prefix: string }[]; problems: PolicyProblem[] } {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  const objects: { obj: unknown; prefix: string }[] = [];
  const problems: PolicyProblem[] = [];
  // Empty documents (`---` twice, comments only) read as null; kubectl skips them too.
  const nonEmpty = list.filter((d) => d.errors.length > 0 || !(d.contents === null || (isScalar(d.contents) && d.contents.value === null)));
  const multi = nonEmpty.length > 1;
  nonEmpty.forEach((doc, i) => {
    const prefix = multi ? `documents[${i}]` : '';
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push({ path: prefix || displayPath(''), message: `YAML: ${e.message.split('\n')[0]}` });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 50 });
    } catch (e) {
      problems.push({ path: prefix || displayPath(''), message: `YAML: ${(e as Error).message}` });
      return;
    }
    if (isObject(value) && value.kind === 'List' && Array.isArray(value.items)) {
      value.items.forEach((item, j) => objects.push({ obj: item, prefix: `${prefix ? `${prefix}.` : ''}items[${j}]` }));
    } else {
      objects.push({ obj: value, prefix });
    }
  });
  return { objects, problems };
}

/**
 * A policy object that failed validation, kept in the store so that what it would cover
 * is denied instead of silently falling to a broader valid policy (or to "no policy"):
 * an admin's typo must never lower enforcement.
 */
export interface InvalidPolicy {
  kind: PolicyKind;
  name: string;
  /** A TrustPolicy's namespace; undefined for a TrustPolicy whose namespace is unknown, which then counts in every namespace. */
  namespace?: string;
  source: string;
  problems: PolicyProblem[];
  /** Its spec.images when every pattern is usable; undefined when they are not: then its whole scope is covered. */
  images?: string[];
  /** Its spec.mode when readable and valid (absent means enforce, as the CRD defaults it); enforce otherwise. */
  mode: Mode;
}

export function isInvalidPolicy(p: TrustPolicy | InvalidPolicy): p is InvalidPolicy {
  return 'problems' in p;
}

/** The one formatting of problems that `policy check`, the policy webhook and denial messages share. */
export function problemLines(problems: PolicyProblem[]): string[] {
  return problems.map((p) => `${p.path}: ${p.message}`);
}

/**
 * What a policy source serves: metadata.namespace is required of a TrustPolicy (an API
 * server always sets it; a file without it would apply nowhere). `trustgate policy check`
 * and the policy webhook judge with the same options, so they agree.
 */
export const SERVED_POLICY: Readonly<ParseOptions> = Object.freeze({ requireNamespace: true });

/**
 * The problems of one policy object as `trustgate policy check` reports them, for the
 * policy webhook. Like the CLI (parsePolicyYaml) and the sources (readPolicy), it is
 * parsePolicy with SERVED_POLICY: one validation everywhere. Empty when valid.
 */
export function policyObjectProblems(obj: unknown, source: string): PolicyProblem[] {
  try {
    parsePolicy(obj, source, SERVED_POLICY);
    return [];
  } catch (e) {
    if (e instanceof PolicyValidationError) return e.problems;
    throw e;
  }
}

/**
 * A policy object as a source holds it: the valid policy, or what is known of an invalid
 * one so that its scope can be denied. Never throws on bad input. `kind` is what the
 * source knows the object to be (the list it came from); without it an unreadable kind
 * counts as cluster-wide.
 */
export function readPolicy(obj: unknown, source: string, kind?: PolicyKind): TrustPolicy | InvalidPolicy {
  let problems: PolicyProblem[];
  try {
    const policy = parsePolicy(obj, source, SERVED_POLICY);
    if (kind === undefined || policy.kind === kind) return policy;
    problems = [{ path: 'kind', message: `expected ${kind}, got ${policy.kind}` }];
  } catch (e) {
    problems = e instanceof PolicyValidationError ? e.problems : [{ path: displayPath(''), message: (e as Error).message }];
  }
  return invalidPolicy(obj, source, problems, kind);
}

/**
 * Every policy of a file as a source holds them (see readPolicy): valid ones apply, invalid
 * ones deny what they cover. A policy defined twice covers its whole scope (which of the
 * two was meant is unknown); a text that is not readable YAML, whose policies cannot even
 * be told apart, covers the whole cluster. Never throws on bad input.
 */
export function readPolicyYaml(text: string, source: string): Array<TrustPolicy | InvalidPolicy> {
  const { objects, problems } = policyDocuments(text);
  if (problems.length > 0) return [{ kind: 'ClusterTrustPolicy', name: `(file ${source})`, source, problems, mode: 'enforce' }];
  const held = objects.map(({ obj }) => readPolicy(obj, source));
  const byId = new Map<string, Array<TrustPolicy | InvalidPolicy>>();
  for (const p of held) byId.set(policyId(p), [...(byId.get(policyId(p)) ?? []), p]);
  return [...byId.entries()].map(([id, same]) => {
    if (same.length === 1) return same[0]!;
    const { kind, name, namespace } = same[0]!;
    const twice: InvalidPolicy = { kind, name, source, mode: 'enforce', problems: [{ path: 'metadata.name', message: `${id} is defined ${same.length} times: which one applies would be unclear` }] };
    if (namespace !== undefined) twice.namespace = namespace;
    return twice;
  });
}

/** What can be read of an invalid policy object: its identity, scope, images and mode, each failing closed. */
export function invalidPolicy(obj: unknown, source: string, problems: PolicyProblem[], kind?: PolicyKind): InvalidPolicy {
  const o = isObject(obj) ? obj : {};
  const meta = isObject(o.metadata) ? o.metadata : {};
  const spec = isObject(o.spec) ? o.spec : {};
  const k: PolicyKind = kind ?? (o.kind === 'TrustPolicy' || o.kind === 'ClusterTrustPolicy' ? o.kind : 'ClusterTrustPolicy');
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : '(unnamed)';
  const out: InvalidPolicy = { kind: k, name, source, problems, mode: 'enforce' };
  if (k === 'TrustPolicy' && typeof meta.namespace === 'string' && meta.namespace !== '') out.namespace = meta.namespace;
  const images = spec.images;
  if (Array.isArray(images) && images.length > 0 && images.every((i) => typeof i === 'string' && imagePatternProblems(i).length === 0)) {
    out.images = [...(images as string[])];
  }
  if (spec.mode === 'warn' || spec.mode === 'audit') out.mode = spec.mode;
  return out;
}

/** 'ClusterTrustPolicy/name' or 'TrustPolicy/namespace/name'. */
export function policyId(p: Pick<TrustPolicy | InvalidPolicy, 'kind' | 'name' | 'namespace'>): string {
  return p.kind === 'ClusterTrustPolicy' ? `ClusterTrustPolicy/${p.name}` : `TrustPolicy/${p.namespace ?? ''}/${p.name}`;
}
