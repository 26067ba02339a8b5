// The policy webhook (/validate-policy) through the real HTTPS server, and the layers of a
// cluster that refuse each of crds/examples/invalid: CRD version, schema, CEL, this webhook.
// `trustgate policy check` (the real CLI, one process for every file) must print exactly the
// webhook's lines: the two share one validation.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { createAdmissionHandler } from '../../webhook/src/admission/handler.js';
import { GROUP, loadCrds, packageRoot, type PolicyKind } from '../../webhook/src/policy/model.js';
import { celProblems } from '../../webhook/src/policy/rules.js';
import { applyDefaults, validateSchema } from '../../webhook/src/policy/schema.js';
import { Metrics } from '../../webhook/src/server/metrics.js';
import { startServer, type RunningServer } from '../../webhook/src/server/start.js';
import { postJson } from '../fixtures/admission/https-client.js';
import { failed, failure, fixture, TableVerifier } from '../fixtures/admission/support.js';

const ROOT = packageRoot();
const EXAMPLES = join(ROOT, 'crds', 'examples');
const INVALID = join(EXAMPLES, 'invalid');
const CLI = join(ROOT, 'dist', 'webhook', 'src', 'cli', 'main.js');
const LAYERS = ['crd-version', 'schema', 'cel', 'webhook'] as const;
type Layer = (typeof LAYERS)[number];

const PLURAL: Record<PolicyKind, string> = { TrustPolicy: 'trustpolicies', ClusterTrustPolicy: 'clustertrustpolicies' };

function objectOf(file: string): Record<string, unknown> {
  return parseAllDocuments(readFileSync(file, 'utf8'))[0]!.toJS() as Record<string, unknown>;
}

