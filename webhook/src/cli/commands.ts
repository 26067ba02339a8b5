/**
 * Every command of the CLI but `serve` (whose settings live in settings.ts), in one table:
 * each option's flag, placeholder, default and help, plus one example per command. The
 * parser options and the help text are both made from it, so the help lists exactly what
 * is accepted. Imports nothing heavy: `--help` and `--version` must start fast.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './usage.js';

export interface OptionRow {
  flag: string;
  short?: string;
  /** Placeholder in the help; absent for boolean flags. */
  value?: string;
  default?: string;
  multiple?: boolean;
  help: string;
}

export interface CommandSpec {
  /** As typed: 'verify', 'policy check'. */
  name: string;
  /** Positional arguments as shown in the synopsis, e.g. 'IMAGE' or 'FILE...'. */
  args: string;
  summary: string;
  /** One line for the command list of `trustgate --help`. */
  brief: string;
  options: readonly OptionRow[];
  example: string;
  /** Extra paragraphs after the options (exit codes, environment). */
  notes?: string;
}

const OUTPUT: OptionRow = { flag: 'output', value: 'text|json', default: 'text', help: 'text for people; json writes exactly one JSON document to stdout.' };
const AT: OptionRow = {
  flag: 'at',
  value: 'TIME',
  help: 'Check expiry at this RFC 3339 instant instead of now (audits of old metadata), e.g. 2026-12-01T00:00:00Z.',
};
const METADATA_DIR_ONE: OptionRow = {
  flag: 'metadata-dir',
  value: 'DIR',
  help: 'Read the role files from DIR instead of the trust server: Notary root.json, N.root.json, timestamp.json, snapshot.json, targets.json, targets/<name>.json; TUF 1.0 (protocol tuf) N.root.json and/or root.json, ROLE.json and/or VERSION.ROLE.json.',
};
const TIMEOUT: OptionRow = { flag: 'timeout', value: 'SECONDS', default: '30', help: 'Give up (and refuse) after this many seconds in all.' };
const CREDENTIALS_NOTE =
  'Trust-server credentials come from TRUSTGATE_USERNAME and TRUSTGATE_PASSWORD (both or neither).';

