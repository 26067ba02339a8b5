/**
 * Where the CLI reads trust data: a policy's trust server, or a directory of role files
 * (`--metadata-dir`). The one place the CLI picks a source per policy, so a second trust
 * protocol plugs in here and in the engine, not in each command.
 */
import { join } from 'node:path';
import { DirSource } from '../notary/dir-source.js';
import { HttpSource } from '../notary/http-source.js';
import type { MetadataSource } from '../notary/source.js';
import type { TrustPolicy } from '../policy/model.js';
import { SpecDirSource } from '../tufrepo/dir-source.js';
import type { SpecSource } from '../tufrepo/source.js';
import { cliCredentials, type Env } from './settings.js';

export interface SourceChoice {
  /** Role files of one repository (verify, inspect) or DIR/<repository>/ per repository (check). */
  metadataDir?: string;
  perRepository?: boolean;
}

export function cliSourceFor(choice: SourceChoice, env: Env): (policy: TrustPolicy, gun: string) => MetadataSource {
  const credentials = cliCredentials(env);
  return (policy, gun) => {
    const dir = choice.metadataDir;
    if (dir !== undefined) return new DirSource({ dir: choice.perRepository ? join(dir, gun) : dir, gun });
    const { url, caBundle } = policy.spec.trustServer;
    return new HttpSource({ url, gun, ...(caBundle ? { caBundle } : {}), ...(credentials ? { credentials } : {}) });
  };
}

/**
 * For protocol-tuf policies: with --metadata-dir, the directory holds one TUF 1.0
 * repository's metadata (N.root.json and/or root.json, ROLE.json and/or VERSION.ROLE.json),
 * which serves every image it lists; without it, the engine reads the policy's URL.
 */
export function cliTufSourceFor(choice: SourceChoice): ((policy: TrustPolicy) => SpecSource) | undefined {
  const dir = choice.metadataDir;
  if (dir === undefined) return undefined;
  return () => new SpecDirSource(dir);
}

/** The engine option that reads protocol-tuf policies from --metadata-dir, when given. */
export function tufSource(metadataDir: string | undefined): { tufSourceFor?: (policy: TrustPolicy) => SpecSource } {
  const f = cliTufSourceFor(metadataDir !== undefined ? { metadataDir } : {});
  return f ? { tufSourceFor: f } : {};
}
