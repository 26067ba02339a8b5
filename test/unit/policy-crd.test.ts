// The CRD manifests: shape an API server needs (structural schema, printer columns, status
// subresource), the contract field names, the two kinds kept identical, and every CEL rule
// paired with a TypeScript twin that decides the same cases.
import { expect } from 'chai';
import { loadCrds, type LoadedCrd } from '../../webhook/src/policy/crds.js';
import { assertTwinsFor, celProblems, celRules, CEL_TWINS, QUALIFIED_IMAGE } from '../../webhook/src/policy/rules.js';
import { isObject } from '../../webhook/src/common/is-object.js';
import { applyDefaults, validateSchema } from '../../webhook/src/policy/schema.js';

type Node = Record<string, unknown>;

const crds = loadCrds();
const tp = crds.get('TrustPolicy')!;
const ctp = crds.get('ClusterTrustPolicy')!;

function at(schema: Node, path: string): Node {
  let node: unknown = schema;
  for (const part of path.split('.')) {
    if (part === '[]') node = (node as Node).items;
    else node = ((node as Node).properties as Node)[part];
    expect(node, `schema has ${path}`).to.be.an('object');
  }
  return node as Node;
}

function walk(schema: unknown, where: string, fn: (n: Node, where: string) => void): void {
  if (!isObject(schema)) return;
  fn(schema, where);
  if (isObject(schema.properties)) for (const [k, s] of Object.entries(schema.properties)) walk(s, `${where}.${k}`, fn);
  if (isObject(schema.items)) walk(schema.items, `${where}[]`, fn);
}

