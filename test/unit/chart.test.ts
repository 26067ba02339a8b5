// The Helm chart, through the real Helm 3 and Helm 4 (test/support/helm.ts): helm lint
// --strict, helm template over every documented option with the rendered objects parsed and
// checked, refusals of invalid values (values.schema.json) and of the chart's own `fail`
// guards, the CRDs shipped as templates that upgrades update, the README's Helm commands run
// as --dry-run=client against releases in Helm's memory driver. (The image: dockerfile.test.ts.)
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import YAML from 'yaml';
import { parseServeArgs } from '../../webhook/src/cli/serve.js';
import { LOG_LEVELS } from '../../webhook/src/server/log.js';
import { validateSchema } from '../../webhook/src/policy/schema.js';
import { startSelfManagedTls } from '../../webhook/src/kube/self-managed-tls.js';
import { captureLogger } from '../fixtures/admission/support.js';
import { FakeKubeObjects, type Resource, type Rule } from '../support/fake-kube-objects.js';
import {
  CHART,
  HelmError,
  RELEASE_NS,
  ROOT,
  helm,
  helmDry,
  helms,
  installed,
  manifests,
  ofKind,
  startVersionServer,
  template,
  type Helm,
  type Manifest,
  type Obj,
  valuesFile,
} from '../support/helm.js';

const HELMS = await helms();

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
const defaults = YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Obj;
const chartMeta = YAML.parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as Obj;

function one(docs: Manifest[], kind: string): Obj {
  const found = ofKind(docs, kind);
  expect(found, `exactly one ${kind}`).to.have.length(1);
  return found[0] as Obj;
}

/** values.yaml with `override` merged in the way helm -f merges (maps merge, the rest replaces). */
function withDefaults(override: Obj, base: Obj = defaults): Obj {
  const out: Obj = structuredClone(base);
  for (const [k, v] of Object.entries(override)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? withDefaults(v as Obj, out[k] as Obj) : v;
  }
  return out;
}

function problems(values: Obj): string[] {
  return validateSchema(schema, values).map((p) => `${p.path}: ${p.message}`);
}

/** Helm's refusal: the HelmError it throws. */
function refusal(fn: () => unknown): HelmError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HelmError) return e;
    throw e;
  }
  expect.fail('Helm rendered values it should refuse');
}

/** How each Helm names a value's place in its schema errors: rbac.secrets[0].names. */
function helmPath(h: Helm, path: string): string {
  const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  return h.major >= 4 ? `'/${parts.join('/')}'` : parts.join('.');
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

const webhookConfigs = (docs: Manifest[]): Obj[] =>
  [...ofKind(docs, 'MutatingWebhookConfiguration'), ...ofKind(docs, 'ValidatingWebhookConfiguration')].flatMap((c) => c.webhooks as Obj[]);
/** The Pod and workload webhooks, the ones webhook.failurePolicy sets (not the policy webhook). */
const imageWebhooks = (docs: Manifest[]): Obj[] => webhookConfigs(docs).filter((w) => w.name === 'mutate.trustgate.dev' || w.name === 'validate.trustgate.dev');
const policyWebhook = (docs: Manifest[]): Obj => {
  const found = webhookConfigs(docs).filter((w) => w.name === 'policies.trustgate.dev');
  expect(found, 'one policy webhook').to.have.length(1);
  return found[0] as Obj;
};

// Every documented option, each in a set of values that Helm must render and lint.
const VARIANTS: [string, Obj][] = [
  ['defaults', {}],
  ['cert-manager, NetworkPolicy and ServiceMonitor', { tls: { mode: 'certManager' }, networkPolicy: { enabled: true }, serviceMonitor: { enabled: true } }],
  ['cert-manager with an issuer, CIDR-limited egress', {
    tls: { mode: 'certManager', certManager: { issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } } },
    networkPolicy: { enabled: true, egressCIDRs: ['10.0.0.0/8'], trustServerPorts: [8443] },
  }],
  ['existing TLS secret, Secret grants, exemptions, fail open', {
    tls: { mode: 'existing', existing: { secretName: 'my-tls', caBundle: 'Q0E=' } },
    rbac: { secrets: [{ namespace: 'payments', names: ['notary-creds'] }, { namespace: RELEASE_NS, names: ['a', 'b'] }] },
    server: { exempt: ['registry.k8s.io/pause:3.9'], allowUnmatched: true },
    webhook: { failurePolicy: 'Ignore' },
  }],
  ['HA and scheduling options, no PDB, no CRDs, an existing ServiceAccount', {
    replicaCount: 5,
    podDisruptionBudget: { enabled: false },
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['system'] }] }] } } },
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }],
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'system', effect: 'NoSchedule' }],
    priorityClassName: 'system-cluster-critical',
    podAnnotations: { 'example.com/a': 'b' },
    podLabels: { team: 'platform' },
    imagePullSecrets: [{ name: 'regcred' }],
    serviceAccount: { create: false, name: 'trustgate-sa' },
    crds: { install: false },
    state: { dir: '/var/run/trustgate', configMap: { name: 'trust-marks' } },
    webhook: { excludeNamespaces: ['legacy'], validateWorkloads: false },
    nameOverride: 'gate',
  }],
  ['PrometheusRule, Grafana dashboard, PolicyReport CRD', { prometheusRule: { enabled: true }, grafanaDashboard: { enabled: true }, audit: { policyReports: { installCRD: true } } }],
];

describe('chart: Chart.yaml, values and schema', () => {
  it('Chart.yaml is a v2 application chart whose appVersion is the package version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Obj;
    expect(chartMeta.apiVersion).to.equal('v2');
    expect(chartMeta.name).to.equal('trustgate');
    expect(chartMeta.type).to.equal('application');
    expect(chartMeta.appVersion).to.equal(pkg.version);
    expect(chartMeta.version).to.match(/^\d+\.\d+\.\d+/);
  });

  it('the schema is draft-07 and values.yaml and every variant satisfy it', () => {
    expect(schema.$schema).to.equal('http://json-schema.org/draft-07/schema#');
    expect(problems(defaults)).to.deep.equal([]);
    for (const [name, v] of VARIANTS) expect(problems(withDefaults(v)), name).to.deep.equal([]);
  });

  it('the schema declares every value and no section accepts unknown keys', () => {
    expect(Object.keys(schema.properties as Obj).sort()).to.deep.equal(Object.keys(defaults).sort());
    expect(schema.additionalProperties).to.equal(false);
    // A typo must fail `helm install`.
    const walk = (s: Obj, path: string) => {
      if (s.type === 'object' && s.properties) {
        expect(s.additionalProperties, `${path} additionalProperties`).to.equal(false);
        for (const [k, sub] of Object.entries(s.properties as Obj)) walk(sub as Obj, `${path}.${k}`);
      }
    };
    walk(schema, '');
  });

  it('README lists every value with its default', () => {
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
    expect(readme).to.include('kubectl delete validatingwebhookconfiguration');
    expect(readme).to.include('kubectl delete mutatingwebhookconfiguration');
    expect(readme).to.include('trustgate.dev/ignore=true');
  });

  it('offers exactly the log levels the binary knows', () => {
    const schemaLevels = (schema.properties.server.properties.logLevel.enum as string[]).slice().sort();
    expect(schemaLevels).to.deep.equal([...LOG_LEVELS].sort());
  });
});

