/**
 * The TrustPolicy and ClusterTrustPolicy CRD manifests in crds/, found and read at run time:
 * they are the single source of truth for the policy schema (see model.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { isObject } from '../common/is-object.js';
import type { PolicyKind } from './model.js';
import { assertTwinsFor } from './rules.js';

export const GROUP = 'trustgate.dev';
export const KINDS: readonly PolicyKind[] = ['TrustPolicy', 'ClusterTrustPolicy'];

/** File names of the CRD manifests under crds/. */
export const CRD_FILES: Readonly<Record<PolicyKind, string>> = {
  TrustPolicy: 'trustgate.dev_trustpolicies.yaml',
  ClusterTrustPolicy: 'trustgate.dev_clustertrustpolicies.yaml',
};

export interface LoadedCrd {
  kind: PolicyKind;
  file: string;
  scope: 'Namespaced' | 'Cluster';
  /** Versions an API server serves, e.g. ['v1alpha1']. */
  versions: string[];
  /** openAPIV3Schema of the storage version. */
  schema: Record<string, unknown>;
  manifest: Record<string, unknown>;
}

let crdCache: Map<PolicyKind, LoadedCrd> | undefined;

/**
 * The directory holding crds/: the nearest ancestor of this module with a package.json.
 * Works from the sources (webhook/src/policy), the build (dist/webhook/src/policy) and an
 * installed package (node_modules/trustgate/dist/...), whose package.json is the first
 * one met on the way up (dist/ has none).
 */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find trustgate's package.json above ${from}: the CRDs are needed to validate policies`);
    dir = up;
  }
}

export function crdDirectory(): string {
  return join(packageRoot(), 'crds');
}

/** The CRDs, read once. Throws (never falls back to "anything goes") when they are missing or malformed. */
export function loadCrds(): Map<PolicyKind, LoadedCrd> {
  if (crdCache) return crdCache;
  const dir = crdDirectory();
  const out = new Map<PolicyKind, LoadedCrd>();
  for (const kind of KINDS) {
    const file = join(dir, CRD_FILES[kind]);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read the ${kind} CRD at ${file}: ${(e as Error).message}`);
    }
    const docs = parseAllDocuments(text);
    const doc = Array.isArray(docs) ? docs[0] : undefined;
    if (!doc || doc.errors.length > 0) throw new Error(`${file} is not valid YAML${doc?.errors[0] ? `: ${doc.errors[0].message}` : ''}`);
    const manifest = doc.toJS() as unknown;
    const spec = isObject(manifest) && isObject(manifest.spec) ? manifest.spec : undefined;
    const names = spec && isObject(spec.names) ? spec.names : undefined;
    const versions = spec && Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
    const storage = versions.find((v) => v.storage === true);
    const schema = storage && isObject(storage.schema) && isObject(storage.schema.openAPIV3Schema) ? storage.schema.openAPIV3Schema : undefined;
    if (!spec || spec.group !== GROUP || names?.kind !== kind || !schema || (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster')) {
      throw new Error(`${file} is not the ${kind} CRD of group ${GROUP} with a storage version schema`);
    }
    assertTwinsFor(schema);
    out.set(kind, {
      kind,
      file,
      scope: spec.scope,
      versions: versions.filter((v) => v.served === true).map((v) => String(v.name)),
      schema,
      manifest: manifest as Record<string, unknown>,
    });
  }
  crdCache = out;
  return out;
}
