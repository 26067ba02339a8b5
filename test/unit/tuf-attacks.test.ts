/**
 * Attacker-side tests of the TUF core: each starts from a repository that verifies, changes
 * one thing the way an attacker (or a broken server) could, and expects a refusal with a
 * precise code and a message that names what was wrong. Whole repositories go through the
 * real updater (notary/updater.ts) over a forged source, as an admission would load them.
 */
import { expect } from 'chai';
import {
  MAX_ROOT_BYTES,
  MAX_TIMESTAMP_BYTES,
  TrustedMetadataSet,
  TufError,
  pinFromPem,
  verifyNextRoot,
  verifyPinnedRoot,
  type TufErrorCode,
} from '../../webhook/src/tuf/index.js';
import {
  certKey,
  DAY,
  dict,
  ForgeKey,
  GUN,
  manifest,
  RepoForge,
  replaceText,
  sha256hex,
  tamper,
  withSignatures,
  YEAR,
  type Doc,
  type ForgedRepo,
} from '../support/forge.js';
import { update, type Updated, type UpdateOptions } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');

function ok<T>(v: T | TufError): T {
  if (v instanceof TufError) expect.fail(`unexpected TufError: ${v.code} ${v.message}`);
  return v as T;
}

/** The TufError `f` throws or returns (or its promise rejects or resolves to); fails the test if it succeeds or throws anything else. */
async function refusal(f: () => unknown): Promise<TufError> {
  let v: unknown;
  try {
    v = await f();
  } catch (e) {
    if (e instanceof TufError) return e;
    throw e;
  }
  if (v instanceof TufError) return v;
  return expect.fail(`expected a TufError, got ${JSON.stringify(v, (_k, x: unknown) => (x instanceof Map ? [...x.keys()] : x))?.slice(0, 200)}`);
}

async function expectRefused(f: () => unknown, code: TufErrorCode, role: string, message: RegExp | string): Promise<TufError> {
  const e = await refusal(f);
  expect(e.code, `${e.message}`).to.equal(code);
  expect(e.role, e.message).to.equal(role);
  if (typeof message === 'string') expect(e.message).to.contain(message);
  else expect(e.message).to.match(message);
  return e;
}

/** One run of the real updater against the forged repository, pinned to its first root keys. */
function load(r: ForgedRepo, opts: Partial<UpdateOptions> = {}): Promise<Updated> {
  return update(r, { pin: pinFromPem(r.rootPems), ...opts });
}

function fresh(opts: { algorithm?: 'ecdsa' | 'ed25519'; rootKeys?: number; rootThreshold?: number; gun?: string } = {}) {
  return new RepoForge({ now: NOW, sharedKeys: true, ...opts });
}

function sameLength(a: Buffer, b: Buffer) {
  expect(a.length, 'test setup: files must have the same length').to.equal(b.length);
  expect(a.equals(b)).to.equal(false);
}

describe('tuf attacks: rollback against the version floor', () => {
  let forge: RepoForge;
  let r: ForgedRepo;
  before(() => {
    forge = fresh();
    r = forge.build();
  });

  it('accepts versions equal to the floor (control)', async () => {
    const floor = new Map([
      ['root', 1],
      ['timestamp', 1],
      ['snapshot', 2],
      ['targets', 2],
      ['targets/releases', 1],
    ]);
    expect((await load(r, { floor })).repo.roleNames()).to.include('targets/releases');
  });

  for (const [role, version, floorVersion] of [
    ['timestamp', 1, 2],
    ['snapshot', 2, 5],
    ['targets', 2, 3],
    ['root', 1, 2],
  ] as const) {
    it(`refuses ${role} v${version} once v${floorVersion} was trusted`, async () => {
      await expectRefused(() => load(r, { floor: new Map([[role, floorVersion]]) }), 'rollback', role, `version ${version} is older than version ${floorVersion} already trusted`);
    });
  }

  it('refuses a rolled-back delegation (fatal, not skipped)', async () => {
    await expectRefused(
      () => load(r, { floor: new Map([['targets/releases/nightly', 4]]) }),
      'rollback',
      'targets/releases/nightly',
      'version 1 is older than version 4',
    );
  });

  it('refuses a root chain that skips, repeats or goes back a version', async () => {
    const f = fresh();
    f.nextRoot().nextRoot();
    const chain = f.build().roots;
    const pin = pinFromPem(f.build().rootPems);
    const v1 = verifyPinnedRoot(chain[0]!, pin, GUN);
    await expectRefused(() => verifyNextRoot(v1, chain[2]!, GUN), 'rollback', 'root', 'expected root version 2, got 3');
    await expectRefused(() => verifyNextRoot(v1, chain[0]!, GUN), 'rollback', 'root', 'expected root version 2, got 1');
    const v2 = verifyNextRoot(v1, chain[1]!, GUN);
    await expectRefused(() => verifyNextRoot(v2, chain[0]!, GUN), 'rollback', 'root', 'expected root version 3, got 1');
  });
});

