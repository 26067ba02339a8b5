// The Helm chart and the container image, checked without Helm or Docker (neither can run
// here): values against values.schema.json, every template rendered by the small renderer in
// test/support/render-chart.ts and parsed as YAML, the security-relevant content asserted,
// the chart's CRDs compared with crds/, and the Dockerfile's structure.
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { builtinModules } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parseServeArgs } from '../../webhook/src/cli/serve.js';
import { LOG_LEVELS } from '../../webhook/src/server/log.js';
import { validateSchema } from '../../webhook/src/policy/schema.js';
import { isEmpty, manifests, mergeValues, renderChart, TemplateError, type ManifestDoc, type RenderOptions } from '../support/render-chart.js';

// dist/test/unit -> repository root
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CHART = join(ROOT, 'charts', 'trustgate');
const RELEASE_NS = 'trust-ops';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object;
const defaults = YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
const chartMeta = YAML.parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as Obj;

function render(values: Record<string, unknown> = {}, extra: Omit<RenderOptions, 'values'> = {}) {
  const rendered = renderChart(CHART, { release: { name: 'trustgate', namespace: RELEASE_NS }, ...extra, values });
  return { rendered, docs: manifests(rendered) };
}

function ofKind(docs: ManifestDoc[], kind: string): Obj[] {
  return docs.filter((d) => d.doc.kind === kind).map((d) => d.doc as Obj);
}

function one(docs: ManifestDoc[], kind: string): Obj {
  const found = ofKind(docs, kind);
  expect(found, `exactly one ${kind}`).to.have.length(1);
  return found[0] as Obj;
}

function problems(values: Record<string, unknown>): string[] {
  return validateSchema(schema, values).map((p) => `${p.path}: ${p.message}`);
}

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Kubernetes label selector semantics for matchExpressions (NotIn/In/Exists/DoesNotExist). */
function selects(selector: Obj, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries((selector.matchLabels ?? {}) as Record<string, string>)) if (labels[k] !== v) return false;
  for (const e of (selector.matchExpressions ?? []) as Obj[]) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values as string[]).includes(value as string)) return false;
        break;
      case 'NotIn':
        if (has && (e.values as string[]).includes(value as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`unknown operator ${e.operator}`);
    }
  }
  return true;
}

function nsLabels(name: string, extra: Record<string, string> = {}): Record<string, string> {
  return { 'kubernetes.io/metadata.name': name, ...extra };
}

/** Every leaf path of a values tree (maps are walked; lists and empty maps are leaves). */
function leafPaths(v: unknown, prefix = ''): string[] {
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    return Object.entries(v).flatMap(([k, x]) => leafPaths(x, prefix ? `${prefix}.${k}` : k));
  }
  return [prefix];
}