describe('policy CRDs', () => {
  for (const [crd, scope, plural, short] of [
    [tp, 'Namespaced', 'trustpolicies', 'tp'],
    [ctp, 'Cluster', 'clustertrustpolicies', 'ctp'],
  ] as [LoadedCrd, string, string, string][]) {
    describe(crd.kind, () => {
      const m = crd.manifest as { apiVersion: string; metadata: { name: string }; spec: Node };
      const names = m.spec.names as Node;
      const version = (m.spec.versions as Node[])[0]!;
      it('is an apiextensions.k8s.io/v1 CRD of trustgate.dev/v1alpha1 with the right scope and names', () => {
        expect(m.apiVersion).to.equal('apiextensions.k8s.io/v1');
        expect(m.metadata.name).to.equal(`${plural}.trustgate.dev`);
        expect(m.spec.scope).to.equal(scope);
        expect(names).to.deep.include({ kind: crd.kind, plural, listKind: `${crd.kind}List`, shortNames: [short] });
        expect(names.categories).to.include('trustgate');
        expect(version).to.deep.include({ name: 'v1alpha1', served: true, storage: true });
        expect(version.subresources).to.deep.equal({ status: {} });
      });
      it('prints Images, Mode, Trust Server and Age, each from a field the schema has', () => {
        const cols = version.additionalPrinterColumns as { name: string; jsonPath: string; type: string }[];
        expect(cols.map((c) => c.name)).to.include.members(['Images', 'Mode', 'Trust Server', 'Age']);
        expect(cols.find((c) => c.name === 'Age')).to.deep.include({ type: 'date', jsonPath: '.metadata.creationTimestamp' });
        for (const c of cols.filter((c) => c.jsonPath.startsWith('.spec.'))) at(crd.schema, c.jsonPath.slice(1));
      });
      it('prints Ready in the default view (no priority: kubectl hides priority > 0 without -o wide)', () => {
        const cols = version.additionalPrinterColumns as { name: string; jsonPath: string; priority?: number }[];
        const ready = cols.find((c) => c.name === 'Ready');
        expect(ready?.jsonPath).to.equal('.status.conditions[?(@.type=="Ready")].status');
        expect(ready?.priority ?? 0).to.equal(0);
      });
    });
  }

  it('TrustPolicy and ClusterTrustPolicy have the same spec and status schema', () => {
    expect(ctp.schema.properties).to.deep.equal(tp.schema.properties);
    expect(ctp.schema.required).to.deep.equal(tp.schema.required);
  });

  it('keeps the contract field names', () => {
    const s = tp.schema;
    for (const path of [
      'spec.images',
      'spec.trustServer.url',
      'spec.trustServer.caBundle',
      'spec.trustServer.credentials.secretName',
      'spec.root.keys',
      'spec.root.threshold',
      'spec.delegations.roles',
      'spec.delegations.threshold',
      'spec.freshness.maxMetadataAge',
      'spec.mode',
    ]) {
      at(s, path);
    }
    expect(at(s, 'spec.mode')).to.deep.include({ enum: ['enforce', 'warn', 'audit'], default: 'enforce' });
    expect(at(s, 'spec.root.threshold')).to.deep.include({ default: 1, minimum: 1 });
    expect(at(s, 'spec.delegations.threshold')).to.deep.include({ minimum: 1 });
    expect(at(s, 'spec.delegations.threshold')).to.not.have.property('default');
    // Notary roles are targets/NAME (rule notary-roles); TUF 1.0 role names are free-form.
    expect(at(s, 'spec.delegations.roles.[]').pattern).to.equal('^[A-Za-z0-9_][-A-Za-z0-9_.]*(/[-A-Za-z0-9_.]+)*$');
    expect(at(s, 'spec.trustServer.protocol')).to.deep.include({ enum: ['notary', 'tuf'], default: 'notary' });
    expect(at(s, 'spec.root.trustedRoot')).to.deep.include({ type: 'string' });
    expect(at(s, 'spec.root')).to.not.have.property('required');
    expect(at(s, 'spec')).to.deep.include({ required: ['images', 'trustServer', 'root'] });
  });

  it('has a status with metav1.Condition-shaped conditions, and nothing trustgate never writes', () => {
    const cond = at(tp.schema, 'status.conditions');
    expect(cond).to.deep.include({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
    const item = cond.items as Node;
    expect(Object.keys(item.properties as Node).sort()).to.deep.equal(['lastTransitionTime', 'message', 'observedGeneration', 'reason', 'status', 'type']);
    expect(item.required).to.deep.equal(['type', 'status', 'lastTransitionTime', 'reason', 'message']);
    // Declared once but never written: the log, metrics and Events carry verification failures.
    expect((at(tp.schema, 'status') as Node).properties).to.not.have.property('lastVerificationError');
    const good = { conditions: [{ type: 'Ready', status: 'True', reason: 'Loaded', message: 'ok', lastTransitionTime: '2024-01-01T00:00:00Z', observedGeneration: 2 }] };
    expect(validateSchema(at(tp.schema, 'status'), good, { rejectUnknownFields: true })).to.deep.equal([]);
    expect(validateSchema(at(tp.schema, 'status'), { conditions: [{ ...good.conditions[0], status: 'Yes' }] })).to.have.length(1);
  });

  it('is structural: every node typed, no additionalProperties: false, required fields declared, bounded lists and strings', () => {
    walk(tp.schema, '', (n, where) => {
      expect(n.type, `${where} has a type`).to.be.a('string');
      expect(n.additionalProperties, `${where}: Kubernetes forbids additionalProperties: false`).to.not.equal(false);
      for (const r of (n.required as string[] | undefined) ?? []) expect((n.properties as Node)[r], `${where} declares required ${r}`).to.be.an('object');
      if (n.type === 'array') expect(n.maxItems, `${where} bounds its items (CEL cost)`).to.be.a('number');
      if (n.type === 'string' && !n.enum && !n.format && where.startsWith('.spec')) expect(n.maxLength, `${where} bounds its length (CEL cost)`).to.be.a('number');
    });
  });

  it('uses only patterns both Go (RE2) and JavaScript accept, and defaults that pass their own schema', () => {
    walk(tp.schema, '', (n, where) => {
      if (typeof n.pattern === 'string') {
        expect(() => new RegExp(n.pattern as string, 'u'), where).to.not.throw();
        expect(n.pattern, `${where}: RE2 has no lookaround or backreferences`).to.not.match(/\(\?[=!<]|\\[1-9]/);
      }
      if ('default' in n) expect(validateSchema(n, n.default), `${where} default`).to.deep.equal([]);
    });
  });

  describe('CEL rules and their TypeScript twins', () => {
    const rules = celRules(tp.schema);

    it('every rule has an id and a twin, and every twin a rule', () => {
      expect(rules.length).to.be.greaterThanOrEqual(6);
      expect(new Set(rules.map((r) => r.id))).to.deep.equal(new Set(Object.keys(CEL_TWINS)));
      expect(() => assertTwinsFor(tp.schema)).to.not.throw();
    });

    it('a rule without a twin, or without an id, makes the schema unusable', () => {
      const extra = { type: 'object', 'x-kubernetes-validations': [{ rule: 'true', message: '[no-such-rule] x' }] };
      expect(() => assertTwinsFor(extra)).to.throw(/no-such-rule/);
      const noId = { type: 'object', 'x-kubernetes-validations': [{ rule: 'true', message: 'x' }] };
      expect(() => assertTwinsFor(noId)).to.throw(/has no "\[id\] "/);
    });

    it('image-qualified uses the same regular expression as its twin', () => {
      const rule = rules.find((r) => r.id === 'image-qualified')!;
      const m = /^self\.matches\(r'(.*)'\)$/.exec(rule.rule);
      expect(m, rule.rule).to.not.equal(null);
      expect(new RegExp(m![1]!).source).to.equal(QUALIFIED_IMAGE.source);
    });

    // Cases whose CEL result was checked against a CEL evaluator; the twin must agree.
    const cases: Record<string, [self: unknown, holds: boolean][]> = {
      'image-qualified': [
        ['docker.io/library/nginx', true],
        ['localhost/x', true],
        ['localhost:5000/x', true],
        ['registry:5000/x', true],
        ['[::1]:5000/x', true],
        ['nginx', false],
        ['library/nginx', false],
        ['registry/x', false],
        ['Registry.example.com/x', false],
        ['registry.example.com', false],
      ],
      'credentials-https': [
        [{ url: 'https://a', credentials: { secretName: 'x' } }, true],
        [{ url: 'http://a' }, true],
        [{ url: 'http://a', credentials: { secretName: 'x' } }, false],
      ],
      'cabundle-https': [
        [{ url: 'https://a', caBundle: 'x' }, true],
        [{ url: 'http://a', caBundle: '' }, true],
        [{ url: 'http://a' }, true],
        [{ url: 'http://a', caBundle: 'x' }, false],
      ],
      'root-one-of': [
        [{ keys: ['a'], threshold: 1 }, true],
        [{ trustedRoot: '{}', threshold: 1 }, true],
        [{ keys: ['a'], trustedRoot: '{}', threshold: 1 }, false],
        [{ threshold: 1 }, false],
      ],
      'trusted-root-tuf': [
        [{ trustServer: { protocol: 'tuf' }, root: { trustedRoot: '{}' } }, true],
        [{ trustServer: { protocol: 'notary' }, root: { keys: ['a'] } }, true],
        [{ trustServer: { protocol: 'notary' }, root: { trustedRoot: '{}' } }, false],
        [{ trustServer: {}, root: { trustedRoot: '{}' } }, false],
      ],
      'notary-roles': [
        [{ trustServer: { protocol: 'notary' } }, true],
        [{ trustServer: { protocol: 'notary' }, delegations: { roles: ['targets/releases', 'targets/a/b'] } }, true],
        [{ trustServer: { protocol: 'tuf' }, delegations: { roles: ['payments-release'] } }, true],
        [{ trustServer: { protocol: 'notary' }, delegations: { roles: ['releases'] } }, false],
        [{ trustServer: { protocol: 'notary' }, delegations: { roles: ['targets/Releases'] } }, false],
      ],
      'root-threshold': [
        [{ threshold: 1, trustedRoot: '{}' }, true],
        [{ keys: ['a'], threshold: 1 }, true],
        [{ keys: ['a', 'b'], threshold: 2 }, true],
        [{ keys: ['a'], threshold: 2 }, false],
      ],
      'delegation-threshold': [
        [{ roles: ['targets/a'] }, true],
        [{ roles: ['targets/a', 'targets/b'], threshold: 2 }, true],
        [{ roles: ['targets/a'], threshold: 2 }, false],
      ],
      'freshness-range': [
        ['1s', true],
        ['24h', true],
        ['1h30m', true],
        ['8760h', true],
        ['0s', false],
        ['0h0m', false],
        ['8761h', false],
        ['999999h', false],
      ],
    };

    for (const id of Object.keys(CEL_TWINS)) {
      it(`${id}: twin decides each case like the CEL rule`, () => {
        const table = cases[id];
        expect(table, `cases for ${id}`).to.not.equal(undefined);
        expect(table!.some(([, h]) => h) && table!.some(([, h]) => !h), 'both outcomes covered').to.equal(true);
        for (const [self, holds] of table!) expect(CEL_TWINS[id]!(self), `${id} ${JSON.stringify(self)}`).to.equal(holds);
      });
    }

    it('each rule reports at the place the CRD puts it, with the CRD message and rule id', () => {
      const spec = {
        images: ['nginx'],
        trustServer: { url: 'http://n', caBundle: 'x', credentials: { secretName: 's' } },
        root: { keys: ['k'], threshold: 2 },
        delegations: { roles: ['a'], threshold: 2 },
        freshness: { maxMetadataAge: '0s' },
      };
      const ps = celProblems(tp.schema, applyDefaults(tp.schema, { spec }));
      const byRule = Object.fromEntries(ps.map((p) => [/\(rule ([a-z-]+)\)$/.exec(p.message)![1]!, p.path]));
      expect(byRule).to.deep.equal({
        'image-qualified': 'spec.images[0]',
        'credentials-https': 'spec.trustServer',
        'cabundle-https': 'spec.trustServer',
        'root-threshold': 'spec.root',
        'notary-roles': 'spec',
        'delegation-threshold': 'spec.delegations',
        'freshness-range': 'spec.freshness.maxMetadataAge',
      });
      const root = ps.find((p) => p.path === 'spec.root')!;
      expect(root.message).to.equal('root.threshold cannot exceed the number of root.keys (rule root-threshold)');
    });

    it('rules do not run where the value is absent or of the wrong type', () => {
      expect(celProblems(tp.schema, { spec: { root: 'not an object' } })).to.deep.equal([]);
      expect(celProblems(tp.schema, { spec: {} })).to.deep.equal([]);
    });
  });
});