const IMAGE_COMMON: readonly OptionRow[] = [
  { flag: 'policy', value: 'FILE', multiple: true, help: 'TrustPolicy / ClusterTrustPolicy YAML or JSON (several documents, Lists; `-` for stdin); repeatable. Every policy whose spec.images matches IMAGE applies, all of them.' },
  { flag: 'namespace', value: 'NS', help: "Check as in namespace NS: TrustPolicies of other namespaces do not apply. Default: every TrustPolicy given applies, whatever its namespace." },
  { flag: 'ignore-image-match', help: "Apply every policy given even when its spec.images does not match IMAGE (default: refuse an image no policy matches, as the webhook does)." },
  METADATA_DIR_ONE,
  AT,
  OUTPUT,
  TIMEOUT,
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'check',
    brief: "The webhook's verdict on every image of some manifests, before you deploy.",
    args: '',
    summary: "The webhook's verdict for every image of some Kubernetes manifests (Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, ReplicationControllers, Lists), under the given policies, before you deploy.",
    options: [
      { flag: 'file', short: 'f', value: 'FILE', multiple: true, help: 'Manifests: YAML (several documents) or JSON, a directory (read recursively: *.yaml, *.yml, *.json), or `-` for stdin; repeatable. Required.' },
      { flag: 'policy', value: 'FILE', multiple: true, help: 'Policy file (YAML or JSON, `-` for stdin); repeatable. Exactly one of --policy and --policy-dir.' },
      { flag: 'policy-dir', value: 'DIR', help: 'Every policy file in DIR, as `trustgate serve --policy-dir DIR` reads it.' },
      { flag: 'namespace', short: 'n', value: 'NS', help: "Namespace the objects are deployed to (overrides metadata.namespace). Default: each object's metadata.namespace, else \"default\"." },
      { flag: 'metadata-dir', value: 'DIR', help: 'Read trust data from DIR instead of the trust servers: a Notary repository from DIR/<repository>/ (e.g. DIR/registry.example.com/payments/api/root.json), a TUF 1.0 repository (protocol tuf) from DIR itself.' },
      AT,
      { flag: 'allow-unmatched', help: 'Admit images no policy matches, as the webhook does with --allow-unmatched (default: deny them).' },
      { flag: 'exempt', value: 'PATTERN', multiple: true, help: "Admit images matching this pattern without verification, as the webhook's --exempt; repeatable." },
      OUTPUT,
      TIMEOUT,
    ],
    example: 'trustgate check -f deploy/ --policy policy.yaml --namespace payments',
    notes: `Exit status: 0 every image would be admitted, 1 something would be denied, 2 usage or input error.\n${CREDENTIALS_NOTE}`,
  },
  {
    name: 'verify',
    brief: 'Verify one image; print its pinned reference.',
    args: 'IMAGE',
    summary: 'Verify one image as the webhook would, and print its pinned reference (name:tag@sha256:...) as the last line.',
    options: IMAGE_COMMON,
    example: 'trustgate verify registry.example.com/payments/api:1.4 --policy policy.yaml',
    notes: `Exit status: 0 verified, 1 refused (one line on stderr naming image, policy, role, server and why), 2 usage or input error.\n${CREDENTIALS_NOTE}`,
  },
  {
    name: 'inspect',
    brief: "Show the verified trust data of an image's repository.",
    args: 'IMAGE',
    summary: "Show the verified trust data of IMAGE's repository under each matching policy: roles, signed tags, signers, keys, versions.",
    options: IMAGE_COMMON,
    example: 'trustgate inspect registry.example.com/payments/api:1.4 --policy policy.yaml',
    notes: `Exit status: 0 shown, 1 the trust data is not trusted, 2 usage or input error.\n${CREDENTIALS_NOTE}`,
  },
  {
    name: 'policy init',
    brief: "Print a policy pinning a repository's current root (trust on first use).",
    args: 'IMAGE',
    summary:
      "Fetch IMAGE's repository's current trust data, check that it is consistent (signed by its own root keys, every role verified), and print a policy with that root certificate pinned. Trust on first use: compare the key ID and fingerprint printed on stderr with the publisher's.",
    options: [
      { flag: 'server', value: 'URL', help: 'The Notary server, e.g. https://notary.example.com:4443. Required.' },
      { flag: 'ca-bundle', value: 'FILE', help: "PEM file of the CA that signed the server's certificate; also written into the policy's spec.trustServer.caBundle." },
      { flag: 'roles', value: 'ROLE,...', help: 'Delegations the policy requires to sign every tag, e.g. targets/releases (each must exist in the trust data). Default: none (Docker\'s rule: targets/releases, else targets).' },
      { flag: 'kind', value: 'KIND', help: 'TrustPolicy or ClusterTrustPolicy. Default: TrustPolicy with --namespace, ClusterTrustPolicy without.' },
      { flag: 'namespace', value: 'NS', help: "The TrustPolicy's namespace (required for a TrustPolicy)." },
      { flag: 'name', value: 'NAME', help: "metadata.name. Default: the repository's last path component." },
      TIMEOUT,
    ],
    example: 'trustgate policy init registry.example.com/payments/api --server https://notary.example.com:4443 --ca-bundle ca.pem --roles targets/releases --namespace payments > policy.yaml',
    notes: `Exit status: 0 policy printed, 1 the trust data is inconsistent or unreachable, 2 usage or input error.\n${CREDENTIALS_NOTE}`,
  },
  {
    name: 'policy check',
    brief: 'Validate policy files as the cluster would.',
    args: 'FILE...',
    summary: 'Validate policy files as the cluster would (CRD schema, rules, root keys, image patterns), every problem with its field path. `-` reads stdin.',
    options: [],
    example: 'trustgate policy check policy.yaml',
    notes: 'Exit status: 0 every file holds valid policies, 1 a file is invalid or holds no policy, 2 usage error.',
  },
  {
    name: 'audit',
    brief: 'Re-verify the images of running Pods against the cluster\'s policies, once.',
    args: '',
    summary:
      "Re-verify the images of the running Pods of the current kubeconfig's cluster against the cluster's policies and today's trust data, as the server's periodic audit does, and print what admission would deny now and what expires within --expiry-warning.",
    options: [
      { flag: 'namespace', value: 'NS', help: 'Only the Pods of namespace NS. Default: every namespace.' },
      { flag: 'expiry-warning', value: 'SECONDS', default: '604800', help: 'Report trust data expiring within this many seconds (default 7 days).' },
      OUTPUT,
      { flag: 'timeout', value: 'SECONDS', default: '60', help: 'Give up (and refuse) after this many seconds in all.' },
    ],
    example: 'trustgate audit --namespace payments',
    notes: 'Exit status: 0 nothing running would be denied, 1 something would, 2 usage or cluster error. Reads KUBECONFIG (or ~/.kube/config, or the in-cluster account); needs list on pods and the policies, get on the Secrets policies name.',
  },
  {
    name: 'tuf target',
    brief: 'The TUF 1.0 target entry that signs an image, for RSTUF or python-tuf.',
    args: 'IMAGE:TAG@sha256:DIGEST',
    summary:
      "Print the target entry a TUF 1.0 repository must sign so that protocol-tuf policies admit the image: path <registry>/<repository>:<tag>, length = the manifest's size in bytes, hashes.sha256 = the manifest digest. Publish it with RSTUF (POST /api/v1/artifacts takes the default output) or add it to a targets role with python-tuf / tuf-on-ci (--format targets).",
    options: [
      { flag: 'size', value: 'BYTES', help: "The manifest's size in bytes (e.g. the Content-Length of a HEAD on /v2/<repository>/manifests/<digest>). Required." },
      { flag: 'media-type', value: 'TYPE', help: "The manifest's media type, recorded in custom.mediaType (informational; trustgate verifies length and digest)." },
      { flag: 'format', value: 'rstuf|targets', default: 'rstuf', help: 'rstuf: the payload of RSTUF\'s artifacts API; targets: the entry of a targets file\'s "targets" object.' },
    ],
    example: 'trustgate tuf target registry.example.com/payments/api:1.4@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0 --size 1234',
    notes: 'Exit status: 0 printed, 2 usage error (no tag, no digest, a size that is not a whole number).',
  },
];

