// The chart's operator views (issue 14), rendered by real Helm: RBAC that grows by exactly
// Events, Pods and the Lease; the metrics port; the PrometheusRule and the Grafana dashboard,
// whose queries may only name metrics the server exports; the PolicyReport CRD, which the
// reports trustgate writes must satisfy.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateSchema } from '../../webhook/src/policy/schema.js';
import { policyReport } from '../../webhook/src/kube/policy-reports.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { CHART, helms, ofKind, RELEASE_NS, template, type Obj } from '../support/helm.js';

const HELMS = await helms();

/** Every series name the server exports (histograms as _bucket, _sum, _count). */
function exportedNames(): Set<string> {
  const names = new Set<string>();
  for (const m of new Metrics().render().matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1]! + s);
    else names.add(m[1]!);
  }
  return names;
}

/** The metric names a PromQL expression reads that the server does not export. */
export function unknownMetrics(expr: string, exported: Set<string>): string[] {
  const named = [...expr.matchAll(/\b((?:trustgate|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
  return [...new Set(named)].filter((n) => !exported.has(n));
}

const DASHBOARD = JSON.parse(readFileSync(join(CHART, 'files', 'dashboards', 'trustgate.json'), 'utf8')) as Obj;

describe('chart: operator views', () => {
  const exported = exportedNames();

  it('the dashboard queries only metrics the server exports, and has the panels operators need', () => {
    const exprs = (DASHBOARD.panels as Obj[]).flatMap((p) => (p.targets as Obj[]).map((t) => ({ panel: p.title as string, expr: t.expr as string })));
    for (const { panel, expr } of exprs) expect(unknownMetrics(expr, exported), `${panel}: ${expr}`).to.deep.equal([]);
    const all = exprs.map((e) => e.expr).join('\n');
    for (const needed of ['trustgate_admissions_total', 'trustgate_admission_duration_seconds_bucket', 'trustgate_trust_server_errors_total', 'trustgate_trust_data_expiry_timestamp_seconds', 'trustgate_audit_findings']) {
      expect(all).to.contain(needed);
    }
    // The check itself catches a panel that names a metric nobody exports.
    expect(unknownMetrics('rate(trustgate_admission_total[5m])', exported)).to.deep.equal(['trustgate_admission_total']);
  });

  for (const h of HELMS) {
    describe(h.name, () => {
      it('grants create/patch on Events, list/watch on Pods, PolicyReports, and the audit Lease by name', () => {
        const docs = template(h);
        const cr = ofKind(docs, 'ClusterRole')[0]!;
        const rules = (cr.rules as Obj[]).map((r) => `${r.apiGroups.join(',')} ${r.resources.join(',')} ${r.verbs.join(',')}`);
        expect(rules).to.include.members(['events.k8s.io events create,patch', ' pods list,watch', 'wgpolicyk8s.io policyreports get,create,update,delete']);
        const lease = ofKind(docs, 'Role').find((r) => r.metadata.name === 'trustgate-audit-lease')!;
        expect(lease.metadata.namespace).to.equal(RELEASE_NS);
        expect(lease.rules).to.deep.equal([
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['trustgate-audit'], verbs: ['get', 'update'] },
        ]);
        expect(ofKind(docs, 'RoleBinding').some((b) => b.roleRef.name === 'trustgate-audit-lease')).to.equal(true);
        const c = ofKind(docs, 'Deployment')[0]!.spec.template.spec.containers[0];
        const args = c.args as string[];
        expect(args[args.indexOf('--audit-interval') + 1]).to.equal('3600');
        expect(args[args.indexOf('--expiry-warning') + 1]).to.equal('604800');
        expect(args).to.not.include('--metrics-port');
        expect((c.env as Obj[]).find((e) => e.name === 'TRUSTGATE_AUDIT_LEASE')?.value).to.equal('trustgate-audit');
        for (const kind of ['PrometheusRule', 'CustomResourceDefinition']) {
          expect(ofKind(docs, kind).filter((d) => d.metadata.name === 'trustgate' || d.metadata.name === 'policyreports.wgpolicyk8s.io'), kind).to.deep.equal([]);
        }
        expect(ofKind(docs, 'ConfigMap').some((m) => m.metadata.name === 'trustgate-dashboard')).to.equal(false);
      });

      it('with the audit off: no Pod access, no Lease, no --audit-interval; Events stay', () => {
        const docs = template(h, { audit: { enabled: false } });
        const rules = (ofKind(docs, 'ClusterRole')[0]!.rules as Obj[]).map((r) => r.resources.join(','));
        expect(rules).to.not.include('pods');
        expect(rules).to.not.include('policyreports');
        expect(rules).to.include('events');
        expect(ofKind(docs, 'Role').some((r) => r.metadata.name === 'trustgate-audit-lease')).to.equal(false);
        expect(ofKind(docs, 'Deployment')[0]!.spec.template.spec.containers[0].args).to.not.include('--audit-interval');
      });

      it('metrics.port: /metrics on its own plain-HTTP port, through Service, ServiceMonitor and NetworkPolicy', () => {
        const docs = template(h, { metrics: { port: 8080 }, serviceMonitor: { enabled: true }, networkPolicy: { enabled: true } });
        const c = ofKind(docs, 'Deployment')[0]!.spec.template.spec.containers[0];
        expect((c.args as string[]).slice((c.args as string[]).indexOf('--metrics-port'), (c.args as string[]).indexOf('--metrics-port') + 2)).to.deep.equal(['--metrics-port', '8080']);
        expect(c.ports).to.deep.include({ name: 'metrics', containerPort: 8080, protocol: 'TCP' });
        expect(ofKind(docs, 'Service')[0]!.spec.ports).to.deep.include({ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' });
        const ep = ofKind(docs, 'ServiceMonitor')[0]!.spec.endpoints[0];
        expect(ep).to.include({ port: 'metrics', path: '/metrics', scheme: 'http' });
        expect(ep.tlsConfig).to.equal(undefined);
        expect(ofKind(docs, 'NetworkPolicy')[0]!.spec.ingress[0].ports).to.deep.include({ port: 8080, protocol: 'TCP' });
      });

      it('PrometheusRule: alerts N days ahead and when expired, on exported metrics only', () => {
        const docs = template(h, { prometheusRule: { enabled: true, expiryWarningDays: 3, labels: { release: 'prom' } } });
        const rule = ofKind(docs, 'PrometheusRule')[0]!;
        expect(rule.metadata.labels.release).to.equal('prom');
        const alerts = (rule.spec.groups[0].rules as Obj[]);
        const byName = new Map(alerts.map((a) => [a.alert as string, a]));
        expect(byName.get('TrustgateTrustDataExpiringSoon')!.expr).to.contain('< 259200');
        expect(byName.get('TrustgateTrustDataExpired')!.expr).to.contain('<= 0');
        for (const a of alerts) expect(unknownMetrics(a.expr, exported), a.alert).to.deep.equal([]);
        // Prometheus templates survive Helm untouched.
        expect(byName.get('TrustgateTrustDataExpired')!.annotations.summary).to.contain('{{ $labels.repository }}');
      });

      it('grafanaDashboard: a ConfigMap with the dashboard JSON and the sidecar label', () => {
        const docs = template(h, { grafanaDashboard: { enabled: true } });
        const cm = ofKind(docs, 'ConfigMap').find((m) => m.metadata.name === 'trustgate-dashboard')!;
        expect(cm.metadata.labels.grafana_dashboard).to.equal('1');
        expect(JSON.parse(cm.data['trustgate.json'])).to.deep.equal(DASHBOARD);
      });

      it('audit.policyReports.installCRD: the PolicyReport CRD, which the reports trustgate writes satisfy', () => {
        const docs = template(h, { audit: { policyReports: { installCRD: true } } });
        const crd = ofKind(docs, 'CustomResourceDefinition').find((c) => c.metadata.name === 'policyreports.wgpolicyk8s.io')!;
        expect(crd.metadata.annotations['helm.sh/resource-policy']).to.equal('keep');
        const schema = crd.spec.versions[0].schema.openAPIV3Schema as Obj;
        const report = policyReport('shop', [
          { namespace: 'shop', pod: 'web', uid: 'u', uses: ['container app'], image: 'r.example/app:1@sha256:' + 'a'.repeat(64), result: 'fail', code: 'unsigned', policy: 'ClusterTrustPolicy/demo', message: 'not signed' },
          { namespace: 'shop', pod: 'api', uses: ['container api'], image: 'r.example/api:1', result: 'warn', code: 'expiring', policy: 'ClusterTrustPolicy/demo', message: 'timestamp expires in 3 days' },
        ], 4, new Date('2026-12-03T10:00:00Z'));
        expect(validateSchema(schema, report, { rejectUnknownFields: true })).to.deep.equal([]);
        const broken = { ...report, results: [{ ...(report['results'] as Obj[])[0], result: 'failed' }] };
        expect(validateSchema(schema, broken, { rejectUnknownFields: true })).to.not.deep.equal([]);
      });
    });
  }
});
