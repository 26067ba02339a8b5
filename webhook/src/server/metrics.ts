// A tiny Prometheus registry (text exposition format 0.0.4): counters and histograms with
// labels, enough for the webhook. Label values come from a bounded set (operations,
// results, policy servers), so series never grow with request content.
import type { AdmissionMetrics, AdmissionResult, DecisionMode, WebhookName } from '../admission/types.js';
import type { RoleExpiry } from '../verify/expiry.js';
import type { FailureCause } from '../verify/failure.js';

type Labels = Record<string, string>;

// Called several times per admission: no intermediate arrays, and escaping only when needed.
function labelKey(labels: Labels): string {
  let key = '';
  for (const k in labels) key += `${key === '' ? '{' : ','}${k}="${escapeLabel(labels[k]!)}"`;
  return key === '' ? '' : `${key}}`;
}

interface KeyNode {
  next: Map<string, KeyNode>;
  key?: string;
}

/**
 * Label sets seen before, to their rendered key: walking two small maps per label costs less
 * than building the key again on every admission. Grows with the series it names, which are
 * bounded (see the top).
 */
class LabelKeys {
  private readonly root: KeyNode = { next: new Map() };

  of(labels: Labels): string {
    let node = this.root;
    for (const k in labels) node = step(step(node, k), labels[k]!);
    return (node.key ??= labelKey(labels));
  }
}

function step(node: KeyNode, s: string): KeyNode {
  let n = node.next.get(s);
  if (!n) node.next.set(s, (n = { next: new Map() }));
  return n;
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabel(v: string): string {
  if (!NEEDS_ESCAPE.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return Number.isNaN(n) ? 'NaN' : String(n);
}

export class Counter {
  private readonly values = new Map<string, number>();
  private readonly keys = new LabelKeys();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`counter ${this.name} can only increase`);
    const key = this.keys.of(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    // An unlabelled counter is shown at 0 so dashboards see it before the first event.
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [key, v] of this.values) lines.push(`${this.name}${key} ${formatNumber(v)}`);
    return lines.join('\n');
  }
}