export const SERVE_SUMMARY = 'Serve the admission webhook (HTTPS /mutate, /validate, /healthz, /metrics).';

export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** The parsed options of one command; unknown options and missing values are UsageErrors naming the command. */
export function parseCommand(spec: CommandSpec, argv: string[]): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string }> = {};
  for (const o of spec.options) {
    options[o.flag] = { type: o.value ? 'string' : 'boolean', ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}), ...(o.default !== undefined ? { default: o.default } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | string[] | undefined>, positionals };
  } catch (e) {
    throw new UsageError(`${spec.name}: ${(e as Error).message.split('\n')[0]}`);
  }
}

export function synopsis(spec: CommandSpec): string {
  return `trustgate ${spec.name}${spec.args ? ` ${spec.args}` : ''}${spec.options.length > 0 ? ' [options]' : ''}`;
}

export function commandHelp(spec: CommandSpec): string {
  const lines = [`usage: ${synopsis(spec)}`, '', wrap(spec.summary, 0), '', 'Options:'];
  for (const o of spec.options) {
    const head = `${o.short ? `-${o.short}, ` : ''}--${o.flag}${o.value ? ` ${o.value}` : ''}`;
    lines.push(`  ${head}`, wrap(`${o.help}${o.default !== undefined ? ` (default ${o.default})` : ''}`, 6));
  }
  lines.push('  -h, --help', '      Print this text.', '', 'Example:', `  ${spec.example}`);
  if (spec.notes) lines.push('', spec.notes);
  return lines.join('\n');
}

export function overview(version: string): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 'serve'.length);
  return [
    `trustgate ${version}: admit only signed, fresh container images (Notary v1 / TUF trust data).`,
    '',
    'usage: trustgate COMMAND [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.brief}`),
    `  ${'serve'.padEnd(width)}  ${SERVE_SUMMARY}`,
    '',
    'trustgate help COMMAND, or trustgate COMMAND --help: every option of COMMAND, its default and an example.',
    'trustgate --version: the version.',
    '',
    'Example:',
    '  trustgate check -f deploy/ --policy policy.yaml',
  ].join('\n');
}

function wrap(text: string, indent: number, width = 100): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent + line.length + 1 + word.length > width) {
      out.push(' '.repeat(indent) + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(' '.repeat(indent) + line);
  return out.join('\n');
}
