// The ClusterTrustPolicy documents the demo hands the webhook: one per repository, each
// pinning that repository's own root certificate and trusting the stack's CA for TLS.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { DemoRepository } from './demo-setup.js';

export interface DemoPolicy {
  /** metadata.name, also the file name. */
  name: string;
  repository: DemoRepository;
  notaryUrl: string;
  caPem: string;
  /** Roles that must have signed a tag; without it, docker pull's rule (releases, else targets). */
  roles?: readonly string[];
}

export function policyDocument(p: DemoPolicy): Record<string, unknown> {
  return {
    apiVersion: 'trustgate.dev/v1alpha1',
    kind: 'ClusterTrustPolicy',
    metadata: { name: p.name },
    spec: {
      images: [p.repository.gun],
      trustServer: { url: p.notaryUrl, caBundle: p.caPem },
      root: { keys: [p.repository.rootPem], threshold: 1 },
      ...(p.roles ? { delegations: { roles: [...p.roles] } } : {}),
      mode: 'enforce',
    },
  };
}

/** Writes `<dir>/<name>.yaml` for each policy and returns the paths. */
export function writePolicies(dir: string, policies: DemoPolicy[]): string[] {
  return policies.map((p) => {
    const file = join(dir, `${p.name}.yaml`);
    writeFileSync(file, stringify(policyDocument(p), { lineWidth: 0 }));
    return file;
  });
}