describe('tuf attacks: freeze (expired metadata)', () => {
  for (const role of ['timestamp', 'snapshot', 'targets', 'root'] as const) {
    it(`refuses an expired ${role}`, async () => {
      const f = fresh();
      f.expire(role, -1000);
      const r = f.build();
      await expectRefused(() => load(r), 'expired', role, `expired at ${f.signed(role).expires}`);
    });
  }

  it('refuses a timestamp that expires exactly now', async () => {
    const f = fresh();
    f.expire('timestamp', 0);
    await expectRefused(() => load(f.build()), 'expired', 'timestamp', 'expired at');
  });

  it('accepts an expired intermediate root while walking the chain (only the newest must be fresh)', async () => {
    const f = fresh();
    f.expire('root', -YEAR);
    f.nextRoot();
    f.expire('root', YEAR);
    const { root } = await load(f.build());
    expect(root.meta.version).to.equal(2);
  });

  it('skips an expired delegation with its subtree; lookups in it return the expiry', async () => {
    const f = fresh();
    f.expire('targets/releases', -DAY);
    const { repo, visited } = await load(f.build());
    expect(visited.map(([n]) => n)).to.deep.equal(['targets/releases', 'targets/qa']);
    await expectRefused(() => visited[0]![1], 'expired', 'targets/releases', `expired at ${f.signed('targets/releases').expires}`);
    expect([...repo.parts.skipped.keys()]).to.deep.equal(['targets/releases']);
    await expectRefused(() => repo.findInRole('targets/releases', 'v2.0', NOW), 'expired', 'targets/releases', 'expired at');
    await expectRefused(() => repo.listRole('targets/releases', NOW), 'expired', 'targets/releases', 'expired at');
    await expectRefused(() => repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'not-found', 'targets/releases/nightly', 'not reachable');
    expect(ok(repo.findInRole('targets/qa', 'qa/rc1', NOW)).name).to.equal('qa/rc1');
    expect(repo.roleNames()).to.deep.equal(['targets', 'targets/qa']);
  });

  it('refuses a delegation that expired after verification, at lookup time', async () => {
    const f = fresh();
    f.expire('targets/qa', 2 * DAY);
    const { repo } = await load(f.build());
    expect(ok(repo.findInRole('targets/qa', 'qa/rc1', NOW)).name).to.equal('qa/rc1');
    await expectRefused(() => repo.findInRole('targets/qa', 'qa/rc1', new Date(NOW.getTime() + 3 * DAY)), 'expired', 'targets/qa', 'expired at');
  });

  it('refuses a nested delegation whose parent expired after verification, at lookup time', async () => {
    // The parent is where the nested role's keys and paths come from: once the parent is
    // stale, so is everything it vouches for (a fresh walk would skip the whole subtree).
    const f = fresh();
    f.expire('targets/releases', 2 * DAY);
    const { repo } = await load(f.build());
    const later = new Date(NOW.getTime() + 3 * DAY);
    expect(ok(repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW)).name).to.equal('nightly/20310601');
    await expectRefused(() => repo.findInRole('targets/releases', 'v2.0', later), 'expired', 'targets/releases', 'expired at');
    const e = await refusal(() => repo.findInRole('targets/releases/nightly', 'nightly/20310601', later));
    expect(e.code).to.equal('expired');
    expect(e.message).to.contain('targets/releases');
  });

  it('refuses a root whose certificate expired, although root.json itself has not', async () => {
    const f = fresh();
    const expiredCert = certKey(ForgeKey.ecdsa(), GUN, NOW, {
      notBefore: new Date(NOW.getTime() - 2 * YEAR),
      notAfter: new Date(NOW.getTime() - DAY),
    });
    f.rotateRoot([expiredCert]);
    const r = f.build();
    // Walking the chain does not check certificate dates; the root in force must be valid now.
    const e = await expectRefused(() => load(r), 'untrusted-root', 'root', /valid only from .* to /);
    expect(e.message).to.contain(expiredCert.id.slice(0, 12));
  });

  it('refuses a root certificate that is not valid yet (beyond one day of leeway) and accepts one within it', async () => {
    const within = fresh();
    within.rotateRoot([certKey(ForgeKey.ecdsa(), GUN, NOW, { notBefore: new Date(NOW.getTime() + 12 * 3600 * 1000) })]);
    expect((await load(within.build())).root.meta.version).to.equal(2);
    const beyond = fresh();
    beyond.rotateRoot([certKey(ForgeKey.ecdsa(), GUN, NOW, { notBefore: new Date(NOW.getTime() + 2 * DAY) })]);
    await expectRefused(() => load(beyond.build()), 'untrusted-root', 'root', 'valid only from');
  });
});

describe('tuf attacks: mix-and-match', () => {
  let forge: RepoForge;
  let a: ForgedRepo;
  before(() => {
    forge = fresh();
    a = forge.build();
  });

  it('refuses a snapshot whose hash differs from what the timestamp declares', async () => {
    forge.bump('snapshot');
    const b = forge.build();
    forge.bump('snapshot', -1);
    sameLength(a.get('snapshot'), b.get('snapshot'));
    await expectRefused(() => load(a, { serve: new Map([['snapshot', b.get('snapshot')]]) }), 'hash-mismatch', 'snapshot', 'sha256 differs from the hash timestamp declares');
  });

  it('refuses targets from another snapshot', async () => {
    forge.bump('targets');
    const b = forge.build();
    forge.bump('targets', -1);
    sameLength(a.get('targets'), b.get('targets'));
    await expectRefused(() => load(a, { serve: new Map([['targets', b.get('targets')]]) }), 'hash-mismatch', 'targets', 'sha256 differs from the hash snapshot declares');
  });

  it('refuses a delegation from another snapshot (fatal, not skipped)', async () => {
    forge.bump('targets/qa');
    const b = forge.build();
    forge.bump('targets/qa', -1);
    sameLength(a.get('targets/qa'), b.get('targets/qa'));
    await expectRefused(() => load(a, { serve: new Map([['targets/qa', b.get('targets/qa')]]) }), 'hash-mismatch', 'targets/qa', 'differs from the hash snapshot declares');
  });

  it('refuses a root that is not the one the snapshot declares', async () => {
    const f = fresh();
    const old = f.build();
    f.nextRoot();
    const b = f.build();
    sameLength(old.get('root'), b.get('root'));
    // Newest root v2, but timestamp/snapshot of the time of v1.
    const mixed: ForgedRepo = { ...b, files: new Map([...old.files, ['root', b.get('root')]]) };
    await expectRefused(() => load(mixed), 'hash-mismatch', 'root', 'differs from the hash snapshot declares');
  });

  it('refuses a snapshot that does not list targets', async () => {
    const f = fresh();
    await expectRefused(() => load(f.build({ omitFromSnapshot: ['targets'] })), 'malformed', 'snapshot', 'meta.targets with a sha256 hash is required');
  });

  it('does not fetch a delegation the snapshot does not list', async () => {
    const f = fresh();
    const { repo, visited } = await load(f.build({ omitFromSnapshot: ['targets/qa'] }));
    expect(visited.map(([n]) => n)).not.to.include('targets/qa');
    await expectRefused(() => repo.findInRole('targets/qa', 'qa/rc1', NOW), 'not-found', 'targets/qa', 'targets/qa');
  });

  it('refuses snapshot meta that declares only unknown hash algorithms', async () => {
    const f = fresh();
    const r = f.build({
      beforeSign: (role, signed) => {
        if (role === 'timestamp') signed.meta.snapshot.hashes = dict({ md5: 'AAAAAAAAAAAAAAAAAAAAAA==' });
      },
    });
    await expectRefused(() => load(r), 'hash-mismatch', 'snapshot', 'declares no sha256/sha512 hash');
  });

  it('refuses a snapshot whose sha512 alone is wrong', async () => {
    const f = fresh();
    const r = f.build({
      beforeSign: (role, signed) => {
        if (role === 'timestamp') signed.meta.snapshot.hashes.sha512 = Buffer.alloc(64, 1).toString('base64');
      },
    });
    await expectRefused(() => load(r), 'hash-mismatch', 'snapshot', 'sha512 differs');
  });
});