// Values the schema refuses: [what, values, path of the problem, our validator's message].
const BROKEN: [string, Obj, string, RegExp][] = [
  ['one replica (fails closed with nothing to fail over to)', { replicaCount: 1 }, 'replicaCount', /^replicaCount: must be at least 2/],
  ['a webhook timeout above the API server maximum', { webhook: { timeoutSeconds: 31 } }, 'webhook.timeoutSeconds', /^webhook\.timeoutSeconds: must be at most 30/],
  ['an unknown TLS mode', { tls: { mode: 'selfsigned' } }, 'tls.mode', /^tls\.mode: must be one of/],
  ['a failure policy the API server does not know', { webhook: { failurePolicy: 'Open' } }, 'webhook.failurePolicy', /^webhook\.failurePolicy: must be one of "Fail", "Ignore"/],
  ['a misspelt value', { webhook: { failurPolicy: 'Ignore' } }, 'webhook', /^webhook\.failurPolicy: unknown field "failurPolicy" \(did you mean "failurePolicy"\?\)/],
  ['a Secret grant without names (would allow every Secret)', { rbac: { secrets: [{ namespace: 'a', names: [] }] } }, 'rbac.secrets[0].names', /^rbac\.secrets\[0\]\.names: must not be empty/],
  ['a truncated digest', { image: { digest: 'sha256:abc' } }, 'image.digest', /^image\.digest: .* does not match/],
  ['a log level the binary does not know', { server: { logLevel: 'verbose' } }, 'server.logLevel', /^server\.logLevel: must be one of/],
  ['a memory request that is not a quantity', { resources: { requests: { memory: 'lots' } } }, 'resources.requests.memory', /^resources\.requests\.memory: .* does not match/],
  ['a deadline given as a string', { server: { deadlineSeconds: '8' } }, 'server.deadlineSeconds', /^server\.deadlineSeconds: must be an integer/],
  ['a privileged port for the container', { server: { port: 443 } }, 'server.port', /^server\.port: must be at least 1024/],
  ['a cert-manager issuerRef without a name', { tls: { certManager: { issuerRef: { kind: 'ClusterIssuer' } } } }, 'tls.certManager.issuerRef', /^tls\.certManager\.issuerRef: must match at least one/],
  ['a CIDR that is not one', { networkPolicy: { egressCIDRs: ['10.0.0.0'] } }, 'networkPolicy.egressCIDRs[0]', /^networkPolicy\.egressCIDRs\[0\]: .* does not match/],
  ['crds.install that is not a boolean', { crds: { install: 'maybe' } }, 'crds.install', /^crds\.install: must be a boolean/],
];
// Each sets the same value, so they are refused one at a time, not all at once.
const BROKEN_DRAIN: [string, Obj, string, RegExp][] = [
  ['a negative drain period', { server: { drainSeconds: -1 } }, 'server.drainSeconds', /^server\.drainSeconds: must be at least 0/],
  ['a drain period above 300 s (the server refuses it)', { server: { drainSeconds: 301 } }, 'server.drainSeconds', /^server\.drainSeconds: must be at most 300/],
  ['a drain period given as a string', { server: { drainSeconds: '10' } }, 'server.drainSeconds', /^server\.drainSeconds: must be an integer/],
];

describe('chart: values.schema.json (ajv, as trustgate reads it)', () => {
  for (const [what, override, , expected] of [...BROKEN, ...BROKEN_DRAIN]) {
    it(`reports ${what}, with its path`, () => {
      const found = problems(withDefaults(override));
      expect(found.some((p) => expected.test(p)), found.join('\n')).to.equal(true);
    });
  }
  it('reports every problem at once', () => {
    const all = BROKEN.reduce<Obj>((acc, [, o]) => withDefaults(o, acc), defaults);
    const found = problems(all);
    for (const [what, , , expected] of BROKEN) {
      // Two cases set webhook.failurePolicy and both stay unknown or wrong; each must show.
      if (found.some((p) => expected.test(p))) continue;
      expect.fail(`${what} not reported among:\n${found.join('\n')}`);
    }
  });
});