describe('chart: renderer (the template subset the chart may use)', () => {
  // The chart tests are only as good as the renderer; these pin down its Go template semantics.
  const run = (tpl: string, values: Record<string, unknown> = {}): string | undefined => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-chart-fixture-'));
    try {
      mkdirSync(join(dir, 'templates'));
      writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: fx\nversion: 1.2.3\nappVersion: "9.9"\n');
      writeFileSync(join(dir, 'values.yaml'), YAML.stringify(values));
      writeFileSync(join(dir, 'templates', '_h.tpl'), '{{- define "fx.hello" -}}\nhello {{ . }}\n{{- end }}\n');
      writeFileSync(join(dir, 'templates', 't.yaml'), tpl);
      return renderChart(dir).files.get(join('templates', 't.yaml'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('trims whitespace at {{- and -}} and nothing else', () => {
    expect(run('a:\n  {{- " x" }}\nb: {{ "y" -}}\n   z')).to.equal('a: x\nb: yz');
    expect(run('a: {{/* gone */}}1\n{{- /* gone too */ -}}\n2')).to.equal('a: 12');
  });

  it('evaluates if / else if / else by Go truthiness', () => {
    const tpl = '{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}';
    expect(run(tpl, { a: 1, b: 1 })).to.equal('A');
    expect(run(tpl, { a: 0, b: 'x' })).to.equal('B');
    expect(run(tpl, { a: [], b: {} })).to.equal('C');
  });

  it('short-circuits and / or like Go', () => {
    // Without short-circuiting, .Values.m.k would be read and refused as a missing key.
    expect(run('{{ if and .Values.m .Values.m.k }}y{{ else }}n{{ end }}', { m: {} })).to.equal('n');
    expect(run('{{ or .Values.a "fallback" }}', { a: '' })).to.equal('fallback');
  });

  it('ranges over lists and sorted maps, with variables and $', () => {
    expect(run('{{ range .Values.l }}[{{ . }}]{{ end }}', { l: ['p', 'q'] })).to.equal('[p][q]');
    expect(run('{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }}{{ $.Chart.Name }};{{ end }}', { m: { b: 2, a: 1 } })).to.equal('a=1fx;b=2fx;');
  });

  it('pipes the value as the last argument; default, quote, include, nindent, toYaml', () => {
    expect(run('{{ .Values.e | default "d" | quote }}', { e: '' })).to.equal('"d"');
    expect(run('k:{{ include "fx.hello" .Values.w | nindent 2 }}', { w: 'x' })).to.equal('k:\n  hello x');
    expect(run('m:{{ toYaml .Values.m | nindent 2 }}', { m: { b: [1], a: 'x' } })).to.equal('m:\n  a: x\n  b:\n    - 1');
  });

  it('refuses functions and actions outside the subset', () => {
    expect(() => run('{{ include "fx.hello" "x" | upper }}')).to.throw(TemplateError, /function "upper" is outside the supported template subset/);
    expect(() => run('{{ template "fx.hello" "x" }}')).to.throw(TemplateError, /"template" is outside the supported template subset/);
    expect(() => run('{{ .Capabilities.KubeVersion }}')).to.throw(TemplateError, /\.Capabilities does not exist/);
  });

  it('variables declared with := and reassigned with = across blocks', () => {
    expect(run('{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}')).to.equal('b');
    expect(() => run('{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}')).to.throw(TemplateError, /undefined variable \$y/);
  });

  it('refuses a key missing from the values (Helm would print nothing) and printing a map', () => {
    expect(() => run('{{ .Values.nope.deeper }}', { yes: 1 })).to.throw(TemplateError, /\.Values\.nope does not exist/);
    expect(() => run('{{ .Values.m }}', { m: { a: 1 } })).to.throw(TemplateError, /needs toYaml/);
  });

  it('fail and required stop rendering with their message', () => {
    expect(() => run('{{ fail "no way" }}')).to.throw(TemplateError, /fail: no way/);
    expect(() => run('{{ required "give x" .Values.x }}', { x: '' })).to.throw(TemplateError, /give x/);
  });

  it('merges values like helm -f: maps merge, lists replace, null deletes', () => {
    expect(mergeValues({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, d: null })).to.deep.equal({ a: { b: 1, c: [3] } });
    expect(isEmpty(0) && isEmpty('') && isEmpty([]) && isEmpty({}) && !isEmpty('0')).to.equal(true);
  });
});

describe('chart: values and schema', () => {
  it('Chart.yaml is a v2 application chart whose appVersion is the package version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Obj;
    expect(chartMeta.apiVersion).to.equal('v2');
    expect(chartMeta.name).to.equal('trustgate');
    expect(chartMeta.type).to.equal('application');
    expect(chartMeta.appVersion).to.equal(pkg.version);
    expect(chartMeta.version).to.match(/^\d+\.\d+\.\d+/);
  });

  it('the schema is draft-07 and values.yaml satisfies it', () => {
    expect((schema as Obj).$schema).to.equal('http://json-schema.org/draft-07/schema#');
    expect(problems(defaults)).to.deep.equal([]);
  });

  it('the schema declares every value and requires every section', () => {
    const props = (schema as Obj).properties as Obj;
    expect(Object.keys(props).sort()).to.deep.equal(Object.keys(defaults).sort());
    expect((schema as Obj).additionalProperties).to.equal(false);
    // No object section may accept unknown keys: a typo must fail `helm install`.
    const walk = (s: Obj, path: string) => {
      if (s.type === 'object' && s.properties) {
        expect(s.additionalProperties, `${path} additionalProperties`).to.equal(false);
        for (const [k, sub] of Object.entries(s.properties as Obj)) walk(sub as Obj, `${path}.${k}`);
      }
    };
    walk(schema as Obj, '');
  });

  const broken: [string, Record<string, unknown>, RegExp][] = [
    ['one replica (fails closed with nothing to fail over to)', { replicaCount: 1 }, /^replicaCount: must be at least 2/],
    ['a webhook timeout above the API server maximum', { webhook: { timeoutSeconds: 31 } }, /^webhook\.timeoutSeconds: must be at most 30/],
    ['an unknown TLS mode', { tls: { mode: 'selfsigned' } }, /^tls\.mode: must be one of/],
    ['an attempt to make the webhook fail open', { webhook: { failurePolicy: 'Ignore' } }, /^webhook\.failurePolicy: unknown field/],
    ['a Secret grant without names (would allow every Secret)', { rbac: { secrets: [{ namespace: 'a', names: [] }] } }, /^rbac\.secrets\[0\]\.names: must not be empty/],
    ['a truncated digest', { image: { digest: 'sha256:abc' } }, /^image\.digest: .* does not match/],
    ['a log level the binary does not know', { server: { logLevel: 'verbose' } }, /^server\.logLevel: must be one of/],
    ['a memory request that is not a quantity', { resources: { requests: { memory: 'lots' } } }, /^resources\.requests\.memory: .* does not match/],
    ['a deadline given as a string', { server: { deadlineSeconds: '8' } }, /^server\.deadlineSeconds: must be an integer/],
    ['a privileged port for the container', { server: { port: 443 } }, /^server\.port: must be at least 1024/],
    ['a cert-manager issuerRef without a name', { tls: { certManager: { issuerRef: { kind: 'ClusterIssuer' } } } }, /^tls\.certManager\.issuerRef: must match at least one/],
    ['a CIDR that is not one', { networkPolicy: { egressCIDRs: ['10.0.0.0'] } }, /^networkPolicy\.egressCIDRs\[0\]: .* does not match/],
  ];
  for (const [what, override, expected] of broken) {
    it(`rejects ${what}`, () => {
      const found = problems(mergeValues(defaults, override));
      expect(found.some((p) => expected.test(p)), found.join('\n')).to.equal(true);
    });
  }

  it('README lists every value with its default, and install and recovery commands', () => {
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    const rows = new Map<string, string[]>();
    for (const line of readme.split('\n')) {
      const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line);
      if (m) rows.set(m[1] as string, (m[2] as string).split('|').map((c) => c.trim()));
    }
    for (const path of leafPaths(defaults)) {
      const row = rows.get(path);
      expect(row, `README values table row for ${path}`).to.not.equal(undefined);
      const value = path.split('.').reduce<unknown>((o, k) => (o as Obj)[k], defaults);
      const [type, def, description] = row as string[];
      const actual = Array.isArray(value) ? 'list' : Number.isInteger(value) ? 'integer' : typeof value;
      expect(type === 'quantity' ? 'string' : type, `${path} type`).to.equal(actual);
      expect(def, `${path} default`).to.equal(`\`${JSON.stringify(value)}\``);
      expect(description, `${path} description`).to.have.length.above(10);
    }
    for (const path of rows.keys()) expect(leafPaths(defaults), `README documents a value that does not exist: ${path}`).to.include(path);
    expect(readme).to.include('helm install trustgate');
    expect(readme).to.include('kubectl delete validatingwebhookconfiguration');
    expect(readme).to.include('kubectl delete mutatingwebhookconfiguration');
    expect(readme).to.include('trustgate.dev/ignore=true');
  });
});

describe('chart: rendering', () => {
  const variants: [string, Record<string, unknown>][] = [
    ['defaults', {}],
    ['cert-manager, NetworkPolicy and ServiceMonitor', { tls: { mode: 'certManager' }, networkPolicy: { enabled: true }, serviceMonitor: { enabled: true } }],
    ['existing TLS secret, Secret grants, exemptions', {
      tls: { mode: 'existing', existing: { secretName: 'my-tls', caBundle: 'Q0E=' } },
      rbac: { secrets: [{ namespace: 'payments', names: ['notary-creds'] }, { namespace: RELEASE_NS, names: ['a', 'b'] }] },
      server: { exempt: ['registry.k8s.io/pause:3.9'], allowUnmatched: true },
    }],
  ];

  for (const [name, values] of variants) {
    it(`renders every template with ${name}: valid values, parseable YAML, well-formed objects`, () => {
      expect(problems(mergeValues(defaults, values))).to.deep.equal([]);
      const { rendered, docs } = render(values);
      const templates = readdirSync(join(CHART, 'templates')).filter((f) => !f.startsWith('_') && f !== 'NOTES.txt');
      expect([...rendered.files.keys()].sort()).to.deep.equal(templates.map((f) => join('templates', f)).sort());
      expect(rendered.notes).to.include('trustgate');
      const seen = new Set<string>();
      for (const { source, doc } of docs) {
        const d = doc as Obj;
        expect(d.apiVersion, `${source} apiVersion`).to.be.a('string');
        expect(d.kind, `${source} kind`).to.be.a('string');
        expect(d.metadata?.name, `${source} name`).to.match(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
        const key = `${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`;
        expect(seen.has(key), `duplicate ${key}`).to.equal(false);
        seen.add(key);
        const clusterScoped = ['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];
        if (!clusterScoped.includes(d.kind)) expect(d.metadata.namespace, `${key} namespace`).to.be.a('string');
        expect(d.metadata.labels?.['app.kubernetes.io/instance'], `${key} labels`).to.equal('trustgate');
      }
    });
  }

  it('renders the default set of objects, and the optional ones only when enabled', () => {
    const kinds = (docs: ManifestDoc[]) => docs.map((d) => d.doc.kind as string).sort();
    expect(kinds(render().docs)).to.deep.equal(
      [
        'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'PodDisruptionBudget',
        'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount', 'ValidatingWebhookConfiguration',
      ].sort(),
    );
    const all = kinds(render({ tls: { mode: 'certManager' }, networkPolicy: { enabled: true }, serviceMonitor: { enabled: true } }).docs);
    expect(all).to.include.members(['NetworkPolicy', 'ServiceMonitor', 'Certificate', 'Issuer']);
    expect(all).to.not.include('Secret');
  });
});

describe('chart: names', () => {
  const names = (values: Record<string, unknown>, release: string) => {
    const { docs } = render(values, { release: { name: release, namespace: RELEASE_NS } });
    const service = one(docs, 'Service').metadata.name as string;
    const hook = one(docs, 'ValidatingWebhookConfiguration').webhooks[0].clientConfig.service.name as string;
    const leaf = new X509Certificate(Buffer.from(one(docs, 'Secret').data['tls.crt'] as string, 'base64'));
    return { service, hook, certNamesService: leaf.checkHost(`${service}.${RELEASE_NS}.svc`) !== undefined };
  };

  it('derives every name from the release, and the webhook and certificate follow the Service', () => {
    expect(names({}, 'prod')).to.deep.equal({ service: 'prod-trustgate', hook: 'prod-trustgate', certNamesService: true });
    expect(names({}, 'trustgate-prod')).to.deep.equal({ service: 'trustgate-prod', hook: 'trustgate-prod', certNamesService: true });
    expect(names({ fullnameOverride: 'gate' }, 'prod')).to.deep.equal({ service: 'gate', hook: 'gate', certNamesService: true });
    const long = names({}, 'a'.repeat(60)).service;
    expect(long).to.have.length.at.most(63);
    expect(long).to.not.match(/-$/);
  });
});

describe('chart: webhook configurations', () => {
  let docs: ManifestDoc[];
  let mutating: Obj;
  let validating: Obj;
  let hooks: Obj[];
  let deployment: Obj;
  let container: Obj;
  before(() => {
    docs = render().docs;
    mutating = one(docs, 'MutatingWebhookConfiguration');
    validating = one(docs, 'ValidatingWebhookConfiguration');
    hooks = [...(mutating.webhooks as Obj[]), ...(validating.webhooks as Obj[])];
    deployment = one(docs, 'Deployment');
    container = deployment.spec.template.spec.containers[0] as Obj;
  });

  it('fail closed, have no side effects, speak v1 and match equivalent versions', () => {
    expect(hooks).to.have.length(2);
    for (const h of hooks) {
      expect(h.failurePolicy, h.name).to.equal('Fail');
      expect(h.sideEffects, h.name).to.equal('None');
      expect(h.admissionReviewVersions, h.name).to.deep.equal(['v1']);
      expect(h.matchPolicy, h.name).to.equal('Equivalent');
    }
  });

  it('time out later than the deadline trustgate is started with', () => {
    const deadline = Number(argValue(container.args as string[], '--deadline'));
    expect(deadline).to.equal(defaults.server && (defaults.server as Obj).deadlineSeconds);
    for (const h of hooks) {
      expect(h.timeoutSeconds, h.name).to.equal(10);
      expect(h.timeoutSeconds, h.name).to.be.above(deadline);
    }
  });

  it('refuse to render when the deadline does not fit inside the timeout', () => {
    expect(() => render({ server: { deadlineSeconds: 10 }, webhook: { timeoutSeconds: 10 } })).to.throw(TemplateError, /deadlineSeconds must be lower/);
    const d = render({ server: { deadlineSeconds: 4 }, webhook: { timeoutSeconds: 5 } }).docs;
    expect(argValue(one(d, 'Deployment').spec.template.spec.containers[0].args, '--deadline')).to.equal('4');
    expect(one(d, 'ValidatingWebhookConfiguration').webhooks[0].timeoutSeconds).to.equal(5);
  });

  it('skip kube-system, the release namespace, opted-out and listed namespaces, and nothing else', () => {
    const extra = render({ webhook: { excludeNamespaces: ['legacy'] } }).docs;
    for (const h of [...hooks, ...(one(extra, 'MutatingWebhookConfiguration').webhooks as Obj[])]) {
      const sel = h.namespaceSelector as Obj;
      expect(selects(sel, nsLabels('kube-system')), 'kube-system').to.equal(false);
      expect(selects(sel, nsLabels(RELEASE_NS)), 'release namespace').to.equal(false);
      expect(selects(sel, nsLabels('payments', { 'trustgate.dev/ignore': 'true' })), 'opted out').to.equal(false);
      expect(selects(sel, nsLabels('payments')), 'ordinary namespace').to.equal(true);
      expect(selects(sel, nsLabels('payments', { 'trustgate.dev/ignore': 'false' })), 'label not "true"').to.equal(true);
      expect(selects(sel, nsLabels('kube-public')), 'kube-public is still checked').to.equal(true);
      expect(h.objectSelector, 'no object selector a pod could use to opt itself out').to.equal(undefined);
    }
    const withLegacy = one(extra, 'ValidatingWebhookConfiguration').webhooks[0].namespaceSelector as Obj;
    expect(selects(withLegacy, nsLabels('legacy'))).to.equal(false);
    expect(selects(hooks[0]?.namespaceSelector as Obj, nsLabels('legacy'))).to.equal(true);
  });

  it('the mutating webhook pins pods and ephemeral containers and is re-invoked if needed', () => {
    const h = mutating.webhooks[0] as Obj;
    expect(h.reinvocationPolicy).to.equal('IfNeeded');
    expect(h.rules).to.deep.equal([
      { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods', 'pods/ephemeralcontainers'], scope: 'Namespaced' },
    ]);
    expect(h.clientConfig.service).to.deep.equal({ name: 'trustgate', namespace: RELEASE_NS, path: '/mutate', port: 443 });
  });

  it('the validating webhook checks pods, ephemeral containers and every workload kind', () => {
    const h = validating.webhooks[0] as Obj;
    const covered = (h.rules as Obj[]).flatMap((r) => {
      expect(r.operations).to.deep.equal(['CREATE', 'UPDATE']);
      expect(r.apiVersions).to.deep.equal(['v1']);
      return (r.resources as string[]).map((res) => `${r.apiGroups[0]}/${res}`);
    });
    expect(covered.sort()).to.deep.equal(
      [
        '/pods', '/pods/ephemeralcontainers', '/replicationcontrollers', 'apps/daemonsets', 'apps/deployments', 'apps/replicasets',
        'apps/statefulsets', 'batch/cronjobs', 'batch/jobs',
      ].sort(),
    );
    expect(h.clientConfig.service).to.deep.equal({ name: 'trustgate', namespace: RELEASE_NS, path: '/validate', port: 443 });
    const podsOnly = one(render({ webhook: { validateWorkloads: false } }).docs, 'ValidatingWebhookConfiguration').webhooks[0] as Obj;
    expect(podsOnly.rules).to.have.length(1);
    expect(podsOnly.rules[0].resources).to.deep.equal(['pods', 'pods/ephemeralcontainers']);
  });

  it('point at the Service, which forwards 443 to the container port the pods serve on', () => {
    const service = one(docs, 'Service');
    expect(service.metadata.name).to.equal(mutating.webhooks[0].clientConfig.service.name);
    const port = (service.spec.ports as Obj[]).find((p) => p.port === 443) as Obj;
    expect(port.targetPort).to.equal('https');
    const named = (container.ports as Obj[]).find((p) => p.name === 'https') as Obj;
    expect(named.containerPort).to.equal(8443);
    expect(argValue(container.args as string[], '--port')).to.equal('8443');
    expect(selects({ matchLabels: service.spec.selector }, deployment.spec.template.metadata.labels)).to.equal(true);
  });
});

describe('chart: TLS', () => {
  const tlsVolume = (docs: ManifestDoc[]) => {
    const spec = one(docs, 'Deployment').spec.template.spec as Obj;
    const c = spec.containers[0] as Obj;
    const mount = (c.volumeMounts as Obj[]).find((m) => m.name === 'tls') as Obj;
    const volume = (spec.volumes as Obj[]).find((v) => v.name === 'tls') as Obj;
    return { args: c.args as string[], mount, secretName: volume.secret.secretName as string };
  };

  it('generate: a CA and a serving certificate for the Service name, the CA in both webhooks', () => {
    const { docs } = render();
    const secret = one(docs, 'Secret');
    const { args, mount, secretName } = tlsVolume(docs);
    expect(secret.type).to.equal('kubernetes.io/tls');
    expect(secret.metadata.name).to.equal(secretName);
    expect(mount.readOnly).to.equal(true);
    expect(argValue(args, '--tls-cert')).to.equal(`${mount.mountPath}/tls.crt`);
    expect(argValue(args, '--tls-key')).to.equal(`${mount.mountPath}/tls.key`);

    const pem = (k: string) => Buffer.from(secret.data[k] as string, 'base64').toString('utf8');
    const ca = new X509Certificate(pem('ca.crt'));
    const leaf = new X509Certificate(pem('tls.crt'));
    expect(ca.ca).to.equal(true);
    expect(leaf.ca).to.equal(false);
    expect(leaf.verify(ca.publicKey)).to.equal(true);
    expect(leaf.checkIssued(ca)).to.equal(true);
    expect(leaf.checkHost(`trustgate.${RELEASE_NS}.svc`)).to.equal(`trustgate.${RELEASE_NS}.svc`);
    expect(leaf.checkHost('trustgate.elsewhere.svc')).to.equal(undefined);
    expect(leaf.checkPrivateKey(createPrivateKey(pem('tls.key')))).to.equal(true);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      expect(one(docs, kind).webhooks[0].clientConfig.caBundle, kind).to.equal(secret.data['ca.crt']);
    }
  });

  it('generate: trustgate serves the pair from the Secret, and the CA bundle verifies it for the Service name', async () => {
    const { docs } = render();
    const secret = one(docs, 'Secret');
    const { args, mount } = tlsVolume(docs);
    const dir = mkdtempSync(join(tmpdir(), 'tg-chart-serve-'));
    let child: ChildProcess | undefined;
    try {
      // Lay the Secret out as its volume would be, and run the container's arguments with a
      // policy directory instead of the cluster, on a free loopback port.
      mkdirSync(join(dir, 'tls'));
      mkdirSync(join(dir, 'policies'));
      for (const k of ['tls.crt', 'tls.key']) writeFileSync(join(dir, 'tls', k), Buffer.from(secret.data[k] as string, 'base64'));
      const local = args.slice(1).map((a) => (a.startsWith(`${mount.mountPath}/`) ? join(dir, 'tls', a.slice(mount.mountPath.length + 1)) : a));
      local.splice(local.indexOf('--kubernetes'), 1, '--policy-dir', join(dir, 'policies'));
      local.splice(local.indexOf('--port') + 1, 1, '0');
      local.splice(local.indexOf('--state-file') + 1, 1, join(dir, 'state.json'));
      local.push('--host', '127.0.0.1');
      const proc = spawn(process.execPath, [join(ROOT, 'dist', 'webhook', 'src', 'cli', 'main.js'), 'serve', ...local], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      const port = await new Promise<number>((resolvePort, reject) => {
        let out = '';
        const onData = (b: Buffer) => {
          out += b.toString();
          const m = /serving on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolvePort(Number(m[1]));
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.on('exit', (code) => reject(new Error(`trustgate serve exited with ${code}: ${out}`)));
        setTimeout(() => reject(new Error(`trustgate serve did not start: ${out}`)), 15_000).unref();
      });
      const ca = Buffer.from(secret.data['ca.crt'] as string, 'base64');
      const get = (servername: string) =>
        new Promise<number>((ok, fail) => {
          const req = httpsGet({ host: '127.0.0.1', port, path: '/healthz', ca, servername }, (res) => {
            res.resume();
            ok(res.statusCode as number);
          });
          req.on('error', fail);
        });
      expect(await get(`trustgate.${RELEASE_NS}.svc`)).to.equal(200);
      const wrongName = await get('trustgate.default.svc').catch((e: NodeJS.ErrnoException) => e.code);
      expect(wrongName).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      if (child?.pid !== undefined && child.exitCode === null) {
        const exited = new Promise((r) => child?.once('exit', r));
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generate: an upgrade keeps the pair already in the cluster', () => {
    const first = one(render().docs, 'Secret');
    const asked: string[] = [];
    const { docs } = render({}, {
      release: { name: 'trustgate', namespace: RELEASE_NS, isUpgrade: true },
      lookup: (apiVersion, kind, ns, name) => {
        asked.push(`${apiVersion}/${kind}/${ns}/${name}`);
        return kind === 'Secret' && name === first.metadata.name ? { data: first.data } : undefined;
      },
    });
    expect(asked).to.deep.equal([`v1/Secret/${RELEASE_NS}/trustgate-tls`]);
    expect(one(docs, 'Secret').data).to.deep.equal(first.data);
    expect(one(docs, 'ValidatingWebhookConfiguration').webhooks[0].clientConfig.caBundle).to.equal(first.data['ca.crt']);
    // A half-present Secret is not trusted: a new pair is made.
    const partial = render({}, { lookup: () => ({ data: { 'ca.crt': first.data['ca.crt'] } }) }).docs;
    expect(one(partial, 'Secret').data['ca.crt']).to.not.equal(first.data['ca.crt']);
  });

  it('certManager: a Certificate for the Service into the mounted Secret, CA injected from it', () => {
    const { docs } = render({ tls: { mode: 'certManager' } });
    expect(ofKind(docs, 'Secret')).to.have.length(0);
    const certs = ofKind(docs, 'Certificate');
    const serving = certs.find((c) => !c.spec.isCA) as Obj;
    const { secretName } = tlsVolume(docs);
    expect(serving.spec.secretName).to.equal(secretName);
    expect(serving.spec.dnsNames).to.include(`trustgate.${RELEASE_NS}.svc`);
    expect(serving.spec.usages).to.include('server auth');
    // Without an issuer given: self-signed issuer -> CA certificate -> CA issuer -> serving cert.
    const caCert = certs.find((c) => c.spec.isCA) as Obj;
    const issuers = ofKind(docs, 'Issuer');
    const caIssuer = issuers.find((i) => i.spec.ca) as Obj;
    expect(caIssuer.spec.ca.secretName).to.equal(caCert.spec.secretName);
    expect(serving.spec.issuerRef.name).to.equal(caIssuer.metadata.name);
    expect(issuers.find((i) => i.metadata.name === caCert.spec.issuerRef.name)?.spec.selfSigned).to.deep.equal({});
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const cfg = one(docs, kind);
      expect(cfg.metadata.annotations['cert-manager.io/inject-ca-from'], kind).to.equal(`${RELEASE_NS}/${serving.metadata.name}`);
      expect(cfg.webhooks[0].clientConfig.caBundle, kind).to.equal(undefined);
    }

    const given = render({ tls: { mode: 'certManager', certManager: { issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } } } }).docs;
    expect(ofKind(given, 'Issuer')).to.have.length(0);
    expect(one(given, 'Certificate').spec.issuerRef).to.deep.equal({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  });

  it('existing: mounts the named Secret and requires its CA bundle', () => {
    const { docs } = render({ tls: { mode: 'existing', existing: { secretName: 'my-tls', caBundle: 'Q0E=' } } });
    expect(tlsVolume(docs).secretName).to.equal('my-tls');
    expect(ofKind(docs, 'Secret')).to.have.length(0);
    expect(one(docs, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle).to.equal('Q0E=');
    expect(() => render({ tls: { mode: 'existing', existing: { secretName: 'my-tls', caBundle: '' } } })).to.throw(TemplateError, /caBundle is required/);
    expect(() => render({ tls: { mode: 'existing', existing: { secretName: '', caBundle: 'Q0E=' } } })).to.throw(TemplateError, /secretName is required/);
  });
});

describe('chart: Deployment', () => {
  let docs: ManifestDoc[];
  let deployment: Obj;
  let pod: Obj;
  let container: Obj;
  let podLabels: Record<string, string>;
  before(() => {
    docs = render().docs;
    deployment = one(docs, 'Deployment');
    pod = deployment.spec.template.spec as Obj;
    container = pod.containers[0] as Obj;
    podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  });

  it('runs 3 replicas spread over nodes and zones, never below 3 during a rollout', () => {
    expect(deployment.spec.replicas).to.equal(3);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).to.equal(0);
    const anti = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution as Obj[];
    expect(anti[0]?.podAffinityTerm.topologyKey).to.equal('kubernetes.io/hostname');
    expect(selects(anti[0]?.podAffinityTerm.labelSelector, podLabels)).to.equal(true);
    const keys = (pod.topologySpreadConstraints as Obj[]).map((t) => t.topologyKey);
    expect(keys).to.have.members(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
    for (const t of pod.topologySpreadConstraints as Obj[]) expect(selects(t.labelSelector, podLabels)).to.equal(true);
  });

  it('has a PodDisruptionBudget for its own pods that keeps 2 of 3 up', () => {
    const pdb = one(docs, 'PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).to.equal(1);
    expect(pdb.spec.minAvailable).to.equal(undefined);
    expect(selects(pdb.spec.selector, podLabels)).to.equal(true);
    expect(selects(deployment.spec.selector, podLabels)).to.equal(true);
  });

  it('runs as 65532 without privileges, capabilities or a writable root filesystem', () => {
    expect(pod.securityContext).to.include({ runAsNonRoot: true, runAsUser: 65532 });
    expect(pod.securityContext.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
    const sc = container.securityContext as Obj;
    expect(sc).to.include({ runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false });
    expect(sc.capabilities).to.deep.equal({ drop: ['ALL'] });
    expect(sc.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
    expect(pod.hostNetwork ?? false).to.equal(false);
  });

  it('writes only to emptyDirs (/tmp and the state directory); TLS is read-only', () => {
    const mounts = new Map((container.volumeMounts as Obj[]).map((m) => [m.mountPath as string, m]));
    const volumes = new Map((pod.volumes as Obj[]).map((v) => [v.name as string, v]));
    expect(volumes.get((mounts.get('/tmp') as Obj).name)?.emptyDir).to.be.an('object');
    const stateFile = argValue(container.args, '--state-file') as string;
    const stateMount = mounts.get(dirname(stateFile)) as Obj;
    expect(volumes.get(stateMount.name)?.emptyDir).to.be.an('object');
    for (const m of mounts.values()) {
      const v = volumes.get(m.name) as Obj;
      if (!v.emptyDir) expect(m.readOnly, m.mountPath).to.equal(true);
    }
  });

  it('probes /healthz and /readyz over HTTPS on the webhook port', () => {
    expect(container.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'https', scheme: 'HTTPS' });
    expect(container.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'https', scheme: 'HTTPS' });
  });

  it('has resource requests and limits', () => {
    expect(container.resources.requests).to.have.keys('cpu', 'memory');
    expect(container.resources.limits).to.include.keys('memory');
  });

  it('runs `trustgate serve --kubernetes` from the image the Dockerfile builds, tag = appVersion', () => {
    expect(container.image).to.equal(`ghcr.io/trustgate/trustgate:${chartMeta.appVersion}`);
    expect((container.args as string[]).slice(0, 2)).to.deep.equal(['serve', '--kubernetes']);
    expect(container.command).to.equal(undefined); // the image's ENTRYPOINT runs
    const pinned = one(render({ image: { tag: '1.2.3', digest: `sha256:${'a'.repeat(64)}` } }).docs, 'Deployment');
    expect(pinned.spec.template.spec.containers[0].image).to.equal(`ghcr.io/trustgate/trustgate:1.2.3@sha256:${'a'.repeat(64)}`);
  });

  it('starts `trustgate serve` with arguments its own parser accepts and reads as meant', () => {
    const args = container.args as string[];
    expect(args[0]).to.equal('serve');
    const opts = parseServeArgs(args.slice(1));
    expect(opts.kubernetes).to.equal(true);
    expect(opts.policyDir).to.equal(undefined);
    expect(opts.port).to.equal((container.ports as Obj[]).find((p) => p.name === 'https')?.containerPort);
    expect(opts.deadlineMs).to.equal(8000);
    const hook = one(docs, 'ValidatingWebhookConfiguration').webhooks[0] as Obj;
    expect(opts.deadlineMs).to.be.below(hook.timeoutSeconds * 1000);
    const tlsMount = (container.volumeMounts as Obj[]).find((m) => m.name === 'tls') as Obj;
    expect(opts.tlsCert).to.equal(`${tlsMount.mountPath}/tls.crt`);
    expect(opts.tlsKey).to.equal(`${tlsMount.mountPath}/tls.key`);
    expect(dirname(opts.stateFile as string)).to.equal((container.volumeMounts as Obj[]).find((m) => m.name === 'state')?.mountPath);
    expect(opts.allowUnmatched).to.equal(false);
    expect(opts.exempt).to.deep.equal([]);
    expect(opts.logLevel).to.equal('info');
    // Secrets named by ClusterTrustPolicies are read from the pod's own namespace.
    expect((container.env as Obj[]).find((e) => e.name === 'POD_NAMESPACE')?.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'metadata.namespace' } });

    const custom = one(
      render({ server: { port: 9443, deadlineSeconds: 3, logLevel: 'warn', allowUnmatched: true, exempt: ['registry.k8s.io/pause:3.9'] } }).docs,
      'Deployment',
    ).spec.template.spec.containers[0].args as string[];
    expect(parseServeArgs(custom.slice(1))).to.deep.include({ port: 9443, deadlineMs: 3000, logLevel: 'warn', allowUnmatched: true, exempt: ['registry.k8s.io/pause:3.9'] });
  });

  it('passes the trust-server limits to the binary, namespaced lower than cluster by default, and as overridden', () => {
    const MiB = 1024 * 1024;
    const opts = parseServeArgs((container.args as string[]).slice(1));
    const { cluster, namespaced } = opts.loadLimits;
    expect(namespaced.maxMetadataBytes).to.be.below(cluster.maxMetadataBytes);
    expect(namespaced.maxBytesInFlight).to.be.below(cluster.maxBytesInFlight);
    expect(namespaced.maxConcurrentLoads).to.be.below(cluster.maxConcurrentLoads);
    const limits = (defaults.server as Obj).trustServerLimits as Obj;
    expect(opts.loadLimits).to.deep.equal({
      workers: limits.workers,
      workerMemoryMb: limits.workerMemoryMb,
      maxTotalBytesInFlight: limits.totalMiBInFlight * MiB,
      cluster: { maxConcurrentLoads: limits.cluster.maxLoads, maxBytesInFlight: limits.cluster.maxMiBInFlight * MiB, maxMetadataBytes: limits.cluster.maxMetadataMiB * MiB },
      namespaced: { maxConcurrentLoads: limits.namespaced.maxLoads, maxBytesInFlight: limits.namespaced.maxMiBInFlight * MiB, maxMetadataBytes: limits.namespaced.maxMetadataMiB * MiB },
    });
    const custom = one(render({ server: { trustServerLimits: { workerMemoryMb: 96, namespaced: { maxMetadataMiB: 2 } } } }).docs, 'Deployment').spec.template.spec.containers[0].args as string[];
    const parsed = parseServeArgs(custom.slice(1)).loadLimits;
    expect(parsed.workerMemoryMb).to.equal(96);
    expect(parsed.namespaced).to.deep.equal({ maxConcurrentLoads: limits.namespaced.maxLoads, maxBytesInFlight: limits.namespaced.maxMiBInFlight * MiB, maxMetadataBytes: 2 * MiB });
    expect(problems(mergeValues(defaults, { server: { trustServerLimits: { namespaced: { maxMetadataMiB: 65 } } } })).join('\n')).to.match(/maxMetadataMiB: must be at most 64/);
  });

  it('offers exactly the log levels the binary knows', () => {
    const schemaLevels = ((schema as Obj).properties.server.properties.logLevel.enum as string[]).slice().sort();
    expect(schemaLevels).to.deep.equal([...LOG_LEVELS].sort());
  });

  it('passes the server values as flags', () => {
    const args = one(render({ server: { exempt: ['registry.k8s.io/pause:3.9', 'x/y:*'], allowUnmatched: true, logLevel: 'debug', extraArgs: ['--host', '0.0.0.0'] } }).docs, 'Deployment')
      .spec.template.spec.containers[0].args as string[];
    expect(args.filter((_, i) => args[i - 1] === '--exempt')).to.deep.equal(['registry.k8s.io/pause:3.9', 'x/y:*']);
    expect(args).to.include('--allow-unmatched');
    expect(argValue(args, '--log-level')).to.equal('debug');
    expect(args.slice(-2)).to.deep.equal(['--host', '0.0.0.0']);
    expect(container.args).to.not.include('--allow-unmatched');
  });
});

describe('chart: RBAC is least privilege', () => {
  const rules = (docs: ManifestDoc[]) =>
    docs
      .filter((d) => d.doc.kind === 'Role' || d.doc.kind === 'ClusterRole')
      .flatMap((d) => ((d.doc as Obj).rules as Obj[]).map((r): Obj => ({ kind: d.doc.kind as string, ns: (d.doc as Obj).metadata.namespace as string | undefined, ...r })));

  let withSecrets: ManifestDoc[];
  before(() => {
    withSecrets = render({ rbac: { secrets: [{ namespace: 'payments', names: ['notary-creds'] }, { namespace: RELEASE_NS, names: ['cluster-creds'] }] } }).docs;
  });

  it('grants exactly: read policies, write their status, get/update one ConfigMap, get named Secrets', () => {
    const summary = rules(withSecrets)
      .map((r) => `${r.kind}${r.ns ? `@${r.ns}` : ''} ${r.apiGroups.join(',')} ${r.resources.join(',')} ${(r.resourceNames ?? []).join(',')} ${r.verbs.join(',')}`)
      .sort();
    expect(summary).to.deep.equal(
      [
        'ClusterRole trustgate.dev trustpolicies,clustertrustpolicies  get,list,watch',
        'ClusterRole trustgate.dev trustpolicies/status,clustertrustpolicies/status  patch,update',
        `Role@${RELEASE_NS}  configmaps trustgate-state get,update,patch`,
        'Role@payments  secrets notary-creds get',
        `Role@${RELEASE_NS}  secrets cluster-creds get`,
      ].sort(),
    );
  });

  it('has no wildcards, no Secret list/watch, and no Secret access unless named', () => {
    for (const docs of [render().docs, withSecrets]) {
      for (const r of rules(docs)) {
        for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames']) {
          expect(r[field] ?? [], `${field} of ${JSON.stringify(r)}`).to.not.include('*');
        }
        if ((r.resources as string[]).includes('secrets')) {
          expect(r.verbs).to.deep.equal(['get']);
          expect(r.resourceNames).to.be.an('array').that.is.not.empty;
          expect(r.kind).to.equal('Role');
        }
      }
    }
    expect(rules(render().docs).some((r) => (r.resources as string[]).includes('secrets'))).to.equal(false);
  });

  it('binds every Role to the webhook ServiceAccount and the ConfigMap role to the chart ConfigMap', () => {
    const sa = one(withSecrets, 'ServiceAccount');
    const roles = [...ofKind(withSecrets, 'Role'), ...ofKind(withSecrets, 'ClusterRole')];
    const bindings = [...ofKind(withSecrets, 'RoleBinding'), ...ofKind(withSecrets, 'ClusterRoleBinding')];
    expect(bindings).to.have.length(roles.length);
    for (const b of bindings) {
      expect(b.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: RELEASE_NS }]);
      const role = roles.find((r) => r.kind === b.roleRef.kind && r.metadata.name === b.roleRef.name && r.metadata.namespace === b.metadata.namespace);
      expect(role, `role for ${b.metadata.name}`).to.not.equal(undefined);
    }
    expect(one(withSecrets, 'Deployment').spec.template.spec.serviceAccountName).to.equal(sa.metadata.name);
    const cm = one(withSecrets, 'ConfigMap');
    expect(cm.data).to.equal(undefined); // so upgrades keep what trustgate wrote
    expect(cm.metadata.annotations['helm.sh/resource-policy']).to.equal('keep');
  });

  it('refuses Secret grants that would widen: no names, or one namespace twice', () => {
    expect(() => render({ rbac: { secrets: [{ namespace: 'a', names: [] }] } })).to.throw(TemplateError, /empty resourceNames/);
    expect(() => render({ rbac: { secrets: [{ namespace: 'a', names: ['x'] }, { namespace: 'a', names: ['y'] }] } })).to.throw(TemplateError, /each namespace once/);
  });
});

describe('chart: NetworkPolicy and ServiceMonitor', () => {
  it('NetworkPolicy: ingress only to the webhook port, egress only to DNS, the API server and trust servers', () => {
    const { docs } = render({ networkPolicy: { enabled: true } });
    const np = one(docs, 'NetworkPolicy');
    const podLabels = one(docs, 'Deployment').spec.template.metadata.labels;
    expect(selects(np.spec.podSelector, podLabels)).to.equal(true);
    expect(np.spec.policyTypes).to.have.members(['Ingress', 'Egress']);
    expect(np.spec.ingress).to.deep.equal([{ ports: [{ port: 8443, protocol: 'TCP' }] }]);
    const egress = np.spec.egress as Obj[];
    const ports = egress.flatMap((e) => (e.ports as Obj[]).map((p) => `${p.protocol}/${p.port}`));
    expect(ports.sort()).to.deep.equal(['TCP/53', 'UDP/53', 'TCP/443', 'TCP/6443', 'TCP/443', 'TCP/4443'].sort());
    for (const e of egress) expect(e.ports, 'every egress rule limits ports').to.be.an('array').that.is.not.empty;

    const limited = one(render({ networkPolicy: { enabled: true, egressCIDRs: ['10.0.0.0/8'], trustServerPorts: [8443] } }).docs, 'NetworkPolicy');
    const tcp = (limited.spec.egress as Obj[]).find((e) => e.to) as Obj;
    expect(tcp.to).to.deep.equal([{ ipBlock: { cidr: '10.0.0.0/8' } }]);
    expect((tcp.ports as Obj[]).map((p) => p.port)).to.include(8443);
  });

  it('ServiceMonitor: scrapes /metrics over HTTPS, verifying with the webhook CA', () => {
    const { docs } = render({ serviceMonitor: { enabled: true, labels: { release: 'prom' } } });
    const sm = one(docs, 'ServiceMonitor');
    const service = one(docs, 'Service');
    expect(sm.metadata.labels.release).to.equal('prom');
    expect(selects(sm.spec.selector, service.metadata.labels)).to.equal(true);
    const ep = sm.spec.endpoints[0] as Obj;
    expect(ep).to.include({ port: 'https', path: '/metrics', scheme: 'https' });
    expect(ep.tlsConfig.insecureSkipVerify).to.equal(undefined);
    expect(ep.tlsConfig.serverName).to.equal(`trustgate.${RELEASE_NS}.svc`);
    expect(ep.tlsConfig.ca.secret).to.deep.equal({ name: one(docs, 'Secret').metadata.name, key: 'ca.crt' });
  });
});

describe('chart: NOTES.txt', () => {
  it('names the namespace and the webhook configurations to delete when every replica is down', () => {
    const { rendered } = render();
    expect(rendered.notes).to.include(`-n ${RELEASE_NS} rollout status deployment/trustgate`);
    expect(rendered.notes).to.include('kubectl delete mutatingwebhookconfiguration trustgate');
    expect(rendered.notes).to.include('kubectl delete validatingwebhookconfiguration trustgate');
    expect(rendered.notes).to.include('kubectl label namespace NAME trustgate.dev/ignore=true');
    expect(rendered.notes).to.include('Images that no TrustPolicy');
    expect(render({ server: { allowUnmatched: true } }).rendered.notes).to.not.include('Images that no TrustPolicy');
  });
});

describe('chart: CRDs are the files in crds/', () => {
  const crdDir = join(ROOT, 'crds');
  const chartCrds = join(CHART, 'crds');
  const sources = readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f) && statSync(join(crdDir, f)).isFile()).sort();

  it('ships exactly the CRD manifests, not the examples', () => {
    expect(sources.length).to.be.at.least(2);
    expect(readdirSync(chartCrds).sort()).to.deep.equal(sources);
    // Helm installs every manifest under the chart's crds/ on install: examples there would be
    // created as real policies, so the directory holds CRDs only.
    for (const f of sources) {
      const docs = YAML.parseAllDocuments(readFileSync(join(chartCrds, f), 'utf8')).map((d) => d.toJS() as Obj);
      for (const d of docs) expect(d.kind, f).to.equal('CustomResourceDefinition');
    }
  });

  it('each is a relative symlink to the file in crds/ with the same bytes', () => {
    for (const f of sources) {
      const link = join(chartCrds, f);
      expect(lstatSync(link).isSymbolicLink(), `${f} is a symlink`).to.equal(true);
      const target = readlinkSync(link);
      expect(isAbsolute(target), `${f} -> ${target} is relative`).to.equal(false);
      expect(relative(ROOT, resolve(chartCrds, target))).to.equal(join('crds', f));
      expect(readFileSync(link).equals(readFileSync(join(crdDir, f)))).to.equal(true);
    }
  });

  it('git records them as symlinks, not copies that could drift', () => {
    const out = execFileSync('git', ['ls-files', '-s', '--', 'charts/trustgate/crds'], { cwd: ROOT, encoding: 'utf8' });
    const modes = new Map(out.trim().split('\n').filter(Boolean).map((l) => [l.split('\t')[1] as string, l.split(' ')[0] as string]));
    expect([...modes.keys()].sort()).to.deep.equal(sources.map((f) => `charts/trustgate/crds/${f}`));
    for (const [path, mode] of modes) expect(mode, path).to.equal('120000');
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  // Instructions with continuation lines joined, comments dropped.
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([A-Z]+)\s+(.*)$/.exec(l);
      if (!m) throw new Error(`not an instruction: ${l}`);
      return { op: m[1] as string, arg: (m[2] as string).trim() };
    });
  const stages: { from: string; name?: string; body: { op: string; arg: string }[] }[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.arg) as RegExpExecArray;
      stages.push({ from: m[1] as string, name: m[2], body: [] });
    } else {
      expect(stages.length, `${ins.op} before FROM`).to.be.above(0);
      stages[stages.length - 1]?.body.push(ins);
    }
  }
  const [build, final] = stages as [(typeof stages)[0], (typeof stages)[0]];
  const args = (stage: (typeof stages)[0], op: string) => stage.body.filter((i) => i.op === op).map((i) => i.arg);

  it('has a build stage and a runtime stage, both on node:20-bookworm-slim', () => {
    expect(stages).to.have.length(2);
    for (const s of stages) expect(s.from).to.equal('node:20-bookworm-slim');
    expect(build.name).to.be.a('string');
  });

  it('build stage: npm ci (all dependencies) then npm run build', () => {
    const runs = args(build, 'RUN');
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r));
    const b = runs.findIndex((r) => /\bnpm run build\b/.test(r));
    expect(ci).to.be.at.least(0);
    expect(runs[ci]).to.not.include('--omit=dev');
    expect(b).to.be.above(ci);
  });

  it('runtime stage: production dependencies only, the compiled webhook and the CRDs', () => {
    const runs = args(final, 'RUN');
    const installs = runs.filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    expect(installs).to.have.length(1);
    expect(installs[0]).to.match(/\bnpm ci\b/);
    expect(installs[0]).to.include('--omit=dev');
    expect(installs[0]).to.include('--ignore-scripts');
    const copies = args(final, 'COPY');
    expect(copies).to.include(`--from=${build.name} /src/dist/webhook ./dist/webhook`);
    expect(copies).to.include('crds ./crds');
    for (const c of copies) {
      expect(c, 'no dev tree copied from the build stage').to.not.match(/node_modules|dist\/test|dist\s|\/src\/dist\s|\s\.\s/);
    }
  });

  it('runs as 65532 the command the chart expects, exposing 8443', () => {
    const users = args(final, 'USER');
    expect(users[users.length - 1]).to.match(/^65532(:65532)?$/);
    const order = final.body.map((i) => i.op);
    expect(order.lastIndexOf('USER')).to.be.above(order.lastIndexOf('RUN'));
    expect(JSON.parse(args(final, 'ENTRYPOINT')[0] as string)).to.deep.equal(['node', 'dist/webhook/src/cli/main.js']);
    expect(JSON.parse(args(final, 'CMD')[0] as string)).to.deep.equal(['serve', '--kubernetes']);
    expect(args(final, 'EXPOSE')).to.deep.equal(['8443']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Obj;
    expect(pkg.bin.trustgate).to.equal('dist/webhook/src/cli/main.js');
  });

  it('the ENTRYPOINT exists after `npm run build`, and what dist/webhook imports is a production dependency', () => {
    expect(existsSync(join(ROOT, 'dist', 'webhook', 'src', 'cli', 'main.js'))).to.equal(true);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Obj;
    const prod = new Set(Object.keys(pkg.dependencies as Obj));
    const builtins = new Set(builtinModules);
    const files: string[] = [];
    const walkDir = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walkDir(join(d, e.name));
        else if (e.name.endsWith('.js')) files.push(join(d, e.name));
      }
    };
    walkDir(join(ROOT, 'dist', 'webhook'));
    expect(files.length).to.be.above(5);
    const bad: string[] = [];
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      for (const m of src.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s*['"]([^'"]+)['"]/gm)) {
        const spec = (m[1] ?? m[2] ?? m[3]) as string;
        if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string);
        if (!prod.has(name)) bad.push(`${relative(ROOT, f)} imports ${spec}`);
      }
    }
    expect(bad, 'imports the runtime image would not have').to.deep.equal([]);
  });

  it('.dockerignore lets in only what the Dockerfile copies', () => {
    const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(rules[0]).to.equal('*');
    const allowed = rules.filter((r) => r.startsWith('!')).map((r) => r.slice(1).replace(/\/$/, ''));
    const sources = stages
      .flatMap((s) => s.body.filter((i) => i.op === 'COPY' && !i.arg.startsWith('--from')))
      .flatMap((i) => i.arg.split(/\s+/).slice(0, -1));
    for (const s of sources) expect(allowed, `${s} reaches the build context`).to.include(s.replace(/\/$/, ''));
    for (const a of allowed) expect(existsSync(join(ROOT, a)), `${a} exists`).to.equal(true);
    expect(allowed).to.not.include.members(['node_modules', 'dist', '.stack', 'test', '.git']);
  });
});