describe('tuf attacks: signatures and thresholds', () => {
  it('refuses a threshold of 2 padded with two signatures by one key', async () => {
    const f = fresh();
    const t1 = ForgeKey.ecdsa();
    const t2 = ForgeKey.ecdsa();
    f.setRoleKey('targets', [t1, t2], 2);
    expect((await load(f.build())).repo.roleNames()[0]).to.equal('targets'); // control: both keys sign
    f.signWith('targets', [t1, t1]);
    const r = f.build();
    expect((JSON.parse(r.get('targets').toString()) as { signatures: unknown[] }).signatures.length).to.equal(2);
    await expectRefused(() => load(r), 'signature', 'targets', '1 valid signature(s) by targets keys, threshold is 2');
  });

  it('refuses a role that lists one key twice to reach a threshold of 2', async () => {
    const f = fresh();
    const t1 = f.keys.targets;
    f.signed('root').roles.targets = dict({ keyids: [t1.id, t1.id], threshold: 2 });
    f.signWith('targets', [t1, t1]);
    await expectRefused(() => load(f.build()), 'signature', 'targets', 'threshold is 2');
  });

  it('skips a delegation whose threshold of 2 is padded by one key signing twice', async () => {
    const f = fresh();
    const k1 = ForgeKey.ecdsa();
    const k2 = ForgeKey.ecdsa();
    f.delegate('targets', 'targets/qa', [k1, k2], ['qa/'], 2);
    f.signWith('targets/qa', [k1, k1]);
    const { repo } = await load(f.build());
    await expectRefused(() => repo.findInRole('targets/qa', 'qa/rc1', NOW), 'signature', 'targets/qa', 'threshold is 2');
    f.signWith('targets/qa', [k2, k1]);
    expect(ok((await load(f.build())).repo.findInRole('targets/qa', 'qa/rc1', NOW)).name).to.equal('qa/rc1');
  });

  it('refuses a signature by a key that is in root but not in the role', async () => {
    const f = fresh();
    f.signWith('timestamp', [f.keys.snapshot]);
    await expectRefused(() => load(f.build()), 'signature', 'timestamp', `signature by key ${f.keys.snapshot.id.slice(0, 12)}…, which is not a timestamp key`);
  });

  it('refuses a snapshot signed by the timestamp key (a server key cannot stand in for another role)', async () => {
    const f = fresh();
    f.signWith('snapshot', [f.keys.timestamp]);
    await expectRefused(() => load(f.build()), 'signature', 'snapshot', 'which is not a snapshot key');
  });

  it('skips a nested delegation signed by its parent\'s key instead of its own', async () => {
    const f = fresh();
    f.signWith('targets/releases/nightly', [f.keys.releases]);
    const { repo, visited } = await load(f.build());
    expect(visited.map(([n, o]) => [n, o instanceof TufError ? o.code : 'ok'])).to.deep.equal([
      ['targets/releases', 'ok'],
      ['targets/releases/nightly', 'signature'],
      ['targets/qa', 'ok'],
    ]);
    await expectRefused(() => repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'signature', 'targets/releases/nightly', 'keys delegated by targets/releases');
  });

  it('refuses a root threshold of 2 met by one root key', async () => {
    const f = fresh({ rootKeys: 2, rootThreshold: 2 });
    expect((await load(f.build())).root.meta.roles.root.threshold).to.equal(2);
    f.signWith('root', [f.keys.root[0]!, f.keys.root[0]!]);
    const r = f.build();
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN), 'signature', 'root', '1 valid signature(s) by root v1 keys, threshold is 2');
  });

  it('refuses a threshold of 0 in root', async () => {
    const f = fresh();
    f.signed('root').roles.timestamp.threshold = 0;
    const r = f.build();
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN), 'malformed', 'root', 'threshold must be an integer >= 1');
  });

  it('refuses a delegation role object that its parent does not list (API misuse cannot widen trust)', async () => {
    const f = fresh();
    const r = f.build();
    const set = new TrustedMetadataSet(GUN, NOW);
    set.setRoot(verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN));
    set.updateTimestamp(r.get('timestamp'));
    set.updateSnapshot(r.get('snapshot'));
    set.updateTargets(r.get('targets'));
    const real = set.delegatedRoles('targets')[0]!;
    const forged = { ...real, keyids: [f.keys.qa.id], paths: [''] };
    await expectRefused(() => set.updateDelegation(forged, 'targets', r.get('targets/releases')), 'delegation', 'targets/releases', 'not delegated by targets');
    await expectRefused(() => set.updateDelegation(set.delegatedRoles('targets')[1]!, 'targets/releases', r.get('targets/qa')), 'delegation', 'targets/qa', 'parent targets/releases is not trusted');
  });

  it('refuses a signature by an unknown key that claims a role key ID', async () => {
    const f = fresh();
    f.signWith('timestamp', [{ key: ForgeKey.ecdsa(), keyid: f.keys.timestamp.id }]);
    await expectRefused(() => load(f.build()), 'signature', 'timestamp', 'invalid ecdsa signature by key');
  });

  it('skips a delegation signed by a sibling delegation key', async () => {
    const f = fresh();
    f.signWith('targets/releases', [f.keys.qa]);
    const { repo } = await load(f.build());
    await expectRefused(() => repo.findInRole('targets/releases', 'v2.0', NOW), 'signature', 'targets/releases', 'not a targets/releases (keys delegated by targets) key');
  });

  it('refuses a root that files a key under another ID', async () => {
    const f = fresh();
    const r = f.build({
      beforeSign: (role, signed) => {
        if (role !== 'root') return;
        // The timestamp key filed under the snapshot key's ID: one key would count as another.
        signed.keys[f.keys.snapshot.id] = f.keys.timestamp.json();
      },
    });
    await expectRefused(() => load(r), 'bad-key', 'root', `key listed as ${f.keys.snapshot.id} actually has ID ${f.keys.timestamp.id}`);
  });

  it('refuses targets whose delegation keys are filed under wrong IDs', async () => {
    const f = fresh();
    const r = f.build({
      beforeSign: (role, signed) => {
        if (role === 'targets') signed.delegations.keys[f.keys.releases.id] = f.keys.qa.json();
      },
    });
    await expectRefused(() => load(r), 'bad-key', 'targets', 'actually has ID');
  });

  for (const method of ['rsapss', 'eddsa', 'rsapkcs1v15']) {
    it(`refuses an ecdsa key's signature labelled "${method}"`, async () => {
      const f = fresh();
      f.signWith('timestamp', [{ key: f.keys.timestamp, method, signWith: 'ecdsa' }]);
      await expectRefused(() => load(f.build()), 'signature', 'timestamp', `is ecdsa and cannot make "${method}" signatures`);
    });
  }

  it('refuses an ed25519 key\'s signature labelled "ecdsa"', async () => {
    const f = fresh({ algorithm: 'ed25519' });
    f.signWith('timestamp', [{ key: f.keys.timestamp, method: 'ecdsa', signWith: 'eddsa' }]);
    await expectRefused(() => load(f.build()), 'signature', 'timestamp', 'is ed25519 and cannot make "ecdsa" signatures');
  });

  it('refuses an rsa-x509 delegation key\'s signature labelled "ecdsa"', async () => {
    const f = fresh();
    f.signWith('targets/qa', [{ key: f.keys.qa, method: 'ecdsa', signWith: 'rsapss' }]);
    const { repo } = await load(f.build());
    await expectRefused(() => repo.findInRole('targets/qa', 'qa/rc1', NOW), 'signature', 'targets/qa', 'is rsa-x509 and cannot make "ecdsa" signatures');
  });

  it('accepts a method written in upper case (Notary lower-cases it)', async () => {
    const f = fresh();
    f.signWith('timestamp', [{ key: f.keys.timestamp, method: 'ECDSA', signWith: 'ecdsa' }]);
    expect((await load(f.build())).repo.parts.timestamp.meta.version).to.equal(1);
  });

  it('refuses an ECDSA signature encoded in DER instead of raw r||s', async () => {
    const f = fresh();
    f.signWith('timestamp', [{ key: f.keys.timestamp, signWith: 'ecdsa-der' }]);
    await expectRefused(() => load(f.build()), 'signature', 'timestamp', 'invalid ecdsa signature');
  });

  it('refuses a file whose only signature was removed', async () => {
    const r = fresh().build();
    const bare = withSignatures(r.get('timestamp'), (s) => s.splice(0));
    await expectRefused(() => load(r, { serve: new Map([['timestamp', bare]]) }), 'signature', 'timestamp', '0 valid signature(s)');
  });

  it('refuses a signature that is not base64', async () => {
    const r = fresh().build();
    const bad = withSignatures(r.get('timestamp'), (s) => (s[0]!.sig = 'not base64!'));
    await expectRefused(() => load(r, { serve: new Map([['timestamp', bad]]) }), 'malformed', 'timestamp', 'signatures[0].sig is not standard base64');
  });

  it('keeps counting when one of several signatures is garbage (Notary skips bad signatures)', async () => {
    const r = fresh().build();
    const extra = withSignatures(r.get('timestamp'), (s) => s.unshift({ keyid: 'ab'.repeat(32), method: 'ecdsa', sig: 'AAAA' }));
    expect((await load(r, { serve: new Map([['timestamp', extra]]) })).repo.parts.timestamp.meta.version).to.equal(1);
  });

  it('refuses a change to signed data made after signing', async () => {
    const r = fresh().build();
    const later = tamper(r.get('timestamp'), (s) => (s.expires = '2099-01-01T00:00:00Z'));
    await expectRefused(() => load(r, { serve: new Map([['timestamp', later]]) }), 'signature', 'timestamp', 'invalid ecdsa signature');
  });
});

