/**
 * The periodic audit in the server: every interval, on the replica holding the Lease, list
 * the running Pods, audit them (audit/audit.ts) and publish what would be denied now: a log
 * line per finding, metrics, Events on the Pods, and PolicyReports when that CRD is
 * installed. It runs beside admissions and never holds them up: one round at a time, with
 * the audit's own paced share of the trust server.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { silentLogger, type Logger } from '../admission/types.js';
import { auditPods, type AuditPod, type AuditReport, type AuditVerifier } from '../audit/audit.js';
import type { Metrics } from '../server/metrics.js';
import type { EventRecorder } from './events.js';
import { errorText } from './lease.js';
import { listRunningPods } from './pods.js';
import { policyTarget } from './policy-events.js';
import { PolicyReportWriter } from './policy-reports.js';

export interface AuditLoopOptions {
  kubeConfig: KubeConfig;
  verifier: AuditVerifier;
  intervalMs: number;
  expiryWarningMs: number;
  /** Whether this replica should audit now (it holds the Lease). */
  isLeader: () => boolean;
  metrics?: Metrics;
  events?: EventRecorder;
  log?: Logger;
  clock?: () => Date;
  fetchesPerSecond?: number;
  /** Where Pods come from (default: the API server). */
  listPods?: () => Promise<AuditPod[]>;
}

export class AuditLoop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private readonly controller = new AbortController();
  private readonly reports: PolicyReportWriter;
  private readonly log: Logger;
  private readonly clock: () => Date;

  constructor(private readonly opts: AuditLoopOptions) {
    this.reports = new PolicyReportWriter({ kubeConfig: opts.kubeConfig, log: opts.log });
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? (() => new Date());
  }

  start(): void {
    const tick = () => {
      if (this.controller.signal.aborted) return;
      if (this.opts.isLeader() && !this.running) this.running = this.runOnce().finally(() => (this.running = undefined));
      this.timer = setTimeout(tick, this.opts.intervalMs);
      this.timer.unref();
    };
    this.timer = setTimeout(tick, Math.min(this.opts.intervalMs, 30_000));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    clearTimeout(this.timer);
    await this.running;
  }

  /** One round; never throws. */
  async runOnce(): Promise<AuditReport | undefined> {
    try {
      const pods = await (this.opts.listPods ?? (() => listRunningPods(this.opts.kubeConfig)))();
      const report = await auditPods(pods, {
        verifier: this.opts.verifier,
        clock: this.clock,
        expiryWarningMs: this.opts.expiryWarningMs,
        signal: this.controller.signal,
        ...(this.opts.fetchesPerSecond !== undefined ? { fetchesPerSecond: this.opts.fetchesPerSecond } : {}),
      });
      await this.publish(report);
      return report;
    } catch (e) {
      this.opts.metrics?.auditRuns.inc({ result: 'error' });
      this.log.error('audit failed', { error: errorText(e) });
      return undefined;
    }
  }

  private async publish(report: AuditReport): Promise<void> {
    const now = this.clock();
    for (const f of report.findings) {
      this.log.warn('audit finding', { namespace: f.namespace, pod: f.pod, image: f.image, uses: f.uses, result: f.result, code: f.code, ...(f.policy ? { policy: f.policy } : {}), message: f.message });
      this.opts.events?.record({
        regarding: { apiVersion: 'v1', kind: 'Pod', name: f.pod, namespace: f.namespace, ...(f.uid ? { uid: f.uid } : {}) },
        type: 'Warning',
        reason: f.code === 'expiring' ? 'TrustDataExpiring' : f.result === 'fail' ? 'WouldBeDenied' : 'PolicyWarning',
        action: 'Audit',
        note: `${f.image ? `image ${f.image}: ` : ''}${f.message}`,
      });
    }
    for (const f of report.findings) {
      if (f.code !== 'expiring' || !f.policy) continue;
      const [kind, a, b] = f.policy.split('/');
      this.opts.events?.record({
        regarding: policyTarget({ kind: kind as 'TrustPolicy', name: (b ?? a)!, ...(b ? { namespace: a } : {}) }),
        type: 'Warning',
        reason: 'TrustDataExpiring',
        action: 'Audit',
        note: f.message,
      });
    }
    this.opts.metrics?.audited(report, now);
    this.log.info('audit finished', { pods: report.pods, images: report.images, fail: report.findings.filter((f) => f.result === 'fail').length, warn: report.findings.filter((f) => f.result === 'warn').length });
    try {
      if (await this.reports.installed()) await this.reports.write(report, now);
    } catch (e) {
      this.log.warn('policy reports not written', { error: errorText(e) });
    }
  }
}