export class Histogram {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  private readonly keys = new LabelKeys();
  readonly buckets: readonly number[];

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
  ) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(value: number, labels: Labels = {}): void {
    const key = this.keys.of(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    const all = this.series.size > 0 ? [...this.series.values()] : [{ labels: {}, counts: this.buckets.map(() => 0), sum: 0, count: 0 }];
    for (const s of all) {
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: formatNumber(b) })} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${labelKey(s.labels)} ${formatNumber(s.sum)}`);
      lines.push(`${this.name}_count${labelKey(s.labels)} ${s.count}`);
    }
    return lines.join('\n');
  }
}

/** A gauge whose series are computed when scraped, from state kept elsewhere. */
export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => Iterable<[Labels, number]>,
  ) {}

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [labels, v] of this.read()) lines.push(`${this.name}${labelKey(labels)} ${formatNumber(v)}`);
    return lines.join('\n');
  }
}

interface TrustDataSeries {
  server: string;
  repository: string;
  expiries: RoleExpiry[];
}

export interface PolicyCount {
  kind: string;
  state: 'valid' | 'invalid';
  count: number;
}

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16];

/**
 * The webhook's metrics. Admission reports through `admission`/`imageVerificationSeconds`;
 * the verification engine can be handed this object as its EngineMetrics (cacheHit,
 * cacheMiss, trustServerError). It deliberately has no `verificationSeconds`: admission
 * already times every image it waits for, and two sources would double-count.
 */
export class Metrics implements AdmissionMetrics {
  /** Trust data per cache entry; entries leave with the cache's, so the series stay within its bound. */
  private readonly trustData = new Map<string, TrustDataSeries>();
  private policyCounts: () => PolicyCount[] = () => [];
  private readonly buildLabels: Labels;

  constructor(build: { version?: string } = {}) {
    this.buildLabels = { version: build.version ?? 'unknown', node: process.version };
  }

  readonly buildInfo = new Gauge('trustgate_build_info', 'Always 1; the labels say which trustgate and which Node.js run.', () => [[this.buildLabels, 1]]);
  readonly policies = new Gauge('trustgate_policies', 'Policies known, by kind and state (valid: in force; invalid: rejected, images it would cover are denied).', () => this.policyCountSeries());
  readonly policyResults = new Counter('trustgate_policy_results_total', 'Admission verdicts per policy (Kind/namespace/name), its mode, and result (pass or fail).');
  readonly rollbackRefusals = new Counter('trustgate_rollback_refusals_total', 'Trust data refused because a trust server served versions older than already trusted, by server and repository.');
  readonly trustDataExpiry = new Gauge(
    'trustgate_trust_data_expiry_timestamp_seconds',
    'When verified trust data stops being trusted (Unix seconds), by trust server, repository and role; a delegation counts its ancestors.',
    () => this.expirySeries(),
  );
  /** Findings of the last audit, by namespace and result; replaced whole each round. */
  private auditCounts = new Map<string, [Labels, number]>();
  private auditLast: { at: number; pods: number } | undefined;
  readonly auditFindings = new Gauge('trustgate_audit_findings', 'Running Pod images the last audit found would be denied now (fail) or are at risk (warn: non-enforcing policy failure, trust data expiring within the window), by namespace and result.', () => this.auditCounts.values());
  readonly auditRuns = new Counter('trustgate_audit_runs_total', 'Audit rounds by outcome (ok, error).');
  readonly auditLastRun = new Gauge('trustgate_audit_last_run_timestamp_seconds', 'When the last audit round finished (Unix seconds); absent before the first.', () => (this.auditLast ? [[{}, this.auditLast.at / 1000]] : []));
  readonly auditPods = new Gauge('trustgate_audit_pods', 'Running Pods the last audit checked.', () => (this.auditLast ? [[{}, this.auditLast.pods]] : []));
  readonly admissions = new Counter('trustgate_admissions_total', 'Admission decisions by operation, result (allowed, denied, invalid, unverified: allowed without verification), mode that decided it (enforce for denials; for allows the strongest failing warn/audit policy, else the strongest verifying policy; none when no policy judged it), and webhook.');
  readonly admissionDuration = new Histogram('trustgate_admission_duration_seconds', 'Time to answer one AdmissionReview.', SECONDS_BUCKETS);
  readonly verificationDuration = new Histogram('trustgate_verification_duration_seconds', 'Time admission waited for one image verdict.', SECONDS_BUCKETS);
  readonly cacheHits = new Counter('trustgate_cache_hits_total', 'Verified trust data served from the cache.');
  readonly cacheMisses = new Counter('trustgate_cache_misses_total', 'Verified trust data that had to be fetched.');
  readonly trustServerErrors = new Counter('trustgate_trust_server_errors_total', 'Failed requests to trust servers by server and kind of failure.');
  readonly denials = new Counter('trustgate_denials_total', 'Denied admissions by webhook and the cause of the first enforcing failure: trust-data (refused or stale trust data), transport (a trust server not reached or not answering well), policy (unsigned, no policy, an invalid policy), reference (an image reference that cannot be verified), internal (deadline, verifier).');
  readonly httpRequests = new Counter('trustgate_http_requests_total', 'HTTP requests by path and status code.');

  admission(labels: { operation: string; result: AdmissionResult; mode: DecisionMode; webhook: WebhookName }, seconds: number): void {
    this.admissions.inc({ operation: labels.operation, result: labels.result, mode: labels.mode, webhook: labels.webhook });
    this.admissionDuration.observe(seconds, { webhook: labels.webhook });
  }

  imageVerificationSeconds(seconds: number): void {
    this.verificationDuration.observe(seconds);
  }

  cacheHit(): void {
    this.cacheHits.inc();
  }

  cacheMiss(): void {
    this.cacheMisses.inc();
  }

  trustServerError(server: string, kind: string): void {
    this.trustServerErrors.inc({ server, kind });
  }

  httpRequest(path: string, code: number): void {
    this.httpRequests.inc({ path, code: String(code) });
  }

  denial(webhook: WebhookName, cause: FailureCause): void {
    this.denials.inc({ webhook, cause });
  }

  policyResult(policy: string, mode: string, result: string): void {
    this.policyResults.inc({ policy, mode, result });
  }

  rollbackRefused(server: string, repository: string): void {
    this.rollbackRefusals.inc({ server, repository });
  }

  trustDataVerified(key: string, data: TrustDataSeries): void {
    this.trustData.set(key, data);
  }

  trustDataForgotten(key: string): void {
    this.trustData.delete(key);
  }

  /** Records a finished audit round: findings per namespace and result. */
  audited(report: { pods: number; findings: Array<{ namespace: string; result: string }> }, at: Date): void {
    const counts = new Map<string, [Labels, number]>();
    for (const f of report.findings) {
      const key = `${f.namespace}\n${f.result}`;
      const seen = counts.get(key);
      counts.set(key, [{ namespace: f.namespace, result: f.result }, (seen?.[1] ?? 0) + 1]);
    }
    this.auditCounts = counts;
    this.auditLast = { at: at.getTime(), pods: report.pods };
    this.auditRuns.inc({ result: 'ok' });
  }

  /** Where the policy counts come from (read when scraped). */
  countPolicies(read: () => PolicyCount[]): void {
    this.policyCounts = read;
  }

  private *policyCountSeries(): Iterable<[Labels, number]> {
    let counts: PolicyCount[] = [];
    try {
      counts = this.policyCounts();
    } catch {
      // A scrape must not fail because one source of figures did.
    }
    for (const c of counts) yield [{ kind: c.kind, state: c.state }, c.count];
  }

  /** One series per server, repository and role; two root pins for one repository show the earlier expiry. */
  private *expirySeries(): Iterable<[Labels, number]> {
    const earliest = new Map<string, [Labels, number]>();
    for (const d of this.trustData.values()) {
      for (const e of d.expiries) {
        const labels = { server: d.server, repository: d.repository, role: e.role };
        const key = labelKey(labels);
        const t = e.expires.getTime() / 1000;
        const seen = earliest.get(key);
        if (!seen || t < seen[1]) earliest.set(key, [labels, t]);
      }
    }
    yield* earliest.values();
  }

  render(): string {
    return (
      [
        this.buildInfo,
        this.admissions,
        this.denials,
        this.admissionDuration,
        this.verificationDuration,
        this.cacheHits,
        this.cacheMisses,
        this.trustServerErrors,
        this.httpRequests,
        this.policies,
        this.policyResults,
        this.rollbackRefusals,
        this.trustDataExpiry,
        this.auditFindings,
        this.auditRuns,
        this.auditLastRun,
        this.auditPods,
      ]
        .map((m) => m.render())
        .concat(processMemory())
        .join('\n') + '\n'
    );
  }
}

/** Memory as the usual Prometheus process/Node.js names, read when scraped. */
function processMemory(): string[] {
  const m = process.memoryUsage();
  const gauge = (name: string, help: string, v: number) => [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`].join('\n');
  return [
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', m.rss),
    gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', m.heapUsed),
    gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes.', m.heapTotal),
    gauge('nodejs_external_memory_bytes', 'Memory outside the V8 heap held by JavaScript objects (Buffers), in bytes.', m.external),
  ];
}