describe('tuf attacks: endless data', () => {
  let r: ForgedRepo;
  before(() => {
    r = fresh().build();
  });

  for (const role of ['snapshot', 'targets', 'targets/releases']) {
    it(`refuses ${role} longer than declared`, async () => {
      const longer = Buffer.concat([r.get(role), Buffer.from(' '.repeat(10))]);
      const by = role === 'snapshot' ? 'timestamp' : 'snapshot';
      await expectRefused(() => load(r, { serve: new Map([[role, longer]]) }), 'too-large', role, `more than the ${r.get(role).length} that ${by} declares`);
    });
  }

  it('refuses a file shorter than declared', async () => {
    const shorter = r.get('targets').subarray(0, -1);
    await expectRefused(() => load(r, { serve: new Map([['targets', shorter]]) }), 'hash-mismatch', 'targets', 'but snapshot declares');
  });

  it(`refuses a timestamp over ${MAX_TIMESTAMP_BYTES} bytes before parsing it`, async () => {
    const huge = Buffer.concat([r.get('timestamp'), Buffer.alloc(MAX_TIMESTAMP_BYTES, 0x20)]);
    await expectRefused(() => load(r, { serve: new Map([['timestamp', huge]]) }), 'too-large', 'timestamp', `exceed the cap of ${MAX_TIMESTAMP_BYTES}`);
  });

  it(`refuses a root over ${MAX_ROOT_BYTES} bytes, pinned or in a chain`, async () => {
    const huge = Buffer.concat([r.get('root'), Buffer.alloc(MAX_ROOT_BYTES, 0x20)]);
    const pin = pinFromPem(r.rootPems);
    await expectRefused(() => verifyPinnedRoot(huge, pin, GUN), 'too-large', 'root', 'exceed the cap');
    const v1 = verifyPinnedRoot(r.get('root'), pin, GUN);
    await expectRefused(() => verifyNextRoot(v1, huge, GUN), 'too-large', 'root', 'exceed the cap');
  });

  it('refuses a signed targets file if any one target is malformed, before any lookup (hashes are decoded lazily)', async () => {
    for (const [edit, message] of [
      [(t: Doc) => (t.hashes.sha256 = 'not base64!'), 'targets["other"].hashes.sha256 is not standard base64'],
      [(t: Doc) => (t.hashes.sha512 = 12), 'targets["other"].hashes.sha512 must be a string'],
      [(t: Doc) => (t.hashes = 'AAAA'), 'targets["other"].hashes must be an object'],
      [(t: Doc) => (t.length = -1), 'targets["other"].length must be an integer >= 0'],
    ] as const) {
      const f = fresh();
      f.addTarget('targets', 'other', manifest('other'), true);
      edit(f.signed('targets').targets['other']);
      await expectRefused(() => load(f.build()), 'malformed', 'targets', message);
    }
  });

  it('a target whose sha256 is base64 of the wrong size is refused at lookup; its neighbours still resolve', async () => {
    const f = fresh();
    f.addTarget('targets', 'short', manifest('short'));
    f.signed('targets').targets['short'].hashes.sha256 = Buffer.alloc(20).toString('base64');
    const { repo } = await load(f.build());
    await expectRefused(() => repo.findInRole('targets', 'short', NOW), 'malformed', 'targets', 'target "short" has no sha256 manifest digest');
    expect(ok(repo.findInRole('targets', 'v1.0', NOW)).digest).to.equal('sha256:' + sha256hex(manifest('v1.0')));
    // Looked up twice: the same answer from the memoised decode.
    expect(ok(repo.findInRole('targets', 'v1.0', NOW)).digest).to.equal('sha256:' + sha256hex(manifest('v1.0')));
  });

  it('refuses deeply nested JSON inside a signed, correctly declared targets file without crashing', async () => {
    const f = fresh();
    let deep: Doc = dict({ leaf: 1 });
    for (let i = 0; i < 500; i++) deep = dict({ n: deep });
    f.signed('targets').targets['v1.0'].custom = deep;
    await expectRefused(() => load(f.build()), 'malformed', 'targets', 'nests deeper');
  });

  it('refuses a timestamp of 20000 nested arrays', async () => {
    const deep = Buffer.from('{"signed":' + '['.repeat(20000) + ']'.repeat(20000) + ',"signatures":[]}');
    await expectRefused(() => load(r, { serve: new Map([['timestamp', deep]]) }), 'malformed', 'timestamp', /deeper|JSON/);
  });
});

