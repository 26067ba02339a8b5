/**
 * `trustgate policy init IMAGE --server URL`: a ready policy with the repository's current
 * root pinned. The root is taken on first use, so nothing here can tell a genuine root from
 * a server's forgery; what it can do is refuse trust data that is not consistent in itself
 * (the root signed by its own root keys, every role verified down from it, as the webhook
 * would) and print what a person must compare with the publisher out of band.
 */
import { stringify } from 'yaml';
import { formatReference, parseReference } from '../images/reference.js';
import { HttpSource } from '../notary/http-source.js';
import { FetchError } from '../notary/source.js';
import { loadRepository } from '../notary/updater.js';
import { parsePolicyYaml, PolicyValidationError } from '../policy/model.js';
import { spkiDer, spkiKey, X509Certificate } from '../tuf/crypto.js';
import { keyId, MAX_ROOT_BYTES, pinFromPem, TufError } from '../tuf/index.js';
import { commandSpec, parseCommand } from './commands.js';
import { InputError, readInputFile } from './inputs.js';
import { cliCredentials, cliTimeoutMs, type Env } from './settings.js';
import { UsageError } from './usage.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

interface RootKey {
  /** The ID root.json files the key under. */
  id: string;
  /** The ID of the bare public key, which `notary key list` shows for a certificate-wrapped root key. */
  canonicalId: string;
  pem: string;
  certificate?: X509Certificate;
}

