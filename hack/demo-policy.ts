// The ClusterTrustPolicy documents the demo hands the webhook: one per repository, each
// pinning that repository's own root (a Notary root certificate, or a TUF root.json) and
// trusting the CA of the server it comes from for TLS.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface DemoPolicy {
  /** metadata.name, also the file name. */
  name: string;
  /** registry/repository: the image the policy covers. */
  repository: string;
  server: { url: string; caPem: string; protocol?: 'tuf' };
  /** Notary: the repository's root certificate as a pinned key; TUF: the root.json its publisher hands out. */
  root: { keys: string[] } | { trustedRoot: string };
  /** Roles that must have signed a tag; without it, docker pull's rule (Notary) or the TUF delegation search. */
  roles?: readonly string[];
}

export function policyDocument(p: DemoPolicy): Record<string, unknown> {
  return {
    apiVersion: 'trustgate.dev/v1alpha1',
    kind: 'ClusterTrustPolicy',
    metadata: { name: p.name },
    spec: {
      images: [p.repository],
      trustServer: { ...(p.server.protocol ? { protocol: p.server.protocol } : {}), url: p.server.url, caBundle: p.server.caPem },
      root: 'keys' in p.root ? { keys: p.root.keys, threshold: 1 } : { trustedRoot: p.root.trustedRoot },
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