for (const h of HELMS) {
  describe(`chart with ${h.name} (${h.version})`, () => {
    const render = (values: Obj = {}, args: string[] = []) => template(h, values, { args });

    describe('lint and render', () => {
      for (const [name, values] of VARIANTS) {
        it(`${name}: helm lint --strict passes, every object is well-formed`, () => {
          const out = helm(h, ['lint', '--strict', CHART, '--namespace', RELEASE_NS, '--values', valuesFile(values)]);
          expect(out).to.match(/1 chart\(s\) linted, 0 chart\(s\) failed/);
          const docs = render(values);
          const seen = new Set<string>();
          for (const { source, doc: d } of docs) {
            expect(source, `${d.kind} names its template`).to.match(/^trustgate\/templates\/[a-z-]+\.yaml$/);
            expect(d.apiVersion, `${source} apiVersion`).to.be.a('string');
            expect(d.kind, `${source} kind`).to.be.a('string');
            expect(d.metadata?.name, `${source} name`).to.match(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
            const key = `${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`;
            expect(seen.has(key), `duplicate ${key}`).to.equal(false);
            seen.add(key);
            const clusterScoped = ['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'CustomResourceDefinition'];
            if (!clusterScoped.includes(d.kind)) expect(d.metadata.namespace, `${key} namespace`).to.be.a('string');
            else expect(d.metadata.namespace, `${key} is cluster-scoped`).to.equal(undefined);
            expect(d.metadata.labels?.['app.kubernetes.io/instance'], `${key} labels`).to.equal('trustgate');
          }
        });
      }

      it('every template renders something in at least one variant', () => {
        const sources = new Set(VARIANTS.flatMap(([, v]) => render(v).map((m) => m.source)));
        const templates = readdirSync(join(CHART, 'templates')).filter((f) => f.endsWith('.yaml'));
        expect([...sources].sort()).to.deep.equal(templates.map((f) => `trustgate/templates/${f}`).sort());
      });

      it('renders the default set of objects, and the optional ones only when enabled', () => {
        const kinds = (docs: Manifest[]) => docs.map((d) => d.doc.kind as string).sort();
        expect(kinds(render())).to.deep.equal(
          [
            'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'CustomResourceDefinition', 'CustomResourceDefinition', 'Deployment',
            // Roles: the state ConfigMap, selfManaged TLS, the audit Lease.
            'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Role', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'RoleBinding', 'Service', 'ServiceAccount',
            'ValidatingWebhookConfiguration',
          ].sort(),
        );
        // generate: Helm's Secret instead of the selfManaged Role and RoleBinding.
        expect(kinds(render({ tls: { mode: 'generate' } }))).to.deep.equal(
          [
            'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'CustomResourceDefinition', 'CustomResourceDefinition', 'Deployment',
            'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount',
            'ValidatingWebhookConfiguration',
          ].sort(),
        );
        const operators = kinds(render(VARIANTS[VARIANTS.length - 1]![1]));
        expect(operators).to.include.members(['PrometheusRule', 'ConfigMap', 'CustomResourceDefinition']);
        expect(operators.filter((k) => k === 'CustomResourceDefinition')).to.have.length(3);
        const all = kinds(render(VARIANTS[1]![1]));
        expect(all).to.include.members(['NetworkPolicy', 'ServiceMonitor', 'Certificate', 'Issuer']);
        expect(all).to.not.include('Secret');
        const minimal = kinds(render(VARIANTS[4]![1]));
        expect(minimal).to.not.include.members(['PodDisruptionBudget', 'ServiceAccount', 'CustomResourceDefinition']);
      });
    });

    describe('refusals', () => {
      for (const [what, override, path] of [...BROKEN, ...BROKEN_DRAIN]) {
        it(`refuses ${what} (values.schema.json), naming ${path}`, () => {
          const e = refusal(() => render(override));
          expect(e.stderr).to.include("values don't meet the specifications of the schema");
          expect(e.stderr).to.include(helmPath(h, path));
        });
      }

      // The chart's own `fail` / `required` guards: helm lint reports them only as INFO and
      // passes, so only rendering sees them.
      const guards: [string, Obj, RegExp][] = [
        ['a deadline that does not fit inside the webhook timeout', { server: { deadlineSeconds: 10 }, webhook: { timeoutSeconds: 10 } }, /server\.deadlineSeconds must be lower than webhook\.timeoutSeconds/],
        ['tls.mode=existing without a CA bundle', { tls: { mode: 'existing', existing: { secretName: 'my-tls', caBundle: '' } } }, /tls\.existing\.caBundle is required when tls\.mode is existing/],
        ['tls.mode=existing without a Secret', { tls: { mode: 'existing', existing: { secretName: '', caBundle: 'Q0E=' } } }, /tls\.existing\.secretName is required when tls\.mode is existing/],
        ['Secret grants for one namespace twice', { rbac: { secrets: [{ namespace: 'a', names: ['x'] }, { namespace: 'a', names: ['y'] }] } }, /rbac\.secrets: list each namespace once/],
      ];
      for (const [what, values, message] of guards) {
        it(`refuses ${what} (the chart's fail guard)`, () => {
          const e = refusal(() => render(values));
          expect(e.stderr).to.match(/execution error at \(trustgate\/templates\//);
          expect(e.stderr).to.match(message);
        });
      }
    });

    describe('names', () => {
      // The certificate Helm makes (generate) and the one trustgate makes (selfManaged, from
      // its --tls-dns-name arguments) both name the Service.
      const names = (values: Obj, release: string) => {
        const docs = template(h, withDefaults(values, { tls: { mode: 'generate' } }), { release });
        const service = one(docs, 'Service').metadata.name as string;
        const hook = one(docs, 'ValidatingWebhookConfiguration').webhooks[0].clientConfig.service.name as string;
        const leaf = new X509Certificate(Buffer.from(one(docs, 'Secret').data['tls.crt'] as string, 'base64'));
        const self = template(h, values, { release });
        const selfArgs = parseServeArgs((one(self, 'Deployment').spec.template.spec.containers[0].args as string[]).slice(1));
        expect(selfArgs.tlsDnsNames, 'selfManaged --tls-dns-name').to.deep.equal([`${service}.${RELEASE_NS}.svc`, `${service}.${RELEASE_NS}`]);
        expect(selfArgs.tlsSecret, 'selfManaged --tls-secret').to.equal(`${service}-tls`);
        expect(selfArgs.mutatingWebhooks).to.deep.equal([one(self, 'MutatingWebhookConfiguration').metadata.name]);
        expect(selfArgs.validatingWebhooks).to.deep.equal([one(self, 'ValidatingWebhookConfiguration').metadata.name]);
        return { service, hook, certNamesService: leaf.checkHost(`${service}.${RELEASE_NS}.svc`) !== undefined };
      };

      it('derives every name from the release, and the webhook and certificate follow the Service', () => {
        expect(names({}, 'prod')).to.deep.equal({ service: 'prod-trustgate', hook: 'prod-trustgate', certNamesService: true });
        expect(names({}, 'trustgate-prod')).to.deep.equal({ service: 'trustgate-prod', hook: 'trustgate-prod', certNamesService: true });
        expect(names({ fullnameOverride: 'gate' }, 'prod')).to.deep.equal({ service: 'gate', hook: 'gate', certNamesService: true });
        const long = names({}, 'a'.repeat(53)).service;
        expect(long).to.have.length.at.most(63);
        expect(long).to.not.match(/-$/);
      });
    });

    describe('webhook configurations', () => {
      let docs: Manifest[];
      let mutating: Obj;
      let validating: Obj;
      let hooks: Obj[];
      let container: Obj;
      let deployment: Obj;
      before(() => {
        docs = render();
        mutating = one(docs, 'MutatingWebhookConfiguration');
        validating = one(docs, 'ValidatingWebhookConfiguration');
        hooks = imageWebhooks(docs);
        deployment = one(docs, 'Deployment');
        container = deployment.spec.template.spec.containers[0] as Obj;
      });

      it('Pod and workload webhooks fail closed by default, have no side effects, speak v1 and match equivalent versions', () => {
        expect(hooks).to.have.length(2);
        for (const hk of hooks) {
          expect(hk.failurePolicy, hk.name).to.equal('Fail');
          expect(hk.sideEffects, hk.name).to.equal('None');
          expect(hk.admissionReviewVersions, hk.name).to.deep.equal(['v1']);
          expect(hk.matchPolicy, hk.name).to.equal('Equivalent');
        }
      });

      it('webhook.failurePolicy=Ignore (values or --set) makes the Pod and workload webhooks fail open', () => {
        for (const docs2 of [render({ webhook: { failurePolicy: 'Ignore' } }), render({}, ['--set', 'webhook.failurePolicy=Ignore'])]) {
          const all = imageWebhooks(docs2);
          expect(all).to.have.length(2);
          for (const hk of all) expect(hk.failurePolicy, hk.name).to.equal('Ignore');
        }
        for (const hk of imageWebhooks(render({}, ['--set', 'webhook.failurePolicy=Fail']))) expect(hk.failurePolicy).to.equal('Fail');
      });

      it('the policy webhook checks TrustPolicies and ClusterTrustPolicies, always with failurePolicy Ignore', () => {
        const hk = policyWebhook(docs);
        expect(hk.clientConfig.service).to.deep.equal({ name: 'trustgate', namespace: RELEASE_NS, path: '/validate-policy', port: 443 });
        expect(hk.clientConfig.caBundle).to.equal(hooks[0]?.clientConfig.caBundle);
        expect(hk.rules).to.deep.equal([
          { apiGroups: ['trustgate.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['trustpolicies', 'clustertrustpolicies'], scope: '*' },
        ]);
        expect(hk.namespaceSelector, 'no namespace is skipped').to.equal(undefined);
        expect(hk).to.include({ sideEffects: 'None', failurePolicy: 'Ignore', timeoutSeconds: 10 });
        for (const policy of ['Fail', 'Ignore']) expect(policyWebhook(render({}, ['--set', `webhook.failurePolicy=${policy}`])).failurePolicy).to.equal('Ignore');
      });

      it('time out later than the deadline trustgate is started with', () => {
        const deadline = Number(argValue(container.args as string[], '--deadline'));
        expect(deadline).to.equal(defaults.server.deadlineSeconds);
        for (const hk of hooks) {
          expect(hk.timeoutSeconds, hk.name).to.equal(10);
          expect(hk.timeoutSeconds, hk.name).to.be.above(deadline);
        }
        const d = render({ server: { deadlineSeconds: 4 }, webhook: { timeoutSeconds: 5 } });
        expect(argValue(one(d, 'Deployment').spec.template.spec.containers[0].args, '--deadline')).to.equal('4');
        expect(one(d, 'ValidatingWebhookConfiguration').webhooks[0].timeoutSeconds).to.equal(5);
      });

      it('skip kube-system, the release namespace, opted-out and listed namespaces, and nothing else', () => {
        const extra = render({ webhook: { excludeNamespaces: ['legacy'] } });
        for (const hk of [...hooks, ...(one(extra, 'MutatingWebhookConfiguration').webhooks as Obj[])]) {
          const sel = hk.namespaceSelector as Obj;
          expect(selects(sel, nsLabels('kube-system')), 'kube-system').to.equal(false);
          expect(selects(sel, nsLabels(RELEASE_NS)), 'release namespace').to.equal(false);
          expect(selects(sel, nsLabels('payments', { 'trustgate.dev/ignore': 'true' })), 'opted out').to.equal(false);
          expect(selects(sel, nsLabels('payments')), 'ordinary namespace').to.equal(true);
          expect(selects(sel, nsLabels('payments', { 'trustgate.dev/ignore': 'false' })), 'label not "true"').to.equal(true);
          expect(selects(sel, nsLabels('kube-public')), 'kube-public is still checked').to.equal(true);
          expect(hk.objectSelector, 'no object selector a pod could use to opt itself out').to.equal(undefined);
        }
        const withLegacy = one(extra, 'ValidatingWebhookConfiguration').webhooks[0].namespaceSelector as Obj;
        expect(selects(withLegacy, nsLabels('legacy'))).to.equal(false);
        expect(selects(hooks[0]?.namespaceSelector as Obj, nsLabels('legacy'))).to.equal(true);
      });

      it('the mutating webhook pins pods and ephemeral containers and is re-invoked if needed', () => {
        const hk = mutating.webhooks[0] as Obj;
        expect(hk.reinvocationPolicy).to.equal('IfNeeded');
        expect(hk.rules).to.deep.equal([
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods', 'pods/ephemeralcontainers'], scope: 'Namespaced' },
        ]);
        expect(hk.clientConfig.service).to.deep.equal({ name: 'trustgate', namespace: RELEASE_NS, path: '/mutate', port: 443 });
      });

      it('the validating webhook checks pods, ephemeral containers and every workload kind', () => {
        const hk = validating.webhooks[0] as Obj;
        const covered = (hk.rules as Obj[]).flatMap((r) => {
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
        expect(hk.clientConfig.service).to.deep.equal({ name: 'trustgate', namespace: RELEASE_NS, path: '/validate', port: 443 });
        const podsOnly = one(render({ webhook: { validateWorkloads: false } }), 'ValidatingWebhookConfiguration').webhooks[0] as Obj;
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

    describe('TLS', () => {
      const tlsVolume = (docs: Manifest[]) => {
        const spec = one(docs, 'Deployment').spec.template.spec as Obj;
        const c = spec.containers[0] as Obj;
        const mount = (c.volumeMounts as Obj[]).find((m) => m.name === 'tls') as Obj;
        const volume = (spec.volumes as Obj[]).find((v) => v.name === 'tls') as Obj;
        return { args: c.args as string[], mount, secretName: volume.secret.secretName as string };
      };

      it("generate: Helm's CA and serving certificate for the Service name, the CA in both webhooks", () => {
        const docs = render({ tls: { mode: 'generate' } });
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
        // The policy webhook, too: the same CA, so the API server can call /validate-policy.
        expect(webhookConfigs(docs).map((w) => w.name)).to.include('policies.trustgate.dev');
        for (const hk of webhookConfigs(docs)) expect(hk.clientConfig.caBundle, hk.name).to.equal(secret.data['ca.crt']);
      });

      it('generate: trustgate serves the pair from the Secret, and the CA bundle verifies it for the Service name', async () => {
        const docs = render({ tls: { mode: 'generate' } });
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

      it('certManager: a Certificate for the Service into the mounted Secret, CA injected from it', () => {
        const docs = render({ tls: { mode: 'certManager' } });
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
        // cainjector fills every webhook of an annotated configuration, the policy webhook included.
        for (const hk of webhookConfigs(docs)) expect(hk.clientConfig, hk.name).to.not.have.property('caBundle');

        const given = render(VARIANTS[2]![1]);
        expect(ofKind(given, 'Issuer')).to.have.length(0);
        expect(one(given, 'Certificate').spec.issuerRef).to.deep.equal({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
      });

      it('existing: mounts the named Secret and puts its CA bundle in both webhooks', () => {
        const docs = render({ tls: { mode: 'existing', existing: { secretName: 'my-tls', caBundle: 'Q0E=' } } });
        expect(tlsVolume(docs).secretName).to.equal('my-tls');
        expect(ofKind(docs, 'Secret')).to.have.length(0);
        expect(webhookConfigs(docs).map((w) => w.name)).to.include('policies.trustgate.dev');
        for (const hk of webhookConfigs(docs)) expect(hk.clientConfig.caBundle, hk.name).to.equal('Q0E=');
      });
    });

    describe('Deployment', () => {
      let docs: Manifest[];
      let deployment: Obj;
      let pod: Obj;
      let container: Obj;
      let podLabels: Record<string, string>;
      before(() => {
        docs = render();
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

      it('HA and scheduling values reach the pod as given', () => {
        const v = VARIANTS[4]![1];
        const d = render(v);
        const dep = one(d, 'Deployment');
        const spec = dep.spec.template.spec as Obj;
        expect(dep.spec.replicas).to.equal(5);
        expect(spec.affinity).to.deep.equal(v.affinity);
        expect(spec.topologySpreadConstraints).to.deep.equal(v.topologySpreadConstraints);
        expect(spec.nodeSelector).to.deep.equal(v.nodeSelector);
        expect(spec.tolerations).to.deep.equal(v.tolerations);
        expect(spec.priorityClassName).to.equal('system-cluster-critical');
        expect(spec.imagePullSecrets).to.deep.equal([{ name: 'regcred' }]);
        expect(spec.serviceAccountName).to.equal('trustgate-sa');
        expect(dep.spec.template.metadata.annotations).to.deep.equal({ 'example.com/a': 'b' });
        expect(dep.spec.template.metadata.labels.team).to.equal('platform');
        expect(selects(dep.spec.selector, dep.spec.template.metadata.labels)).to.equal(true);
        expect(ofKind(d, 'PodDisruptionBudget')).to.have.length(0);
        expect(ofKind(d, 'ServiceAccount')).to.have.length(0);
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
        for (const d of [docs, render(VARIANTS[4]![1]), render({ tls: { mode: 'generate' } })]) {
          const p = one(d, 'Deployment').spec.template.spec as Obj;
          const c = p.containers[0] as Obj;
          const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.mountPath as string, m]));
          const volumes = new Map((p.volumes as Obj[]).map((v) => [v.name as string, v]));
          expect(volumes.get((mounts.get('/tmp') as Obj).name)?.emptyDir).to.be.an('object');
          const stateFile = argValue(c.args, '--state-file') as string;
          const stateMount = mounts.get(dirname(stateFile)) as Obj;
          expect(volumes.get(stateMount.name)?.emptyDir).to.be.an('object');
          for (const m of mounts.values()) {
            const v = volumes.get(m.name) as Obj;
            if (!v.emptyDir) expect(m.readOnly, m.mountPath).to.equal(true);
          }
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
        const pinned = one(render({ image: { tag: '1.2.3', digest: `sha256:${'a'.repeat(64)}` } }), 'Deployment');
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
        // selfManaged (the default): the certificate comes from the Secret trustgate keeps.
        expect(opts.tlsSecret).to.equal('trustgate-tls');
        expect(opts.tlsCert).to.equal(undefined);
        expect(opts.tlsKey).to.equal(undefined);
        const generated = one(render({ tls: { mode: 'generate' } }), 'Deployment').spec.template.spec.containers[0] as Obj;
        const tlsMount = (generated.volumeMounts as Obj[]).find((m) => m.name === 'tls') as Obj;
        const generatedOpts = parseServeArgs((generated.args as string[]).slice(1));
        expect(generatedOpts.tlsCert).to.equal(`${tlsMount.mountPath}/tls.crt`);
        expect(generatedOpts.tlsKey).to.equal(`${tlsMount.mountPath}/tls.key`);
        expect(generatedOpts.tlsSecret).to.equal(undefined);
        expect(dirname(opts.stateFile as string)).to.equal((container.volumeMounts as Obj[]).find((m) => m.name === 'state')?.mountPath);
        expect(opts.allowUnmatched).to.equal(false);
        expect(opts.exempt).to.deep.equal([]);
        expect(opts.logLevel).to.equal('info');
        // Secrets named by ClusterTrustPolicies are read from the pod's own namespace.
        expect((container.env as Obj[]).find((e) => e.name === 'POD_NAMESPACE')?.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'metadata.namespace' } });

        const custom = one(render({ server: { port: 9443, deadlineSeconds: 3, logLevel: 'warn', allowUnmatched: true, exempt: ['registry.k8s.io/pause:3.9'] } }), 'Deployment')
          .spec.template.spec.containers[0].args as string[];
        expect(parseServeArgs(custom.slice(1))).to.deep.include({ port: 9443, deadlineMs: 3000, logLevel: 'warn', allowUnmatched: true, exempt: ['registry.k8s.io/pause:3.9'] });
      });

      it('passes the server values as flags', () => {
        const args = one(render({ server: { exempt: ['registry.k8s.io/pause:3.9', 'x/y:*'], allowUnmatched: true, logLevel: 'debug', extraArgs: ['--host', '0.0.0.0'] } }), 'Deployment')
          .spec.template.spec.containers[0].args as string[];
        expect(args.filter((_, i) => args[i - 1] === '--exempt')).to.deep.equal(['registry.k8s.io/pause:3.9', 'x/y:*']);
        expect(args).to.include('--allow-unmatched');
        expect(argValue(args, '--log-level')).to.equal('debug');
        expect(args.slice(-2)).to.deep.equal(['--host', '0.0.0.0']);
        expect(container.args).to.not.include('--allow-unmatched');
      });
    });

    describe('RBAC is least privilege', () => {
      const rules = (docs: Manifest[]) =>
        docs
          .filter((d) => d.doc.kind === 'Role' || d.doc.kind === 'ClusterRole')
          .flatMap((d) => (d.doc.rules as Obj[]).map((r): Obj => ({ kind: d.doc.kind as string, ns: d.doc.metadata.namespace as string | undefined, ...r })));

      let withSecrets: Manifest[];
      before(() => {
        withSecrets = render({ rbac: { secrets: [{ namespace: 'payments', names: ['notary-creds'] }, { namespace: RELEASE_NS, names: ['cluster-creds'] }] } });
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
            // selfManaged TLS (the default): its one Secret and the caBundle of its own webhooks.
            `Role@${RELEASE_NS}  secrets  create`,
            `Role@${RELEASE_NS}  secrets trustgate-tls get,update,patch`,
            'ClusterRole admissionregistration.k8s.io mutatingwebhookconfigurations,validatingwebhookconfigurations trustgate get,update,patch',
            // The audit (audit.enabled): running Pods, its Lease, PolicyReports; Events always.
            'ClusterRole  pods  list,watch',
            'ClusterRole events.k8s.io events  create,patch',
            'ClusterRole wgpolicyk8s.io policyreports  get,create,update,delete',
            `Role@${RELEASE_NS} coordination.k8s.io leases  create`,
            `Role@${RELEASE_NS} coordination.k8s.io leases trustgate-audit get,update`,
          ].sort(),
        );
        const named = rules(render(VARIANTS[4]![1])).find((r) => (r.resources as string[]).includes('configmaps'));
        expect(named?.resourceNames).to.deep.equal(['trust-marks']);
      });

      it('has no wildcards, no Secret list/watch, and no Secret access unless named (but selfManaged create)', () => {
        const modes = [render(), withSecrets, render({ tls: { mode: 'generate' } }), render({ tls: { mode: 'certManager' } }), render(VARIANTS[3]![1])];
        for (const docs of modes) {
          for (const r of rules(docs)) {
            for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames']) {
              expect(r[field] ?? [], `${field} of ${JSON.stringify(r)}`).to.not.include('*');
            }
            if ((r.resources as string[]).includes('secrets')) {
              expect(r.kind).to.equal('Role');
              expect(r.resources, 'a Secret rule is about Secrets alone').to.deep.equal(['secrets']);
              expect(r.verbs).to.not.include.members(['list']);
              expect(r.verbs).to.not.include.members(['watch']);
              if (r.resourceNames === undefined) {
                // RBAC cannot limit create by name: the one unnamed grant, in the release
                // namespace, create alone, selfManaged only.
                expect(r.verbs, JSON.stringify(r)).to.deep.equal(['create']);
                expect(r.ns).to.equal(RELEASE_NS);
              } else {
                expect(r.resourceNames).to.be.an('array').that.is.not.empty;
              }
            }
          }
        }
        const secretRules = (docs: Manifest[]) => rules(docs).filter((r) => (r.resources as string[]).includes('secrets'));
        // Outside selfManaged, Secrets only as rbac.secrets names them, get only.
        expect(secretRules(render({ tls: { mode: 'generate' } }))).to.deep.equal([]);
        expect(secretRules(render({ tls: { mode: 'certManager' } }))).to.deep.equal([]);
        expect(secretRules(render(VARIANTS[3]![1])).map((r) => `${r.ns} ${r.resourceNames.join(',')} ${r.verbs.join(',')}`).sort()).to.deep.equal(
          ['payments notary-creds get', `${RELEASE_NS} a,b get`].sort(),
        );
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
    });

    describe('selfManaged TLS (the default)', () => {
      const release = 'prod';
      const fullname = 'prod-trustgate';
      let docs: Manifest[];
      let container: Obj;
      before(() => {
        docs = template(h, {}, { release });
        container = one(docs, 'Deployment').spec.template.spec.containers[0] as Obj;
      });

      it('renders no Secret and no caBundle: trustgate makes both', () => {
        expect(ofKind(docs, 'Secret')).to.deep.equal([]);
        const hooks = webhookConfigs(docs);
        expect(hooks.map((w) => w.name).sort()).to.deep.equal(['mutate.trustgate.dev', 'policies.trustgate.dev', 'validate.trustgate.dev']);
        // Not even an empty key: Helm's three-way merge would then wipe the live value.
        for (const hk of hooks) expect(hk.clientConfig, hk.name).to.not.have.property('caBundle');
        for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
          expect(one(docs, kind).metadata.annotations?.['cert-manager.io/inject-ca-from'], kind).to.equal(undefined);
        }
      });

      it('starts trustgate with its Secret, the Service names and its own webhook configurations, and mounts no TLS volume', () => {
        const args = container.args as string[];
        const pairs = (flag: string) => args.filter((_, i) => args[i - 1] === flag);
        expect(pairs('--tls-secret')).to.deep.equal([`${fullname}-tls`]);
        expect(pairs('--tls-dns-name')).to.deep.equal([`${fullname}.${RELEASE_NS}.svc`, `${fullname}.${RELEASE_NS}`]);
        expect(pairs('--mutating-webhook')).to.deep.equal([fullname]);
        expect(pairs('--validating-webhook')).to.deep.equal([fullname]);
        expect(one(docs, 'MutatingWebhookConfiguration').metadata.name).to.equal(fullname);
        expect(one(docs, 'ValidatingWebhookConfiguration').metadata.name).to.equal(fullname);
        expect(args).to.not.include.members(['--tls-cert']);
        expect(args).to.not.include.members(['--tls-key']);
        const pod = one(docs, 'Deployment').spec.template.spec as Obj;
        expect((pod.volumes as Obj[]).map((v) => v.name)).to.not.include('tls');
        expect((pod.volumes as Obj[]).filter((v) => v.secret)).to.deep.equal([]);
        expect((container.volumeMounts as Obj[]).map((m) => m.name)).to.not.include('tls');
        // The other modes still mount the Secret and give no selfManaged flags.
        for (const mode of [{ mode: 'generate' }, { mode: 'certManager' }, { mode: 'existing', existing: { secretName: 'my-tls', caBundle: 'Q0E=' } }]) {
          const other = one(template(h, { tls: mode }, { release }), 'Deployment').spec.template.spec as Obj;
          const otherArgs = other.containers[0].args as string[];
          expect((other.volumes as Obj[]).find((v) => v.name === 'tls')?.secret.secretName, mode.mode).to.equal(mode.mode === 'existing' ? 'my-tls' : `${fullname}-tls`);
          for (const flag of ['--tls-secret', '--tls-dns-name', '--mutating-webhook', '--validating-webhook']) expect(otherArgs, `${mode.mode} ${flag}`).to.not.include(flag);
        }
      });

      it('RBAC: create Secrets and get/update/patch its own Secret and webhook configurations by name, in this mode only', () => {
        const tlsRole = ofKind(docs, 'Role').find((r) => r.metadata.name === `${fullname}-tls`) as Obj;
        expect(tlsRole, `Role ${fullname}-tls`).to.not.equal(undefined);
        expect(tlsRole.metadata.namespace).to.equal(RELEASE_NS);
        expect(tlsRole.rules).to.deep.equal([
          { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
          { apiGroups: [''], resources: ['secrets'], resourceNames: [`${fullname}-tls`], verbs: ['get', 'update', 'patch'] },
        ]);
        const binding = ofKind(docs, 'RoleBinding').find((b) => b.metadata.name === `${fullname}-tls`) as Obj;
        expect(binding.roleRef).to.deep.equal({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${fullname}-tls` });
        expect(binding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: one(docs, 'ServiceAccount').metadata.name, namespace: RELEASE_NS }]);
        const webhookRules = (one(docs, 'ClusterRole').rules as Obj[]).filter((r) => (r.apiGroups as string[]).includes('admissionregistration.k8s.io'));
        expect(webhookRules).to.deep.equal([
          { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'], resourceNames: [fullname], verbs: ['get', 'update', 'patch'] },
        ]);
        for (const mode of [{ mode: 'generate' }, { mode: 'certManager' }, { mode: 'existing', existing: { secretName: 'my-tls', caBundle: 'Q0E=' } }]) {
          const other = template(h, { tls: mode }, { release });
          expect([...ofKind(other, 'Role'), ...ofKind(other, 'RoleBinding')].map((r) => r.metadata.name), mode.mode).to.not.include(`${fullname}-tls`);
          const otherRules = (one(other, 'ClusterRole').rules as Obj[]).flatMap((r) => r.apiGroups as string[]);
          expect(otherRules, mode.mode).to.not.include('admissionregistration.k8s.io');
        }
      });

      it('with the RBAC it renders, trustgate creates the Secret and sets the CA of every webhook, the policy webhook included', async function () {
        this.timeout(30_000);
        // The rendered Roles and ClusterRole, as the fake API server's authorizer.
        const granted: Rule[] = [];
        for (const role of [...ofKind(docs, 'Role'), ...ofKind(docs, 'ClusterRole')]) {
          if (role.kind === 'Role' && role.metadata.namespace !== RELEASE_NS) continue;
          for (const r of role.rules as Obj[]) {
            for (const resource of r.resources as string[]) {
              if (!['secrets', 'mutatingwebhookconfigurations', 'validatingwebhookconfigurations'].includes(resource)) continue;
              granted.push({ resource: resource as Resource, verbs: r.verbs as string[], ...(r.resourceNames ? { resourceNames: r.resourceNames as string[] } : {}) });
            }
          }
        }
        const opts = parseServeArgs((container.args as string[]).slice(1));
        const fake = await FakeKubeObjects.start();
        let tls: Awaited<ReturnType<typeof startSelfManagedTls>> | undefined;
        try {
          fake.rules = granted;
          fake.put('mutatingwebhookconfigurations', structuredClone(one(docs, 'MutatingWebhookConfiguration')) as never);
          fake.put('validatingwebhookconfigurations', structuredClone(one(docs, 'ValidatingWebhookConfiguration')) as never);
          tls = await startSelfManagedTls({
            secretName: opts.tlsSecret as string,
            namespace: RELEASE_NS,
            dnsNames: opts.tlsDnsNames as string[],
            mutatingWebhooks: opts.mutatingWebhooks as string[],
            validatingWebhooks: opts.validatingWebhooks as string[],
            log: captureLogger(),
            kubeConfig: fake.kubeConfig(),
            resyncMs: 3_600_000,
          });
          const data = fake.get('secrets', `${fullname}-tls`, RELEASE_NS)?.['data'] as Record<string, string>;
          expect(data, 'the Secret trustgate created').to.not.equal(undefined);
          const leaf = new X509Certificate(Buffer.from(data['tls.crt'] as string, 'base64'));
          expect(leaf.checkHost(`${fullname}.${RELEASE_NS}.svc`)).to.equal(`${fullname}.${RELEASE_NS}.svc`);
          const bundles = new Map<string, string | undefined>();
          for (const r of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'] as const) {
            for (const w of fake.get(r, fullname)?.['webhooks'] as Obj[]) bundles.set(w.name as string, w.clientConfig.caBundle as string | undefined);
          }
          expect([...bundles.keys()].sort()).to.deep.equal(['mutate.trustgate.dev', 'policies.trustgate.dev', 'validate.trustgate.dev']);
          for (const [name, bundle] of bundles) expect(bundle, name).to.equal(data['ca.crt']);
          // Nothing was refused: the rendered RBAC is enough.
          expect(fake.requests.filter((r) => r.status === 403)).to.deep.equal([]);
        } finally {
          tls?.close();
          await fake.close();
        }
      });
    });

    describe('shutdown and start-up, in every TLS mode', () => {
      const MODES: Obj[] = [{}, { tls: { mode: 'generate' } }, { tls: { mode: 'certManager' } }, VARIANTS[3]![1]];
      const pod = (values: Obj) => one(render(values), 'Deployment').spec.template.spec as Obj;

      for (const mode of MODES) {
        const name = (mode.tls?.mode as string | undefined) ?? 'selfManaged';
        it(`${name}: --drain-seconds is server.drainSeconds, the grace period covers drain + deadline, and the parser accepts the arguments`, () => {
          for (const [drain, deadline] of [[defaults.server.drainSeconds as number, defaults.server.deadlineSeconds as number], [0, 3], [300, 9]] as const) {
            const values = withDefaults({ server: { drainSeconds: drain, deadlineSeconds: deadline } }, mode);
            const spec = pod(values);
            const args = spec.containers[0].args as string[];
            expect(argValue(args, '--drain-seconds'), `${name} drain ${drain}`).to.equal(String(drain));
            expect(spec.terminationGracePeriodSeconds, `${name} drain ${drain}`).to.equal(drain + deadline + 5);
            expect(spec.terminationGracePeriodSeconds).to.be.above(drain);
            const opts = parseServeArgs(args.slice(1));
            expect(opts.drainMs).to.equal(drain * 1000);
            expect(opts.deadlineMs).to.equal(deadline * 1000);
            expect(opts.kubernetes).to.equal(true);
            expect(opts.tlsSecret !== undefined, `${name}: --tls-secret`).to.equal(name === 'selfManaged');
            expect(opts.tlsCert !== undefined, `${name}: --tls-cert`).to.equal(name !== 'selfManaged');
          }
          expect(defaults.server.drainSeconds).to.equal(10);
          expect(pod(mode).terminationGracePeriodSeconds).to.equal(10 + 8 + 5);
        });

        it(`${name}: a startup probe on /healthz every 2 s, up to 30 failures, before liveness applies`, () => {
          const c = pod(mode).containers[0] as Obj;
          expect(c.startupProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'https', scheme: 'HTTPS' });
          expect(c.startupProbe).to.include({ periodSeconds: 2, failureThreshold: 30 });
          expect((c.ports as Obj[]).map((p) => p.name)).to.include(c.startupProbe.httpGet.port);
        });
      }
    });

    describe('NetworkPolicy and ServiceMonitor', () => {
      it('NetworkPolicy: ingress only to the webhook port, egress only to DNS, the API server and trust servers', () => {
        const docs = render({ networkPolicy: { enabled: true } });
        const np = one(docs, 'NetworkPolicy');
        const podLabels = one(docs, 'Deployment').spec.template.metadata.labels;
        expect(selects(np.spec.podSelector, podLabels)).to.equal(true);
        expect(np.spec.policyTypes).to.have.members(['Ingress', 'Egress']);
        expect(np.spec.ingress).to.deep.equal([{ ports: [{ port: 8443, protocol: 'TCP' }] }]);
        const egress = np.spec.egress as Obj[];
        const ports = egress.flatMap((e) => (e.ports as Obj[]).map((p) => `${p.protocol}/${p.port}`));
        expect(ports.sort()).to.deep.equal(['TCP/53', 'UDP/53', 'TCP/443', 'TCP/6443', 'TCP/443', 'TCP/4443'].sort());
        for (const e of egress) expect(e.ports, 'every egress rule limits ports').to.be.an('array').that.is.not.empty;

        const limited = one(render(VARIANTS[2]![1]), 'NetworkPolicy');
        const tcp = (limited.spec.egress as Obj[]).find((e) => e.to) as Obj;
        expect(tcp.to).to.deep.equal([{ ipBlock: { cidr: '10.0.0.0/8' } }]);
        expect((tcp.ports as Obj[]).map((p) => p.port)).to.include(8443);
      });

      it('ServiceMonitor: scrapes /metrics over HTTPS, verifying with the webhook CA', () => {
        const docs = render({ serviceMonitor: { enabled: true, labels: { release: 'prom' } } });
        const sm = one(docs, 'ServiceMonitor');
        const service = one(docs, 'Service');
        expect(sm.metadata.labels.release).to.equal('prom');
        expect(selects(sm.spec.selector, service.metadata.labels)).to.equal(true);
        const ep = sm.spec.endpoints[0] as Obj;
        expect(ep).to.include({ port: 'https', path: '/metrics', scheme: 'https' });
        expect(ep.tlsConfig.insecureSkipVerify).to.equal(undefined);
        expect(ep.tlsConfig.serverName).to.equal(`trustgate.${RELEASE_NS}.svc`);
        // selfManaged: the Secret trustgate writes its CA into (ca.crt, the --tls-secret it is given).
        expect(ep.tlsConfig.ca.secret).to.deep.equal({ name: argValue(one(docs, 'Deployment').spec.template.spec.containers[0].args, '--tls-secret'), key: 'ca.crt' });
        const generated = render({ tls: { mode: 'generate' }, serviceMonitor: { enabled: true } });
        expect(one(generated, 'ServiceMonitor').spec.endpoints[0].tlsConfig.ca.secret).to.deep.equal({ name: one(generated, 'Secret').metadata.name, key: 'ca.crt' });
      });
    });

    describe('CRDs are templates that upgrades update', () => {
      const crdDir = join(ROOT, 'crds');
      const sources = readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f) && statSync(join(crdDir, f)).isFile()).sort();

      it('renders each CRD of crds/ unchanged, plus the release labels and helm.sh/resource-policy: keep', () => {
        const rendered = ofKind(render(), 'CustomResourceDefinition');
        expect(rendered.map((c) => c.metadata.name).sort()).to.deep.equal(
          sources.map((f) => (YAML.parse(readFileSync(join(crdDir, f), 'utf8')) as Obj).metadata.name).sort(),
        );
        for (const f of sources) {
          const want = YAML.parse(readFileSync(join(crdDir, f), 'utf8')) as Obj;
          const got = rendered.find((c) => c.metadata.name === want.metadata.name) as Obj;
          expect(got.metadata.annotations).to.deep.equal({ 'helm.sh/resource-policy': 'keep' });
          expect(got.metadata.labels).to.deep.include(want.metadata.labels);
          expect(got.metadata.labels).to.include({ 'app.kubernetes.io/instance': 'trustgate', 'app.kubernetes.io/managed-by': 'Helm' });
          const { annotations: _a, labels: _l, ...gotMeta } = got.metadata as Obj;
          const { labels: _w, ...wantMeta } = want.metadata as Obj;
          expect({ ...got, metadata: gotMeta }, f).to.deep.equal({ ...want, metadata: wantMeta });
        }
      });

      it('crds.install=false renders none', () => {
        expect(ofKind(render({ crds: { install: false } }), 'CustomResourceDefinition')).to.deep.equal([]);
      });
    });

    describe('NOTES.txt', () => {
      let cluster: Awaited<ReturnType<typeof startVersionServer>>;
      before(async () => {
        cluster = await startVersionServer();
      });
      after(() => cluster.close());

      it('names the namespace, the runbook values and the webhook configurations to delete', () => {
        const notes = (values: Obj) => (installed(h, cluster.kubeconfig, values).info.notes as string);
        const text = notes({});
        expect(text).to.include(`-n ${RELEASE_NS} rollout status deployment/trustgate`);
        expect(text).to.include('FAILS CLOSED');
        expect(text).to.include(`--reuse-values --set webhook.failurePolicy=Ignore`);
        expect(text).to.include('kubectl delete mutatingwebhookconfiguration trustgate');
        expect(text).to.include('kubectl delete validatingwebhookconfiguration trustgate');
        expect(text).to.include('kubectl label namespace NAME trustgate.dev/ignore=true');
        expect(text).to.include('Images that no TrustPolicy');
        expect(notes({ server: { allowUnmatched: true } })).to.not.include('Images that no TrustPolicy');
        expect(notes({ webhook: { failurePolicy: 'Ignore' } })).to.include('FAILS OPEN');
      });
    });
  });
}

describe('chart: CRD files', () => {
  const crdDir = join(ROOT, 'crds');
  const copies = join(CHART, 'files', 'crds');
  const sources = readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f) && statSync(join(crdDir, f)).isFile()).sort();

  it('the chart holds real files equal byte for byte to crds/, and only CRDs', () => {
    expect(sources.length).to.be.at.least(2);
    expect(readdirSync(copies).sort()).to.deep.equal(sources);
    for (const f of sources) {
      expect(lstatSync(join(copies, f)).isFile(), `${f} is a regular file (Helm warns on symlinks)`).to.equal(true);
      expect(readFileSync(join(copies, f)).equals(readFileSync(join(crdDir, f))), `charts/trustgate/files/crds/${f} differs from crds/${f}: copy it again`).to.equal(true);
      for (const d of YAML.parseAllDocuments(readFileSync(join(copies, f), 'utf8'))) expect((d.toJS() as Obj).kind, f).to.equal('CustomResourceDefinition');
    }
  });

  it('the chart has no crds/ directory (Helm would install it once and never upgrade it)', () => {
    expect(existsSync(join(CHART, 'crds'))).to.equal(false);
    const tracked = execFileSync('git', ['ls-files', '-s', '--', 'charts/trustgate'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
    for (const line of tracked) expect(line.split(' ')[0], `${line}: no symlinks in the chart`).to.not.equal('120000');
  });
});

/** Every `helm ...` command of both READMEs: lines of sh blocks (with continuations) and inline code. */
function readmeHelmCommands(): { file: string; command: string }[] {
  const out: { file: string; command: string }[] = [];
  for (const file of ['README.md', join('charts', 'trustgate', 'README.md')]) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
      const joined = (block[1] as string).replace(/\\\n\s*/g, '');
      for (const line of joined.split('\n')) if (/^\s*helm /.test(line)) out.push({ file, command: line.trim() });
    }
    const prose = text.replace(/```[\s\S]*?```/g, '');
    for (const m of prose.matchAll(/`(helm [^`]+)`/g)) out.push({ file, command: m[1] as string });
  }
  return out;
}

describe("chart: the READMEs' Helm commands, run by Helm 3 and 4", function () {
  // A dozen dry runs per Helm.
  this.timeout(120_000);
  const commands = readmeHelmCommands();
  let cluster: Awaited<ReturnType<typeof startVersionServer>>;
  let work: string;
  let oldChart: string;
  before(async () => {
    cluster = await startVersionServer();
    work = mkdtempSync(join(tmpdir(), 'tg-readme-helm-'));
    // The commands say ./charts/trustgate and read ca.crt; run them where both exist.
    symlinkSync(join(ROOT, 'charts'), join(work, 'charts'));
    writeFileSync(join(work, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n');
    // The chart as it was before its CRDs became templates and failurePolicy a value: what a
    // release made earlier was rendered with, and what --reuse-values renders with.
    oldChart = join(work, 'old-chart');
    cpSync(CHART, oldChart, { recursive: true });
    rmSync(join(oldChart, 'templates', 'crds.yaml'));
    const oldValues = structuredClone(defaults);
    delete oldValues.crds;
    delete oldValues.webhook.failurePolicy;
    writeFileSync(join(oldChart, 'values.yaml'), YAML.stringify(oldValues));
  });
  after(async () => {
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('the READMEs show the install, upgrade and runbook commands', () => {
    const all = commands.map((c) => c.command);
    expect(all.filter((c) => c.startsWith('helm install ')).length).to.be.at.least(4);
    expect(all).to.include('helm upgrade trustgate ./charts/trustgate -n trustgate-system --reuse-values --set webhook.failurePolicy=Ignore');
    expect(all).to.include('helm upgrade trustgate ./charts/trustgate -n trustgate-system --reuse-values --set webhook.failurePolicy=Fail');
    expect(all.some((c) => c.includes('--take-ownership'))).to.equal(true);
    expect(all.join('\n')).to.not.include('kubectl patch');
  });

  /** Runs a README command through bash (its own quoting and $(...)), with --dry-run=client. */
  const runReadme = (h: Helm, command: string, releases: Obj[]): Obj => {
    const bin = join(work, `bin-${h.major}`);
    if (!existsSync(bin)) {
      mkdirSync(bin);
      symlinkSync(h.path, join(bin, 'helm'));
    }
    const releasesFile = join(work, `releases-${h.major}.json`);
    writeFileSync(releasesFile, YAML.stringify(releases));
    const home = join(work, `home-${h.major}`);
    const out = execFileSync('bash', ['-eo', 'pipefail', '-c', `${command} --dry-run=client --output json`], {
      cwd: work,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        HOME: home,
        HELM_CACHE_HOME: join(home, 'cache'),
        HELM_CONFIG_HOME: join(home, 'config'),
        HELM_DATA_HOME: join(home, 'data'),
        HELM_DRIVER: 'memory',
        HELM_MEMORY_DRIVER_DATA: releasesFile,
        KUBECONFIG: cluster.kubeconfig,
      },
    });
    return JSON.parse(out) as Obj;
  };

  for (const h of HELMS) {
    it(`${h.name}: every install command renders a release`, () => {
      const installs = commands.filter((c) => c.command.startsWith('helm install '));
      for (const { file, command } of installs) {
        const release = runReadme(h, command, []);
        expect(release.info.status, `${file}: ${command}`).to.equal('pending-install');
        expect(release.namespace).to.equal('trustgate-system');
        const docs = manifests(release.manifest as string);
        expect(imageWebhooks(docs).map((w) => w.failurePolicy), command).to.deep.equal(['Fail', 'Fail']);
        expect(ofKind(docs, 'CustomResourceDefinition'), command).to.have.length(2);
      }
    });

    it(`${h.name}: every upgrade command upgrades a release installed by this chart and by the chart before it`, () => {
      const upgrades = commands.filter((c) => c.command.startsWith('helm upgrade '));
      expect(upgrades.length).to.be.at.least(4);
      for (const chart of [CHART, oldChart]) {
        const previous = JSON.parse(helmDry(h, ['install', 'trustgate', chart, '-n', 'trustgate-system', '--dry-run=client', '--output', 'json'], cluster.kubeconfig)) as Obj;
        previous.info.status = 'deployed';
        for (const { file, command } of upgrades) {
          const release = runReadme(h, command, [previous]);
          const what = `${file}: ${command} (after ${chart === CHART ? 'this chart' : 'the chart before'})`;
          expect(release.version, what).to.equal(2);
          const docs = manifests(release.manifest as string);
          const expected = /failurePolicy=(\w+)/.exec(command)?.[1] ?? 'Fail';
          expect(imageWebhooks(docs).map((w) => w.failurePolicy), what).to.deep.equal([expected, expected]);
          expect(policyWebhook(docs).failurePolicy, what).to.equal('Ignore');
          // --reuse-values renders with the earlier chart's values, which may lack crds.install:
          // the CRDs come along all the same.
          expect(ofKind(docs, 'CustomResourceDefinition'), what).to.have.length(2);
        }
      }
    });
  }
});