export async function policyInitCommand(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parseCommand(commandSpec('policy init')!, argv);
  if (positionals.length !== 1) throw new UsageError('policy init takes exactly one IMAGE (a repository, e.g. registry.example.com/payments/api)');
  const server = values['server'] as string | undefined;
  if (!server) throw new UsageError('policy init needs --server URL (the Notary server, e.g. --server https://notary.example.com:4443)');
  const namespace = values['namespace'] as string | undefined;
  const kind = (values['kind'] as string | undefined) ?? (namespace !== undefined ? 'TrustPolicy' : 'ClusterTrustPolicy');
  if (kind !== 'TrustPolicy' && kind !== 'ClusterTrustPolicy') throw new InputError(`--kind must be TrustPolicy or ClusterTrustPolicy, got ${JSON.stringify(kind)}`);
  if (kind === 'TrustPolicy' && namespace === undefined) throw new InputError('a TrustPolicy applies in one namespace: give --namespace NS (or --kind ClusterTrustPolicy)');
  if (kind === 'ClusterTrustPolicy' && namespace !== undefined) throw new InputError('a ClusterTrustPolicy is cluster-scoped: drop --namespace (or use --kind TrustPolicy)');
  const roles = ((values['roles'] as string | undefined) ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '');
  const caBundle = values['ca-bundle'] !== undefined ? readInputFile(values['ca-bundle'] as string, '--ca-bundle').text : undefined;
  const timeoutMs = cliTimeoutMs(values['timeout'] as string);

  let ref;
  try {
    ref = parseReference(positionals[0]!);
  } catch (e) {
    throw new InputError(`${positionals[0]}: ${(e as Error).message}`);
  }
  const credentials = cliCredentials(env);
  let source: HttpSource;
  try {
    source = new HttpSource({ url: server, gun: ref.name, ...(caBundle ? { caBundle } : {}), ...(credentials ? { credentials } : {}) });
  } catch (e) {
    throw new InputError(`--server ${server}${caBundle ? ' with --ca-bundle' : ''}: ${(e as Error).message}`);
  }
  const signal = AbortSignal.timeout(timeoutMs);
  const now = new Date();
  let keys: RootKey[];
  let threshold: number;
  try {
    ({ keys, threshold } = rootKeysOf(await source.fetch({ role: 'root', maxBytes: MAX_ROOT_BYTES }, signal)));
    // Every role, verified from this root as the webhook would: a root that does not sign
    // itself, or a timestamp, snapshot or delegation that does not verify, is refused here.
    const repo = await loadRepository(source, { pin: pinFromPem(keys.map((k) => k.pem), threshold), now, signal });
    const missing = roles.filter((r) => !repo.roleNames().includes(r));
    if (missing.length > 0) {
      process.stderr.write(`trustgate: ${formatReference(ref)} at ${source.server} has no role ${missing.join(', ')}; its roles are ${repo.roleNames().join(', ')}: a policy requiring ${missing.length === 1 ? 'it' : 'them'} would deny every tag\n`);
      return 1;
    }
  } catch (e) {
    const where = e instanceof TufError ? `role ${e.role} at ${source.server}` : source.server;
    const hint = e instanceof FetchError && e.kind === 'tls' && caBundle === undefined ? "; give the server's CA with --ca-bundle FILE" : '';
    process.stderr.write(`trustgate: ${ref.name}: ${where}: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}${hint}\n`);
    return 1;
  }

  const name = (values['name'] as string | undefined) ?? policyName(ref.path);
  const spec: Record<string, unknown> = {
    images: [ref.name],
    trustServer: { url: source.server, ...(caBundle ? { caBundle } : {}) },
    root: { keys: keys.map((k) => k.pem), threshold },
    ...(roles.length > 0 ? { delegations: { roles } } : {}),
    mode: 'enforce',
  };
  const doc = {
    apiVersion: 'trustgate.dev/v1alpha1',
    kind,
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}) },
    spec,
  };
  const text = `# trustgate policy init ${formatReference(ref)} --server ${source.server} (${now.toISOString()})\n` + stringify(doc, { lineWidth: 0 });
  try {
    parsePolicyYaml(text, 'generated policy', { requireNamespace: true });
  } catch (e) {
    if (!(e instanceof PolicyValidationError)) throw e;
    throw new InputError(`the policy made from these options is not valid: ${e.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  }
  process.stdout.write(text);
  const lines = [`Pinned the root of ${ref.name} as served now by ${source.server} (threshold ${threshold}):`];
  for (const k of keys) {
    lines.push(`  root key ID   ${k.id}${k.canonicalId !== k.id ? ` (notary key list: ${k.canonicalId})` : ''}`);
    if (k.certificate) lines.push(`  certificate   ${k.certificate.subject.replace(/\n/g, ', ')}, SHA-256 fingerprint ${k.certificate.fingerprint256}`);
  }
  lines.push(
    'WARNING: trust on first use. This is whatever root the server handed out today; a compromised or impersonated',
    "server would hand out its own. Before you rely on this policy, compare the root key ID and fingerprint with the",
    "publisher's, out of band (they see the same ID with `notary key list` or `notary inspect`).",
  );
  process.stderr.write(lines.join('\n') + '\n');
  return 0;
}

function policyName(path: string): string {
  const last = path.split('/').at(-1) ?? 'policy';
  const name = last.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return DNS_LABEL.test(name) ? name : 'policy';
}

/** The root role's keys as PEM, read from root.json before it is verified (verification follows, with them as the pin). */
function rootKeysOf(bytes: Uint8Array): { keys: RootKey[]; threshold: number } {
  let root: { signed?: { keys?: Record<string, { keytype?: string; keyval?: { public?: string } }>; roles?: { root?: { keyids?: string[]; threshold?: number } } } };
  try {
    root = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new TufError('malformed', 'root', `root.json is not JSON: ${(e as Error).message}`);
  }
  const ids = root.signed?.roles?.root?.keyids;
  const threshold = root.signed?.roles?.root?.threshold;
  if (!Array.isArray(ids) || ids.length === 0 || typeof threshold !== 'number') throw new TufError('malformed', 'root', 'root.json names no root keys and threshold');
  const keys = ids.map((id): RootKey => {
    const key = root.signed?.keys?.[id];
    const b64 = key?.keyval?.public;
    if (!key || typeof b64 !== 'string' || typeof key.keytype !== 'string') throw new TufError('malformed', 'root', `root key ${id} is not listed in root.json's keys`);
    const raw = Buffer.from(b64, 'base64');
    if (key.keytype.endsWith('-x509')) {
      const pem = raw.toString('utf8');
      let certificate: X509Certificate;
      try {
        certificate = new X509Certificate(pem);
      } catch (e) {
        throw new TufError('bad-key', 'root', `root key ${id} is not a certificate: ${(e as Error).message}`);
      }
      const der = spkiDer(certificate.publicKey);
      return { id, canonicalId: keyId(key.keytype.replace(/-x509$/, ''), der.toString('base64'), 'root'), pem, certificate };
    }
    // Plain keys: base64 SPKI DER, except ed25519's 32 raw bytes.
    const der = key.keytype === 'ed25519' ? Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]) : raw;
    const pem = spkiKey(der).export({ format: 'pem', type: 'spki' }).toString();
    return { id, canonicalId: id, pem };
  });
  return { keys, threshold };
}
