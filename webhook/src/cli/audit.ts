/**
 * `trustgate audit`: the server's audit once, from the command line, against the cluster of
 * the current kubeconfig: policies from the cluster, running Pods, today's trust data.
 * Prints a table (or JSON). Exit 0 when nothing running would be denied now, 1 when
 * something would, 2 on usage or cluster errors.
 */
import type { KubeConfig } from '../kube/cluster.js';
import { auditPods, type AuditReport } from '../audit/audit.js';
import type { MetadataSource } from '../notary/source.js';
import type { TrustPolicy } from '../policy/model.js';
import { PolicyStore } from '../policy/store.js';
import { VerificationEngine } from '../verify/engine.js';
import { commandSpec, parseCommand } from './commands.js';
import { cliTimeoutMs, type Env } from './settings.js';
import { UsageError } from './usage.js';

export interface AuditCommandDeps {
  /** Default: the current kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster). */
  kubeConfig?: KubeConfig;
  /** Default: the trust servers the policies name, with credentials from their Secrets. */
  sourceFor?: (policy: TrustPolicy, gun: string) => MetadataSource | Promise<MetadataSource>;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

export async function auditCommand(argv: string[], _env: Env, deps: AuditCommandDeps = {}): Promise<number> {
  const parsed = parseCommand(commandSpec('audit')!, argv);
  const positionals = parsed.positionals;
  const values = parsed.values as { output: string; 'expiry-warning': string; timeout: string; namespace?: string };
  if (positionals.length > 0) throw new UsageError(`audit takes no positional arguments, got ${JSON.stringify(positionals[0])}`);
  if (values.output !== 'text' && values.output !== 'json') throw new UsageError('--output must be text or json');
  const windowMs = secondsFlag('--expiry-warning', values['expiry-warning']);
  const timeoutMs = cliTimeoutMs(values.timeout);
  const out = deps.out ?? ((t: string) => void process.stdout.write(t));
  const err = deps.err ?? ((t: string) => void process.stderr.write(t));

  const { connectToCluster } = await import('../kube/cluster.js');
  const { KubernetesPolicySource } = await import('../kube/policy-source.js');
  const { listRunningPods } = await import('../kube/pods.js');
  const { kubernetesSecrets } = await import('../kube/credential-secrets.js');
  const { SourcePool } = await import('./serve-command.js');
  const { kubeConfig, core } = connectToCluster(deps.kubeConfig);
  const store = new PolicyStore();
  const problems: string[] = [];
  const source = new KubernetesPolicySource({
    kubeConfig,
    store,
    log: (e) => {
      const ev = e as { level?: string; event?: string; error?: string; code?: number };
      if (ev.level === 'error' && ev.event === 'policy-list-failed') problems.push(`${ev.code ?? ''} ${ev.error ?? ''}`.trim());
    },
    backoff: { initialMs: 200, maxMs: 1000 },
  });
  const own = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'trustgate';
  const pool = deps.sourceFor ? undefined : new SourcePool(kubernetesSecrets(core, own));
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    const ready = source.start();
    await Promise.race([ready, new Promise((resolve) => deadline.addEventListener('abort', resolve, { once: true }))]);
    if (!store.ready) {
      err(`trustgate: the policies could not be read from ${kubeConfig.getCurrentCluster()?.server ?? 'the cluster'} within ${timeoutMs / 1000}s${problems.length ? `: ${problems.at(-1)}` : ''}\n`);
      return 2;
    }
    const engine = new VerificationEngine({ policies: store, sourceFor: deps.sourceFor ?? ((p, gun) => pool!.get(p, gun)) });
    let pods = await listRunningPods(kubeConfig);
    if (values.namespace) pods = pods.filter((p) => p.metadata?.namespace === values.namespace);
    const report = await auditPods(pods, { verifier: engine, expiryWarningMs: windowMs, signal: deadline, fetchesPerSecond: 10 });
    out(values.output === 'json' ? JSON.stringify(report, null, 2) + '\n' : table(report));
    return report.findings.some((f) => f.result === 'fail') ? 1 : 0;
  } finally {
    source.stop();
    pool?.close();
  }
}

function secondsFlag(name: string, raw: string): number {
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new UsageError(`${name} must be a number of seconds, got ${JSON.stringify(raw)} (e.g. ${name} 604800)`);
  return Math.round(Number(raw) * 1000);
}

/** NAMESPACE POD IMAGE RESULT WHY, one row per finding, then a summary line. */
export function table(report: AuditReport): string {
  const rows = report.findings.map((f) => [f.namespace, f.pod, f.image || '-', f.result.toUpperCase(), f.message]);
  const head = ['NAMESPACE', 'POD', 'IMAGE', 'RESULT', 'WHY'];
  const widths = head.slice(0, 4).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd();
  const fail = report.findings.filter((f) => f.result === 'fail').length;
  const warn = report.findings.length - fail;
  const summary = `${report.pods} running Pods, ${report.images} images checked: ${fail} would be denied now, ${warn} at risk.`;
  return [...(rows.length ? [line(head), ...rows.map(line), ''] : []), summary, ''].join('\n');
}