describe('tuf attacks: delegation names and paths', () => {
  it('ignores a target a delegation signs outside its paths', async () => {
    const f = fresh();
    f.addTarget('targets/qa', 'v1.0', manifest('evil'));
    const { repo } = await load(f.build());
    await expectRefused(() => repo.findInRole('targets/qa', 'v1.0', NOW), 'delegation', 'targets/qa', 'signs "v1.0", which is outside its delegated paths ["qa/"]');
    expect(ok(repo.findDigestInRole('targets/qa', 'sha256:' + sha256hex(manifest('evil')), NOW))).to.deep.equal([]);
    expect(ok(repo.listRole('targets/qa', NOW)).map((t) => t.name)).to.deep.equal(['qa/rc1']);
  });

  it('does not let a nested role widen the paths its parent has', async () => {
    const f = fresh();
    f.delegationEntry('targets', 'targets/releases').paths = ['rel/'];
    f.delegationEntry('targets/releases', 'targets/releases/nightly').paths = ['', 'nightly/', 'rel/n/'];
    f.addTarget('targets/releases/nightly', 'rel/n/1', manifest('n1'));
    const { repo, visited } = await load(f.build());
    const nightly = ok(visited.find(([n]) => n === 'targets/releases/nightly')![1]);
    expect(nightly.paths).to.deep.equal(['rel/n/']);
    await expectRefused(() => repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'delegation', 'targets/releases/nightly', 'outside its delegated paths ["rel/n/"]');
    expect(ok(repo.findInRole('targets/releases/nightly', 'rel/n/1', NOW)).name).to.equal('rel/n/1');
    // The parent's own targets outside its paths are refused too.
    await expectRefused(() => repo.findInRole('targets/releases', 'v2.0', NOW), 'delegation', 'targets/releases', 'outside');
  });

  it('refuses a delegation that lists a role that is not its direct child (fatal)', async () => {
    const f = fresh();
    f.delegate('targets/releases', 'targets/qa', [f.keys.qa], ['']);
    const e = await expectRefused(() => load(f.build()), 'delegation', 'targets/releases', '"targets/qa" is not a valid direct child delegation of targets/releases');
    expect(e.message).not.to.contain('undefined');
  });

  for (const name of ['targets/../x', 'targets/Releases', 'targets/releases/nightly', 'targets', 'targets/', 'targets//x', 'other/x', 'targets/a b', 'targets/./x', `targets/${'a'.repeat(250)}`]) {
    it(`refuses targets delegating to ${JSON.stringify(name.length > 40 ? name.slice(0, 20) + '…' : name)}`, async () => {
      const f = fresh();
      const r = f.build({
        beforeSign: (role, signed) => {
          if (role === 'targets') signed.delegations.roles.push(dict({ keyids: [f.keys.releases.id], name, paths: [''], threshold: 1 }));
        },
      });
      await expectRefused(() => load(r), 'delegation', 'targets', 'is not a valid direct child delegation of targets');
    });
  }

  for (const name of ['targets/releases', 'targets/qa', 'targets/releases/nightly/deeper', 'targets/releases/Nightly']) {
    it(`refuses targets/releases delegating to ${JSON.stringify(name)}`, async () => {
      const f = fresh();
      const r = f.build({
        beforeSign: (role, signed) => {
          if (role === 'targets/releases') signed.delegations.roles.push(dict({ keyids: [f.keys.nightly.id], name, paths: [''], threshold: 1 }));
        },
      });
      await expectRefused(() => load(r), 'delegation', 'targets/releases', `"${name}" is not a valid direct child delegation of targets/releases`);
    });
  }

  it('refuses a delegation listed twice', async () => {
    const f = fresh();
    const r = f.build({
      beforeSign: (role, signed) => {
        if (role === 'targets') signed.delegations.roles.push(dict({ keyids: [f.keys.qa.id], name: 'targets/releases', paths: [''], threshold: 1 }));
      },
    });
    await expectRefused(() => load(r), 'delegation', 'targets', 'targets/releases is listed twice');
  });

  it('refuses path_hash_prefixes, which Notary v1 does not have', async () => {
    const f = fresh();
    f.delegationEntry('targets', 'targets/qa').path_hash_prefixes = ['ab'];
    await expectRefused(() => load(f.build()), 'delegation', 'targets', 'path_hash_prefixes');
  });

  it('refuses a delegation whose key is not in delegations.keys', async () => {
    const f = fresh();
    f.delegationEntry('targets', 'targets/qa').keyids = [ForgeKey.ecdsa().id];
    await expectRefused(() => load(f.build()), 'malformed', 'targets', 'which is not in delegations.keys');
  });

  it('finds a tag signed only in a role that was not asked for nowhere else', async () => {
    const f = fresh();
    f.addTarget('targets/qa', 'qa/only', manifest('qa-only'));
    const { repo } = await load(f.build());
    await expectRefused(() => repo.findInRole('targets/releases', 'qa/only', NOW), 'not-found', 'targets/releases', 'does not sign "qa/only"');
    await expectRefused(() => repo.findInRole('targets', 'qa/only', NOW), 'not-found', 'targets', 'does not sign "qa/only"');
    expect(ok(repo.findInRole('targets/qa', 'qa/only', NOW)).digest).to.equal('sha256:' + sha256hex(manifest('qa-only')));
  });
});

