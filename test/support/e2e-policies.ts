// Policies for end-to-end tests, written the way people write them (YAML files for
// --policy-dir, or the objects kubectl would create), so they pass through the same CRD
// validation as a real policy.
import { stringify } from 'yaml';

export interface E2ePolicy {
  kind: 'TrustPolicy' | 'ClusterTrustPolicy';
  name: string;
  /** TrustPolicy only. */
  namespace?: string;
  images: string[];
  server: string;
  caPem?: string;
  /** Pinned root: PEM certificates or public keys. */
  rootPems: string[];
  delegations?: string[];
  mode?: 'enforce' | 'warn' | 'audit';
}

/** The spec as the CRD defines it. */
export function policySpec(p: E2ePolicy): Record<string, unknown> {
  return {
    images: p.images,
    trustServer: { url: p.server, ...(p.caPem !== undefined ? { caBundle: p.caPem } : {}) },
    root: { keys: p.rootPems, threshold: 1 },
    ...(p.delegations ? { delegations: { roles: p.delegations } } : {}),
    mode: p.mode ?? 'enforce',
  };
}

export function policyYaml(p: E2ePolicy): string {
  return stringify({
    apiVersion: 'trustgate.dev/v1alpha1',
    kind: p.kind,
    metadata: { name: p.name, ...(p.namespace !== undefined ? { namespace: p.namespace } : {}) },
    spec: policySpec(p),
  });
}
