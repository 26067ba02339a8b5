/**
 * The audit's findings as PolicyReports of the Kubernetes Policy WG (wgpolicyk8s.io/v1alpha2),
 * the format Kyverno, Trivy and Falco write and policy-reporter reads: one report per
 * namespace named `trustgate-audit`, replaced each round (with the resourceVersion read, so a
 * concurrent writer is detected, not overwritten), deleted when the namespace has nothing to
 * report any more. Written only when the CRD is installed.
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { silentLogger, type Logger } from '../admission/types.js';
import type { AuditFinding, AuditReport } from '../audit/audit.js';
import { errorText, statusCode } from './lease.js';

export const REPORT_NAME = 'trustgate-audit';
const GROUP = 'wgpolicyk8s.io';
const VERSION = 'v1alpha2';
const PLURAL = 'policyreports';

export class PolicyReportWriter {
  private readonly api: CustomObjectsApi;
  private readonly log: Logger;
  /** Namespaces written last round, so one whose findings went away gets its report removed. */
  private written = new Set<string>();

  constructor(opts: { kubeConfig: KubeConfig; log?: Logger }) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.log = opts.log ?? silentLogger;
  }

  /** Whether the API server serves PolicyReports (the CRD is installed). */
  async installed(): Promise<boolean> {
    try {
      const list = await this.api.getAPIResources({ group: GROUP, version: VERSION });
      return (list.resources ?? []).some((r) => r.name === PLURAL);
    } catch (e) {
      if (statusCode(e) === 404) return false;
      throw e;
    }
  }

  /** Writes one report per namespace with pods checked; never throws (each failure is logged). */
  async write(report: AuditReport, now: Date): Promise<void> {
    const byNs = new Map<string, AuditFinding[]>();
    for (const f of report.findings) byNs.set(f.namespace, [...(byNs.get(f.namespace) ?? []), f]);
    const namespaces = new Set([...byNs.keys(), ...Object.keys(report.passed)]);
    for (const ns of namespaces) {
      const findings = byNs.get(ns) ?? [];
      try {
        if (findings.length === 0 && !this.written.has(ns)) continue;
        await this.replace(ns, policyReport(ns, findings, report.passed[ns] ?? 0, now));
      } catch (e) {
        this.log.warn('policy report not written', { namespace: ns, code: statusCode(e), error: errorText(e) });
      }
    }
    for (const ns of this.written) {
      if (namespaces.has(ns)) continue;
      await this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: REPORT_NAME }).catch((e: unknown) => {
        if (statusCode(e) !== 404) this.log.warn('policy report not deleted', { namespace: ns, code: statusCode(e), error: errorText(e) });
      });
    }
    this.written = new Set([...namespaces].filter((ns) => (byNs.get(ns)?.length ?? 0) > 0 || this.written.has(ns)));
  }

  private async replace(namespace: string, body: Record<string, unknown>): Promise<void> {
    const ref = { group: GROUP, version: VERSION, namespace, plural: PLURAL };
    let existing: { metadata?: { resourceVersion?: string } } | undefined;
    try {
      existing = (await this.api.getNamespacedCustomObject({ ...ref, name: REPORT_NAME })) as typeof existing;
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
    }
    if (!existing) {
      await this.api.createNamespacedCustomObject({ ...ref, body });
      return;
    }
    const metadata = { ...(body['metadata'] as object), resourceVersion: existing.metadata?.resourceVersion };
    await this.api.replaceNamespacedCustomObject({ ...ref, name: REPORT_NAME, body: { ...body, metadata } });
  }
}

/** A PolicyReport for one namespace: a result per finding, and pass counted in the summary. */
export function policyReport(namespace: string, findings: AuditFinding[], passedPods: number, now: Date): Record<string, unknown> {
  const seconds = Math.floor(now.getTime() / 1000);
  const results = findings.map((f) => ({
    source: 'trustgate',
    policy: f.policy ?? 'trustgate',
    rule: f.code,
    result: f.result,
    severity: f.result === 'fail' ? 'high' : 'medium',
    category: 'Image signatures',
    scored: true,
    message: `${f.image ? `image ${JSON.stringify(f.image)}` : 'Pod'}${f.uses.length > 0 ? ` (${f.uses.join(', ')})` : ''}: ${f.message}`,
    timestamp: { seconds, nanos: 0 },
    resources: [{ apiVersion: 'v1', kind: 'Pod', name: f.pod, namespace: f.namespace, ...(f.uid ? { uid: f.uid } : {}) }],
    ...(f.image ? { properties: { image: f.image } } : {}),
  }));
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'PolicyReport',
    metadata: { name: REPORT_NAME, namespace, labels: { 'app.kubernetes.io/managed-by': 'trustgate' } },
    summary: {
      pass: passedPods,
      fail: findings.filter((f) => f.result === 'fail').length,
      warn: findings.filter((f) => f.result === 'warn').length,
      error: 0,
      skip: 0,
    },
    results,
  };
}