describe('tuf attacks: root and pinning', () => {
  it('refuses a root rotation signed only by the new keys', async () => {
    const f = fresh();
    const next = certKey(ForgeKey.ecdsa(), GUN, NOW);
    f.rotateRoot([next], { signers: [next] });
    const r = f.build();
    await expectRefused(() => load(r), 'signature', 'root', 'root v2 is not signed by the keys of root v1');
  });

  it('refuses a root rotation signed only by the old keys', async () => {
    const f = fresh();
    const old = f.keys.root;
    f.rotateRoot([certKey(ForgeKey.ecdsa(), GUN, NOW)], { signers: old });
    await expectRefused(() => load(f.build()), 'signature', 'root', /0 valid signature\(s\) by root v2 keys/);
  });

  it('refuses a root in which the pinned key is absent', async () => {
    const r = fresh().build();
    const other = certKey(ForgeKey.ecdsa(), GUN, NOW);
    const e = await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem([other.certPem!]), GUN), 'untrusted-root', 'root', 'none of the pinned keys is a root key of root v1');
    // Names the keys the served root does have, so a person can tell a wrong pin from a wrong server.
    const ids = (JSON.parse(Buffer.from(r.get('root')).toString('utf8')) as { signed: { roles: { root: { keyids: string[] } } } }).signed.roles.root.keyids;
    expect(ids.length).to.be.greaterThan(0);
    for (const id of ids) expect(e.message).to.contain(id);
  });

  it('refuses a root pinned by a key that root lists for another role', async () => {
    const f = fresh();
    const r = f.build();
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem([f.keys.targets.publicPem]), GUN), 'untrusted-root', 'root', 'none of the pinned keys is a root key');
  });

  it('refuses pins that cannot be met or parsed', async () => {
    const f = fresh();
    const pem = f.keys.root[0]!.certPem!;
    await expectRefused(() => pinFromPem([]), 'untrusted-root', 'root', 'no root keys are pinned');
    await expectRefused(() => pinFromPem([pem, pem], 2), 'untrusted-root', 'root', 'between 1 and 1 distinct keys');
    await expectRefused(() => pinFromPem([pem], 0), 'untrusted-root', 'root', 'pinned threshold 0');
    await expectRefused(() => pinFromPem(['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n']), 'bad-key', 'root', 'pinned root key cannot be parsed');
  });

  it('refuses a root when a threshold of 2 pinned keys is not met, accepts it when it is', async () => {
    const f = fresh({ rootKeys: 2, rootThreshold: 1 });
    const [k1, k2] = f.keys.root as [ForgeKey, ForgeKey];
    const pin = pinFromPem([k1.certPem!, k2.certPem!], 2);
    f.signWith('root', [k1]);
    const one = f.build();
    await expectRefused(() => verifyPinnedRoot(one.get('root'), pin, GUN), 'untrusted-root', 'root', 'too few pinned keys signed root v1 (1 of the required 2)');
    f.signWith('root', [k1, k2]);
    expect(verifyPinnedRoot(f.build().get('root'), pin, GUN).meta.version).to.equal(1);
  });

  it('counts pinned keys, not certificates: one key in two certificates does not meet a pinned threshold of 2', async () => {
    const f = fresh();
    const a = ForgeKey.ecdsa();
    const a1 = certKey(a, GUN, NOW);
    const a2 = certKey(a, GUN, NOW, { notAfter: new Date(NOW.getTime() + 5 * YEAR) });
    const b = certKey(ForgeKey.ecdsa(), GUN, NOW);
    expect(a1.id).not.to.equal(a2.id);
    const root = f.signed('root');
    for (const k of [a1, a2, b]) root.keys[k.id] = k.json();
    root.roles.root = dict({ keyids: [a1.id, a2.id, b.id], threshold: 1 });
    f.signWith('root', [a1, a2]);
    const pin = pinFromPem([a1.certPem!, b.certPem!], 2);
    await expectRefused(() => verifyPinnedRoot(f.build().get('root'), pin, GUN), 'untrusted-root', 'root', 'too few pinned keys signed');
  });

  it('refuses a root whose certificate is issued to another GUN', async () => {
    const f = fresh({ gun: 'localhost:5000/other/app' });
    const r = { ...f.build(), gun: GUN };
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN), 'untrusted-root', 'root', 'is issued to "localhost:5000/other/app", not "localhost:5000/demo/app"');
  });

  it('accepts a root certificate issued to a wildcard GUN prefix', async () => {
    const f = fresh({ gun: 'localhost:5000/demo/*' });
    const r = { ...f.build(), gun: GUN };
    expect((await load(r)).root.meta.version).to.equal(1);
  });

  it('refuses a root key that is not a certificate', async () => {
    const f = fresh();
    const bare = f.keys.root[0]!.plain();
    f.signed('root').keys[bare.id] = bare.json();
    f.signed('root').roles.root = dict({ keyids: [bare.id], threshold: 1 });
    f.signWith('root', [bare]);
    const r = f.build();
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN), 'untrusted-root', 'root', 'is not an x509 certificate');
  });

  it('refuses a rotation to a root certificate issued to another GUN', async () => {
    const f = fresh();
    f.rotateRoot([certKey(ForgeKey.ecdsa(), 'localhost:5000/evil/app', NOW)]);
    await expectRefused(() => load(f.build()), 'untrusted-root', 'root', 'issued to "localhost:5000/evil/app"');
  });

  it('refuses a root with an RSA certificate under 2048 bits', async () => {
    const f = fresh();
    const weak = certKey(ForgeKey.rsa(1024), GUN, NOW);
    f.rotateRoot([weak], { signers: [{ key: weak, method: 'rsapss' }, ...f.keys.root] });
    await expectRefused(() => load(f.build()), 'bad-key', 'root', '1024 bits, fewer than 2048');
  });

  it('refuses a root key whose certificate is a CA certificate (Notary takes only non-CA leaves)', async () => {
    const f = fresh();
    const ca = certKey(ForgeKey.ecdsa(), GUN, NOW, { extensions: ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,digitalSignature'] });
    f.rotateRoot([ca]);
    await expectRefused(() => load(f.build()), 'untrusted-root', 'root', ca.id.slice(0, 12));
  });

  it('refuses a root certificate signed with SHA-1 (Notary: "invalid SHA1 signature algorithm")', async () => {
    const f = fresh();
    const sha1 = certKey(ForgeKey.ecdsa(), GUN, NOW, { md: 'sha1' });
    f.rotateRoot([sha1]);
    await expectRefused(() => load(f.build()), 'untrusted-root', 'root', /SHA-?1/i);
  });

  it('refuses an RSA root certificate signed with SHA-1', async () => {
    const f = fresh();
    const sha1 = certKey(ForgeKey.rsa(), GUN, NOW, { md: 'sha1' });
    f.rotateRoot([sha1]);
    await expectRefused(() => load(f.build()), 'untrusted-root', 'root', /SHA-?1/i);
  });

  it('accepts root certificates signed with SHA-384 and SHA-512, and an RSA root key (rsapss)', async () => {
    for (const [base, md] of [[ForgeKey.ecdsa(), 'sha384'], [ForgeKey.ecdsa(), 'sha512'], [ForgeKey.rsa(), 'sha256']] as const) {
      const f = fresh();
      const k = certKey(base, GUN, NOW, { md });
      f.rotateRoot([k]);
      const { root } = await load(f.build());
      expect(root.meta.roles.root.keyids, `${base.keytype} ${md}`).to.deep.equal([k.id]);
      expect(root.meta.keys.get(k.id)!.keytype).to.equal(base.keytype === 'rsa' ? 'rsa-x509' : 'ecdsa-x509');
    }
  });

  it('refuses a root that lacks a required role', async () => {
    const f = fresh();
    delete f.signed('root').roles.snapshot;
    const r = f.build();
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN), 'malformed', 'root', 'roles.snapshot must be an object');
  });
});