/** An AdmissionReview as the API server sends one for a policy object. */
function policyReview(obj: Record<string, unknown>, operation = 'CREATE', extra: Record<string, unknown> = {}): Record<string, unknown> {
  const kind = obj['kind'] as PolicyKind;
  const meta = (obj['metadata'] ?? {}) as Record<string, unknown>;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${String(meta['name'])}-${operation}`,
      kind: { group: GROUP, version: 'v1alpha1', kind },
      resource: { group: GROUP, version: 'v1alpha1', resource: PLURAL[kind] },
      name: meta['name'],
      ...(typeof meta['namespace'] === 'string' ? { namespace: meta['namespace'] } : {}),
      operation,
      userInfo: { username: 'admin' },
      object: operation === 'DELETE' ? null : obj,
      oldObject: operation === 'CREATE' ? null : obj,
      dryRun: false,
      ...extra,
    },
  };
}

/** Which layer, in the order an API server applies them, first refuses the object; undefined when none before the webhook does. */
function crdLayer(obj: Record<string, unknown>): Layer | undefined {
  const crd = loadCrds().get(obj['kind'] as PolicyKind)!;
  if (!crd.versions.map((v) => `${GROUP}/${v}`).includes(obj['apiVersion'] as string)) return 'crd-version';
  const defaulted = applyDefaults(crd.schema, obj);
  // kubectl's default field validation is Strict: unknown fields are errors, not pruned.
  if (validateSchema(crd.schema, defaulted, { rejectUnknownFields: true }).length > 0) return 'schema';
  if (celProblems(crd.schema, defaulted).length > 0) return 'cel';
  return undefined;
}

describe('policy webhook: /validate-policy over HTTPS, and every invalid example refused by its layer', function () {
  let server: RunningServer;
  let ca: Buffer;
  const metrics = new Metrics();
  const verifier = new TableVerifier({});
  const invalidFiles = readdirSync(INVALID).filter((f) => f.endsWith('.yaml')).sort();
  const validFiles = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();
  /** `trustgate policy check` output lines per file, from one run of the real CLI over every example. */
  const checkLines = new Map<string, string[]>();
  let checkExit: number | undefined;

  before(async () => {
    server = await startServer({
      port: 0,
      host: '127.0.0.1',
      handlers: { mutate: createAdmissionHandler({ verifier, mutate: true, metrics }), validate: createAdmissionHandler({ verifier, mutate: false, metrics }) },
      ready: () => true,
      metrics,
    });
    ca = readFileSync(server.certFile);
    const files = [...invalidFiles.map((f) => join(INVALID, f)), ...validFiles.map((f) => join(EXAMPLES, f))];
    const out = await promisify(execFile)(process.execPath, [CLI, 'policy', 'check', ...files]).then(
      (r) => ({ stdout: r.stdout, code: 0 }),
      (e: { stdout: string; code: number }) => ({ stdout: e.stdout, code: e.code }),
    );
    checkExit = out.code;
    for (const file of files) {
      const prefix = `${file}: `;
      checkLines.set(file, out.stdout.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length)));
    }
  });

  after(async () => {
    await server?.close();
  });

  const admit = async (review: unknown) => {
    const r = await postJson(server.port, '/validate-policy', review, { ca });
    expect(r.status, r.body).to.equal(200);
    return JSON.parse(r.body).response as { uid: string; allowed: boolean; status?: { code: number; reason: string; message: string } };
  };

  it('policy check exits non-zero over the invalid examples', () => {
    expect(checkExit).to.equal(1);
  });

  it('has an invalid example for each layer', () => {
    const named = invalidFiles.map((f) => /^# rejected by: ([a-z-]+)/m.exec(readFileSync(join(INVALID, f), 'utf8'))?.[1]);
    expect(new Set(named)).to.deep.equal(new Set(LAYERS));
  });

  for (const f of invalidFiles) {
    it(`invalid/${f}: refused by the layer its comment names, and by the webhook with policy check's lines`, async () => {
      const file = join(INVALID, f);
      const text = readFileSync(file, 'utf8');
      const layer = /^# rejected by: ([a-z-]+)/m.exec(text)?.[1] as Layer | undefined;
      expect(LAYERS, `${f} must say "# rejected by: <${LAYERS.join('|')}>"`).to.include(layer);
      const obj = objectOf(file);
      // The layer named is the first that refuses it: an earlier one would make the comment wrong.
      expect(crdLayer(obj), 'the first layer of the CRD that refuses it').to.equal(layer === 'webhook' ? undefined : layer);

      const res = await admit(policyReview(obj));
      expect(res.allowed).to.equal(false);
      expect(res.status).to.include({ code: 422, reason: 'Invalid' });
      const [head, ...lines] = res.status!.message.split('\n');
      expect(head).to.match(/ is invalid \(trustgate policy check reports the same\):$/);
      expect(lines, 'the webhook says what policy check says').to.deep.equal(checkLines.get(file));
      const expected = /^# expect: ([^:]+): (.+)$/m.exec(text)!;
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include(`${expected[1]}: `).and.include(expected[2]);
    });
  }

  for (const f of validFiles) {
    it(`${f}: accepted on CREATE and UPDATE, and policy check agrees`, async () => {
      const file = join(EXAMPLES, f);
      const obj = objectOf(file);
      for (const op of ['CREATE', 'UPDATE']) {
        const res = await admit(policyReview(obj, op));
        expect(res, op).to.deep.equal({ uid: `uid-${(obj['metadata'] as { name: string }).name}-${op}`, allowed: true });
      }
      expect(checkLines.get(file)).to.have.length(1);
      expect(checkLines.get(file)![0]).to.match(/ ok$/);
    });
  }

  it('never refuses a DELETE, a status write or an object being deleted, even of an invalid policy', async () => {
    const broken = objectOf(join(INVALID, 'unparseable-key.yaml'));
    expect((await admit(policyReview(broken, 'DELETE'))).allowed).to.equal(true);
    expect((await admit(policyReview(broken, 'UPDATE', { subResource: 'status' }))).allowed).to.equal(true);
    const leaving = { ...broken, metadata: { ...(broken['metadata'] as object), deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [] } };
    expect((await admit(policyReview(leaving, 'UPDATE'))).allowed).to.equal(true);
    // Without the deletion under way, the same UPDATE is refused.
    expect((await admit(policyReview(broken, 'UPDATE'))).allowed).to.equal(false);
  });

  it('an edit that breaks a valid policy is refused, naming the policy and the field', async () => {
    const good = objectOf(join(EXAMPLES, 'trustpolicy-payments.yaml'));
    const spec = good['spec'] as { root: { keys: string[] } };
    const key = spec.root.keys[0]!;
    // A truncated PEM: the CRD schema sees only a string.
    const truncated = { ...good, spec: { ...spec, root: { ...spec.root, keys: [key.slice(0, Math.floor(key.length / 2)) + '\n-----END PUBLIC KEY-----\n'] } } };
    expect(crdLayer(truncated)).to.equal(undefined);
    const res = await admit(policyReview(truncated, 'UPDATE'));
    expect(res.allowed).to.equal(false);
    const meta = good['metadata'] as { name: string; namespace: string };
    expect(res.status!.message).to.include(`TrustPolicy ${meta.namespace}/${meta.name} is invalid`).and.include('spec.root.keys[0]: not a PEM public key or certificate');
  });

  it('lets through what is not a trustgate policy, and answers a review without uid with 400', async () => {
    const pod = fixture('pod-create.json');
    expect((await admit(pod)).allowed).to.equal(true);
    const r = await postJson(server.port, '/validate-policy', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }, { ca });
    expect(r.status).to.equal(400);
  });

  it("leaves the Pod webhooks as they were: /validate still verifies images", async () => {
    const pod = fixture('pod-create.json');
    expect((JSON.parse((await postJson(server.port, '/validate', pod, { ca })).body).response).allowed).to.equal(true);
    verifier.table['nginx:1.25'] = failed('nginx:1.25', failure('enforce', 'tag "1.25" is not signed'));
    const out = JSON.parse((await postJson(server.port, '/validate', pod, { ca })).body).response;
    expect(out.allowed).to.equal(false);
    expect(out.status.message).to.include('image "nginx:1.25"').and.include('is not signed');
  });

  it('/metrics counts policy reviews under webhook="policy"', async () => {
    const text = metrics.render();
    expect(text).to.match(/trustgate_admissions_total\{operation="CREATE",result="denied",mode="none",webhook="policy"\} \d+/);
    expect(text).to.match(/trustgate_admissions_total\{operation="DELETE",result="allowed",mode="none",webhook="policy"\} 1/);
  });
});
