// One failure type from tuf/ to the admission response: every code has a cause, and the
// same code from different layers (a fetch over its byte cap, metadata over its declared
// length) reaches the verdict with different causes through the real engine.
import { expect } from 'chai';
import type { TrustPolicy } from '../../webhook/src/policy/model.js';
import { FetchError, type MetadataRequest } from '../../webhook/src/notary/source.js';
import { VerificationEngine } from '../../webhook/src/verify/engine.js';
import { causesOf, failure, FAILURE_CODES, trustServerErrorKind, type FailureCause, type FailureCode } from '../../webhook/src/verify/failure.js';
import type { ImageVerdict, PolicyFailure } from '../../webhook/src/verify/types.js';
import { GUN, RepoForge } from '../support/forge.js';
import { ForgedSource } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');
const SERVER = 'https://notary.test:4443';
const CAUSES: FailureCause[] = ['trust-data', 'transport', 'policy', 'reference', 'internal'];

function policy(forge: { rootPems: string[] }): TrustPolicy {
  return {
    kind: 'ClusterTrustPolicy',
    name: 'a',
    source: 'test',
    spec: { images: [GUN], trustServer: { url: SERVER }, root: { keys: forge.rootPems, threshold: 1 }, mode: 'enforce' },
  };
}

async function verify(source: ForgedSource, image = `${GUN}:v2.0`, errors: string[] = []): Promise<ImageVerdict> {
  const engine = new VerificationEngine({
    policies: { policiesFor: () => [policy(source.repo)] },
    sourceFor: () => source,
    clock: () => NOW,
    workers: false,
    metrics: { trustServerError: (server, kind) => errors.push(`${server} ${kind}`) },
  });
  try {
    return await engine.verifyImage(image, undefined, AbortSignal.timeout(10_000));
  } finally {
    await engine.close();
  }
}

/** The failure is one the union allows: its code is listed under its cause. */
function expectWellFormed(f: PolicyFailure): void {
  expect(FAILURE_CODES[f.cause] as readonly string[], `${f.cause} ${f.code}`).to.include(f.code);
}

describe('failure codes and causes', () => {
  it('every code of every cause maps back to that cause, and every cause has codes', () => {
    for (const cause of CAUSES) {
      expect(FAILURE_CODES[cause], cause).to.not.be.empty;
      for (const code of FAILURE_CODES[cause]) expect(causesOf(code), code).to.include(cause);
    }
    expect(Object.keys(FAILURE_CODES).sort()).to.deep.equal([...CAUSES].sort());
  });

  it('covers the codes the layers produce, and only the shared ones have several causes', () => {
    const all = new Set<FailureCode>(CAUSES.flatMap((c) => [...FAILURE_CODES[c]]));
    // TufErrorCode, FetchErrorKind, the policy-level and reference codes, worker and deadline codes.
    for (const code of ['malformed', 'hash-mismatch', 'signature', 'bad-key', 'expired', 'rollback', 'untrusted-root', 'delegation', 'unreachable', 'tls', 'auth', 'http', 'no-policy', 'invalid-policy', 'unsigned', 'digest-mismatch', 'registry-alias', 'invalid-reference', 'error'] as const) {
      expect(all.has(code), code).to.equal(true);
      expect(causesOf(code), code).to.have.length(1);
    }
    expect(causesOf('too-large').sort()).to.deep.equal(['internal', 'transport', 'trust-data']);
    expect(causesOf('not-found').sort()).to.deep.equal(['transport', 'trust-data']);
    expect(causesOf('timeout').sort()).to.deep.equal(['internal', 'transport']);
    expect(causesOf('signature')).to.deep.equal(['trust-data']);
    expect(causesOf('no-policy')).to.deep.equal(['policy']);
    expect(causesOf('invalid-reference')).to.deep.equal(['reference']);
  });

  it('labels trust server errors from the failure: transport keeps its kind, workers say worker-*, refused data is not a server error', () => {
    expect(trustServerErrorKind(failure('transport', 'too-large'))).to.equal('too-large');
    expect(trustServerErrorKind(failure('internal', 'too-large'))).to.equal('worker-memory');
    expect(trustServerErrorKind(failure('internal', 'timeout'))).to.equal('worker-timeout');
    expect(trustServerErrorKind(failure('trust-data', 'too-large'))).to.equal(undefined);
    expect(trustServerErrorKind(failure('policy', 'unsigned'))).to.equal(undefined);
  });

  describe('through the real engine', () => {
    let forge: RepoForge;
    before(() => {
      forge = new RepoForge({ now: NOW });
    });

    it('a fetch over its byte cap is a transport failure, counted as a trust server error', async () => {
      const source = new (class extends ForgedSource {
        override async fetch(req: MetadataRequest, signal?: AbortSignal): Promise<Uint8Array> {
          if (req.role === 'timestamp') throw new FetchError('too-large', this.server, req.role, `more than ${req.maxBytes} bytes`);
          return super.fetch(req, signal);
        }
      })(forge.build());
      const errors: string[] = [];
      const v = await verify(source, `${GUN}:v2.0`, errors);
      expect(v.allowed).to.equal(false);
      expect(v.failures[0]).to.include({ code: 'too-large', cause: 'transport', role: 'timestamp', server: SERVER });
      expectWellFormed(v.failures[0]!);
      expect(errors).to.deep.equal([`${SERVER} too-large`]);
    });

    it('metadata longer than its parent declares is a trust-data failure with the same code, and no trust server error', async () => {
      const repo = forge.build();
      // A server that ignores the byte cap and serves targets padded past the length snapshot signs.
      repo.files.set('targets', Buffer.concat([repo.get('targets'), Buffer.alloc(64, 0x20)]));
      const source = new ForgedSource(repo);
      source.honoursMaxBytes = false;
      const errors: string[] = [];
      const v = await verify(source, `${GUN}:v2.0`, errors);
      expect(v.allowed).to.equal(false);
      expect(v.failures[0]).to.include({ code: 'too-large', cause: 'trust-data', role: 'targets' });
      expectWellFormed(v.failures[0]!);
      expect(errors).to.deep.equal([]);
    });

    it('an unsigned tag is a policy failure, an unparseable reference a reference failure', async () => {
      const unsigned = await verify(new ForgedSource(forge.build()), `${GUN}:v9`);
      expect(unsigned.failures[0]).to.include({ code: 'unsigned', cause: 'policy' });
      expectWellFormed(unsigned.failures[0]!);
      const bad = await verify(new ForgedSource(forge.build()), 'Not A Reference');
      expect(bad.failures[0]).to.include({ code: 'invalid-reference', cause: 'reference' });
      expectWellFormed(bad.failures[0]!);
    });
  });
});