describe('tuf attacks: JSON tricks', () => {
  it('refuses a non-integer number in signed data, even where no field is read', async () => {
    const r = fresh().build();
    const frac = replaceText(r.get('timestamp'), '"_type":"Timestamp"', '"_type":"Timestamp","x":0.5');
    await expectRefused(() => load(r, { serve: new Map([['timestamp', frac]]) }), 'malformed', 'timestamp', 'integers only');
    const version = replaceText(r.get('timestamp'), '"version":1}', '"version":1.5}');
    await expectRefused(() => load(r, { serve: new Map([['timestamp', version]]) }), 'malformed', 'timestamp', 'integers only');
  });

  it('accepts whitespace and another key order on the wire (signatures cover the canonical form)', async () => {
    const r = fresh().build();
    const text = r.get('timestamp').toString('utf8');
    const doc = JSON.parse(text) as { signed: Record<string, unknown>; signatures: unknown[] };
    const reordered = Object.fromEntries(Object.entries(doc.signed).reverse());
    const variants = [
      text.replace('{"signed":{', '{ "signed" : {\n\t').replace(',"signatures":', ' ,\r\n "signatures" : '),
      JSON.stringify({ signatures: doc.signatures, signed: reordered }, null, 3),
    ];
    for (const v of variants) {
      expect(v).not.to.equal(text);
      const l = await load(r, { serve: new Map([['timestamp', Buffer.from(v)]]) });
      expect(l.repo.parts.timestamp.meta.version).to.equal(1);
    }
  });

  it('refuses invalid UTF-8 in a signed string', async () => {
    const r = fresh().build();
    const ts = r.get('timestamp');
    const at = ts.indexOf('"_type":"') + '"_type":"'.length;
    const bad = Buffer.concat([ts.subarray(0, at), Buffer.from([0xff]), ts.subarray(at)]);
    await expectRefused(() => load(r, { serve: new Map([['timestamp', bad]]) }), 'malformed', 'timestamp', 'not valid UTF-8');
    const root = r.get('root');
    const badRoot = Buffer.concat([root.subarray(0, 20), Buffer.from([0xc3]), root.subarray(20)]);
    await expectRefused(() => verifyPinnedRoot(badRoot, pinFromPem(r.rootPems), GUN), 'malformed', 'root', 'not valid UTF-8');
  });

  it('refuses a file of another type in place of a role', async () => {
    const r = fresh().build();
    await expectRefused(() => load(r, { serve: new Map([['timestamp', r.get('snapshot')]]) }), 'malformed', 'timestamp', '_type is "Snapshot", expected "Timestamp"');
  });

  it('verifies __proto__, constructor and toString as target names without polluting anything', async () => {
    const f = fresh();
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) f.addTarget('targets', name, manifest(name));
    f.signed('targets').targets['v1.0'].custom = dict({ __proto__: dict({ polluted: 'yes' }) });
    f.signed('targets').targets['v1.0'].hashes['__proto__'] = 'AAAA';
    const r = f.build();
    expect(r.get('targets').toString()).to.contain('"__proto__":{"hashes"');
    const { repo } = await load(r);
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(ok(repo.findInRole('targets', name, NOW)).digest, name).to.equal('sha256:' + sha256hex(manifest(name)));
    }
    expect(ok(repo.findInRole('targets', 'v1.0', NOW)).digest).to.equal('sha256:' + sha256hex(manifest('v1.0')));
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.prototype).not.to.have.property('polluted');
  });

  it('refuses a key ID "__proto__" in root keys as a wrong key ID, without polluting anything', async () => {
    const f = fresh();
    f.signed('root').keys['__proto__'] = dict({ keytype: 'ecdsa', keyval: dict({ private: null, public: f.keys.targets.publicB64 }), polluted: 'yes' });
    const r = f.build();
    await expectRefused(() => verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN), 'bad-key', 'root', 'key listed as __proto__ actually has ID');
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });

  it('refuses a delegation key ID "constructor" as a wrong key ID', async () => {
    const f = fresh();
    f.signed('targets').delegations.keys['constructor'] = f.keys.qa.json();
    await expectRefused(() => load(f.build()), 'bad-key', 'targets', 'key listed as constructor actually has ID');
  });

  it('handles a delegation named targets/__proto__ as an ordinary role', async () => {
    const f = fresh();
    const k = ForgeKey.ecdsa();
    f.delegate('targets', 'targets/__proto__', [k], ['']);
    f.addTarget('targets/__proto__', 'v7', manifest('v7'));
    const { repo } = await load(f.build());
    expect(repo.roleNames()).to.include('targets/__proto__');
    expect(ok(repo.findInRole('targets/__proto__', 'v7', NOW)).signers).to.deep.equal([k.id]);
    await expectRefused(() => repo.findInRole('__proto__', 'v7', NOW), 'not-found', '__proto__', 'no __proto__ delegation');
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });

  it('refuses signed data that is not an object and a file without signatures array', async () => {
    const r = fresh().build();
    await expectRefused(() => load(r, { serve: new Map([['timestamp', Buffer.from('{"signed":[],"signatures":[]}')]]) }), 'malformed', 'timestamp', 'file.signed must be an object');
    await expectRefused(() => load(r, { serve: new Map([['timestamp', Buffer.from('{"signed":{"_type":"Timestamp"}}')]]) }), 'malformed', 'timestamp', 'file.signatures must be an array');
    await expectRefused(() => load(r, { serve: new Map([['timestamp', Buffer.from('[]')]]) }), 'malformed', 'timestamp', 'not a JSON object');
  });

  it('refuses an expiry that is not an RFC 3339 time', async () => {
    const f = fresh();
    f.signed('timestamp').expires = 'Mon, 01 Jan 2040 00:00:00 GMT';
    await expectRefused(() => load(f.build()), 'malformed', 'timestamp', 'is not an RFC 3339 time');
  });

  it('refuses a timestamp without meta.snapshot and a version of 0', async () => {
    const f = fresh();
    f.signed('timestamp').version = 0;
    await expectRefused(() => load(f.build()), 'malformed', 'timestamp', 'signed.version must be an integer >= 1');
    const g = fresh();
    await expectRefused(
      () => load(g.build({ beforeSign: (role, s) => role === 'timestamp' && (s.meta = dict()) })),
      'malformed',
      'timestamp',
      'meta.snapshot must be an object',
    );
  });
});

describe('tuf attacks: a correct set stays correct', () => {
  it('keeps the trusted state of a set after a refused step (nothing partially verified is used)', async () => {
    const f = fresh();
    const r = f.build();
    const set = new TrustedMetadataSet(GUN, NOW);
    set.setRoot(verifyPinnedRoot(r.get('root'), pinFromPem(r.rootPems), GUN));
    set.updateTimestamp(r.get('timestamp'));
    const bad = Buffer.concat([r.get('snapshot'), Buffer.from(' ')]);
    await expectRefused(() => set.updateSnapshot(bad), 'too-large', 'snapshot', 'more than');
    expect(() => set.updateTargets(r.get('targets'))).to.throw(Error, /before snapshot/);
    set.updateSnapshot(r.get('snapshot'));
    expect(set.updateTargets(r.get('targets')).meta.version).to.equal(2);
  });
});
