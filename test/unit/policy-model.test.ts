// TrustPolicy model: the examples shipped in crds/examples (valid ones load, each invalid
// one is rejected for exactly its stated reason), defaults, root keys, metadata, YAML
// handling, and where the CRDs are found.
import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { TufRepo } from '../support/tuf1-repo.js';
import { join } from 'node:path';
import {
  loadCrds,
  packageRoot,
  parsePolicy,
  parsePolicyYaml,
  PolicyValidationError,
  policyId,
  type TrustPolicy,
} from '../../webhook/src/policy/model.js';

const ROOT = packageRoot();
const EXAMPLES = join(ROOT, 'crds', 'examples');
const INVALID = join(EXAMPLES, 'invalid');

function pem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
}

const KEY = pem();

function base(overrides: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'trustgate.dev/v1alpha1',
    kind: 'TrustPolicy',
    metadata: { name: 'team', namespace: 'team' },
    spec: { images: ['registry.example.com/team/**'], trustServer: { url: 'https://notary.example.com' }, root: { keys: [KEY] }, ...spec },
    ...overrides,
  };
}

function rejection(fn: () => unknown): PolicyValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(PolicyValidationError);
    return e as PolicyValidationError;
  }
  expect.fail('expected a PolicyValidationError');
}

describe('policy model', () => {
  describe('examples in crds/examples', () => {
    const valid = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
    it('has valid examples of both kinds', () => {
      expect(valid.length).to.be.greaterThanOrEqual(3);
      const kinds = valid.flatMap((f) => parsePolicyYaml(readFileSync(join(EXAMPLES, f), 'utf8'), f).map((p) => p.kind));
      expect(new Set(kinds)).to.deep.equal(new Set(['TrustPolicy', 'ClusterTrustPolicy']));
    });
    for (const f of valid) {
      it(`${f} is valid`, () => {
        const policies = parsePolicyYaml(readFileSync(join(EXAMPLES, f), 'utf8'), f, { requireNamespace: true });
        expect(policies).to.have.length(1);
        expect(policies[0]!.source).to.equal(f);
      });
    }

    const invalid = readdirSync(INVALID).filter((f) => f.endsWith('.yaml'));
    it('has at least 15 invalid examples', () => expect(invalid.length).to.be.greaterThanOrEqual(15));
    for (const f of invalid) {
      it(`invalid/${f} is rejected for its one reason`, () => {
        const text = readFileSync(join(INVALID, f), 'utf8');
        const m = /^# expect: ([^:]+): (.+)$/m.exec(text);
        expect(m, `${f} must start with "# expect: PATH: MESSAGE"`).to.not.equal(null);
        const e = rejection(() => parsePolicyYaml(text, f, { requireNamespace: true }));
        expect(e.problems, JSON.stringify(e.problems)).to.have.length(1);
        expect(e.problems[0]!.path).to.equal(m![1]);
        expect(e.problems[0]!.message).to.include(m![2]);
        expect(e.message).to.include(m![2]);
      });
    }
  });

  describe('the typed result', () => {
    it('carries kind, metadata, source and a spec with defaults (root threshold 1, mode enforce, no delegations)', () => {
      const p = parsePolicy(base({ metadata: { name: 'team', namespace: 'team', uid: 'u-1', generation: 3, resourceVersion: '42' } }), 'kubernetes');
      expect(p).to.deep.equal({
        kind: 'TrustPolicy',
        name: 'team',
        namespace: 'team',
        uid: 'u-1',
        generation: 3,
        resourceVersion: '42',
        source: 'kubernetes',
        spec: { images: ['registry.example.com/team/**'], trustServer: { url: 'https://notary.example.com' }, root: { keys: [KEY], threshold: 1 }, mode: 'enforce' },
      } satisfies TrustPolicy);
    });
    it('delegations.threshold defaults to every listed role; an explicit one is kept', () => {
      expect(parsePolicy(base({}, { delegations: { roles: ['targets/releases', 'targets/qa'] } }), 't').spec.delegations).to.deep.equal({
        roles: ['targets/releases', 'targets/qa'],
        threshold: 2,
      });
      expect(parsePolicy(base({}, { delegations: { roles: ['targets/releases', 'targets/qa'], threshold: 1 } }), 't').spec.delegations!.threshold).to.equal(1);
    });
    it('maxMetadataAge becomes seconds', () => {
      const age = (s: string) => parsePolicy(base({}, { freshness: { maxMetadataAge: s } }), 't').spec.freshness!.maxMetadataAgeSeconds;
      expect(age('24h')).to.equal(86400);
      expect(age('90m')).to.equal(5400);
      expect(age('30s')).to.equal(30);
      expect(age('1h30m')).to.equal(5400);
      expect(age('1h0m1s')).to.equal(3601);
      expect(parsePolicy(base({}, { freshness: {} }), 't').spec.freshness).to.deep.equal({});
    });
    it('an empty caBundle means the system roots (absent); a trailing slash on the url is dropped', () => {
      const p = parsePolicy(base({}, { trustServer: { url: 'https://notary.example.com:4443/', caBundle: '' } }), 't');
      expect(p.spec.trustServer).to.deep.equal({ url: 'https://notary.example.com:4443' });
    });
    it('a ClusterTrustPolicy has no namespace; policyId names both kinds', () => {
      const c = parsePolicy(base({ kind: 'ClusterTrustPolicy', metadata: { name: 'all' } }), 't');
      expect(c.namespace).to.equal(undefined);
      expect(policyId(c)).to.equal('ClusterTrustPolicy/all');
      expect(policyId(parsePolicy(base(), 't'))).to.equal('TrustPolicy/team/team');
    });
    it('accepts an object as the API server returns it (managedFields, status, creationTimestamp)', () => {
      const obj = base({
        metadata: { name: 'team', namespace: 'team', creationTimestamp: '2024-01-01T00:00:00Z', managedFields: [{ manager: 'kubectl' }], labels: { a: 'b' } },
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Loaded', message: '', lastTransitionTime: '2024-01-01T00:00:00Z' }] },
      });
      expect(parsePolicy(obj, 'kubernetes').name).to.equal('team');
    });
  });

  describe('rejections', () => {
    it('reports every problem at once, each with its path', () => {
      const e = rejection(() =>
        parsePolicy(
          base({}, { images: ['nginx', 'registry.example.com/ok/**'], root: { keys: [KEY], threshold: 0 }, mode: 'block', extra: 1, delegations: { roles: ['releases'] } }),
          'f.yaml',
        ),
      );
      // The Notary role name is judged by the notary-roles rule on the whole spec (it depends on
      // the protocol), which, like an API server's CEL, does not run on a spec whose fields failed the schema.
      expect(e.problems.map((p) => p.path).sort()).to.deep.equal(['spec.extra', 'spec.images[0]', 'spec.mode', 'spec.root.threshold']);
      expect(e.message).to.match(/^f\.yaml: invalid policy: 4 problems: /);
    });
    it('a non-object, a missing or unknown kind, missing metadata', () => {
      expect(rejection(() => parsePolicy('x', 't')).problems[0]!.message).to.match(/must be a mapping/);
      expect(rejection(() => parsePolicy(base({ kind: undefined }), 't')).problems[0]).to.deep.include({ path: 'kind' });
      expect(rejection(() => parsePolicy(base({ kind: 'Pod' }), 't')).problems[0]!.message).to.match(/TrustPolicy or ClusterTrustPolicy, not "Pod"/);
      expect(rejection(() => parsePolicy(base({ metadata: undefined }), 't')).problems[0]).to.deep.include({ path: 'metadata' });
      expect(rejection(() => parsePolicy(base({ metadata: { name: 'Bad_Name' } }), 't')).problems[0]).to.deep.include({ path: 'metadata.name' });
    });
    it('a TrustPolicy without a namespace is accepted unless the namespace is required (policy directories)', () => {
      const obj = base({ metadata: { name: 'team' } });
      expect(parsePolicy(obj, 't').namespace).to.equal(undefined);
      expect(rejection(() => parsePolicy(obj, 't', { requireNamespace: true })).problems[0]!.path).to.equal('metadata.namespace');
    });
    it('root keys: garbage, a private key, and the same key twice in two spellings', () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const priv = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      expect(rejection(() => parsePolicy(base({}, { root: { keys: [priv] } }), 't')).problems[0]!.path).to.equal('spec.root.keys[0]');
      const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
      const rewrapped = `-----BEGIN PUBLIC KEY-----\n${der.match(/.{1,40}/g)!.join('\n')}\n-----END PUBLIC KEY-----\n`;
      const original = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      expect(rewrapped).to.not.equal(original);
      const e = rejection(() => parsePolicy(base({}, { root: { keys: [original, rewrapped], threshold: 2 } }), 't'));
      expect(e.problems).to.deep.equal([{ path: 'spec.root.keys[1]', message: 'pins the same key as spec.root.keys[0]: each key counts once towards the threshold' }]);
    });
    it('the exact same key text twice is a duplicate list entry', () => {
      const e = rejection(() => parsePolicy(base({}, { root: { keys: [KEY, KEY] } }), 't'));
      expect(e.problems.map((p) => p.path)).to.deep.equal(['spec.root.keys[1]']);
      expect(e.problems[0]!.message).to.match(/duplicate/);
    });
    it('an RSA key and an Ed25519 key are usable root keys', () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
      expect(parsePolicy(base({}, { root: { keys: [rsa, ed], threshold: 2 } }), 't').spec.root.threshold).to.equal(2);
    });
    it('trust server URLs: credentials, query, non-URL', () => {
      for (const url of ['https://user:pw@notary.example.com', 'https://notary.example.com/?x=1', 'https://notary.example.com/#f', 'https://', 'https://notary.example.com:99999']) {
        const e = rejection(() => parsePolicy(base({}, { trustServer: { url } }), 't'));
        expect(e.problems.map((p) => p.path), url).to.deep.equal(['spec.trustServer.url']);
      }
    });
    it('a caBundle that is not a certificate', () => {
      const e = rejection(() => parsePolicy(base({}, { trustServer: { url: 'https://n.example.com', caBundle: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' } }), 't'));
      expect(e.problems[0]).to.deep.include({ path: 'spec.trustServer.caBundle' });
      expect(e.problems[0]!.message).to.match(/certificate 1 cannot be parsed/);
    });
    it('too many images, too long a key', () => {
      const images = Array.from({ length: 129 }, (_, i) => `registry.example.com/r${i}`);
      expect(rejection(() => parsePolicy(base({}, { images }), 't')).problems[0]).to.deep.equal({ path: 'spec.images', message: 'must have at most 128 items (has 129)' });
      const huge = `-----BEGIN PUBLIC KEY-----\n${'A'.repeat(17000)}\n-----END PUBLIC KEY-----`;
      expect(rejection(() => parsePolicy(base({}, { root: { keys: [huge] } }), 't')).problems[0]!.message).to.match(/at most 16384 characters/);
    });
  });

  describe('YAML', () => {
    const doc = (name: string) => `apiVersion: trustgate.dev/v1alpha1
kind: ClusterTrustPolicy
metadata: {name: ${name}}
spec:
  images: [registry.example.com/${name}/**]
  trustServer: {url: "https://notary.example.com"}
  root: {keys: [${JSON.stringify(KEY)}]}
`;
    it('reads several documents and skips empty ones', () => {
      const ps = parsePolicyYaml(`---\n${doc('a')}---\n---\n${doc('b')}`, 'multi.yaml');
      expect(ps.map(policyId)).to.deep.equal(['ClusterTrustPolicy/a', 'ClusterTrustPolicy/b']);
    });
    it('reads a kind: List', () => {
      const list = { apiVersion: 'v1', kind: 'List', items: [base(), base({ metadata: { name: 'other', namespace: 'team' } })] };
      expect(parsePolicyYaml(JSON.stringify(list), 'list.json').map(policyId)).to.deep.equal(['TrustPolicy/team/team', 'TrustPolicy/team/other']);
    });
    it('JSON is YAML', () => {
      expect(parsePolicyYaml(JSON.stringify(base()), 'p.json')).to.have.length(1);
    });
    it('prefixes problems with the document they are in', () => {
      const e = rejection(() => parsePolicyYaml(`${doc('a')}---\n${doc('b').replace('threshold', 'x').replace('root: {keys', 'root: {treshold: 1, keys')}`, 'multi.yaml'));
      expect(e.problems.map((p) => p.path)).to.deep.equal(['documents[1].spec.root.treshold']);
    });
    it('the same policy twice in one file is rejected', () => {
      const e = rejection(() => parsePolicyYaml(`${doc('a')}---\n${doc('a')}`, 'dup.yaml'));
      expect(e.problems[0]!.message).to.match(/ClusterTrustPolicy\/a is defined twice/);
    });
    it('YAML syntax errors and duplicate keys are problems, not crashes', () => {
      expect(rejection(() => parsePolicyYaml('spec: [unclosed', 'bad.yaml')).problems[0]!.message).to.match(/^YAML: /);
      expect(rejection(() => parsePolicyYaml('kind: TrustPolicy\nkind: ClusterTrustPolicy\n', 'dup.yaml')).problems[0]!.message).to.match(/^YAML: .*[Uu]nique|^YAML: .*duplicate/i);
    });
    it('an alias bomb is refused', () => {
      let bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n';
      for (let i = 0; i < 8; i++) bomb += `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]\n`;
      expect(rejection(() => parsePolicyYaml(bomb, 'bomb.yaml')).problems[0]!.message).to.match(/^YAML: /);
    });
    it('a text with no document holds no policy', () => {
      expect(parsePolicyYaml('# nothing\n', 'empty.yaml')).to.deep.equal([]);
    });
  });

  describe('finding the CRDs', () => {
    it('walks up from the module to the directory with package.json (from dist/ or an installed package)', () => {
      const dir = mkdtempSync(join(tmpdir(), 'tg-root-'));
      try {
        const deep = join(dir, 'node_modules', 'trustgate', 'dist', 'webhook', 'src', 'policy');
        mkdirSync(deep, { recursive: true });
        writeFileSync(join(dir, 'node_modules', 'trustgate', 'package.json'), '{}');
        expect(packageRoot(deep)).to.equal(join(dir, 'node_modules', 'trustgate'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
    it('this build finds the repository root', () => {
      expect(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).name).to.equal('trustgate');
      expect([...loadCrds().keys()]).to.deep.equal(['TrustPolicy', 'ClusterTrustPolicy']);
    });
  });
});

describe('policy model: TUF 1.0 policies (protocol tuf)', () => {
  const tufSpec = (root: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    images: ['registry.example.com/payments/**'],
    trustServer: { protocol: 'tuf', url: 'https://tuf.example.com/metadata/' },
    root,
    ...extra,
  });

  it('accepts a trusted root.json that signs itself, and free-form TUF role names', () => {
    const repo = new TufRepo();
    const rootJson = repo.publish().get('1.root.json')!.toString('utf8');
    const p = parsePolicy(base({}, tufSpec({ trustedRoot: rootJson }, { delegations: { roles: ['payments-release'] } })), 't');
    expect(p.spec.trustServer.protocol).to.equal('tuf');
    expect(p.spec.root.trustedRoot).to.equal(rootJson);
    expect(p.spec.root.keys).to.deep.equal([]);
    expect(p.spec.delegations).to.deep.equal({ roles: ['payments-release'], threshold: 1 });
  });

  it('accepts pinned keys instead, and leaves Notary policies without a protocol', () => {
    expect(parsePolicy(base({}, tufSpec({ keys: [KEY] })), 't').spec.trustServer.protocol).to.equal('tuf');
    expect(parsePolicy(base(), 't').spec.trustServer).to.not.have.property('protocol');
  });

  it('refuses a trusted root that is not a self-signed TUF 1.0 root, naming why', () => {
    const repo = new TufRepo();
    const doc = JSON.parse(repo.publish().get('1.root.json')!.toString('utf8'));
    doc.signatures = [];
    for (const [text, why] of [
      [JSON.stringify(doc), /not a usable TUF 1.0 root.json: root: the trusted root \(version 1\) is not signed by its own root keys/],
      ['{"signed": {}}', /not a usable TUF 1.0 root.json/],
      ['not json', /not valid JSON/],
    ] as const) {
      const e = rejection(() => parsePolicy(base({}, tufSpec({ trustedRoot: text })), 't'));
      expect(e.problems.map((p) => p.path)).to.deep.equal(['spec.root.trustedRoot']);
      expect(e.problems[0]!.message).to.match(why);
    }
  });

  it('refuses both or neither of keys and trustedRoot, a trustedRoot for Notary, Notary role names that are not targets/NAME, and credentials for tuf', () => {
    const rootJson = new TufRepo().publish().get('1.root.json')!.toString('utf8');
    expect(rejection(() => parsePolicy(base({}, tufSpec({ keys: [KEY], trustedRoot: rootJson })), 't')).message).to.contain('exactly one of keys and trustedRoot');
    expect(rejection(() => parsePolicy(base({}, tufSpec({})), 't')).message).to.contain('exactly one of keys and trustedRoot');
    const notary = rejection(() => parsePolicy(base({}, { root: { trustedRoot: rootJson } }), 't'));
    expect(notary.message).to.contain('needs trustServer.protocol tuf');
    expect(rejection(() => parsePolicy(base({}, { delegations: { roles: ['releases'] } }), 't')).message).to.contain('Notary delegation roles are named targets/NAME');
    const creds = rejection(() => parsePolicy(base({}, tufSpec({ keys: [KEY] }, { trustServer: { protocol: 'tuf', url: 'https://t.example.com/m/', credentials: { secretName: 's' } } })), 't'));
    expect(creds.problems.map((p) => p.path)).to.deep.equal(['spec.trustServer.credentials']);
  });
});
