/**
 * Reuse of previously verified files (the updater with `previous`, a warm refresh): what was
 * trusted under earlier metadata must be re-judged under the new one, never carried over blindly.
 */
import { expect } from 'chai';
import { TufError, pinFromPem, type TrustedRepository, type TufErrorCode } from '../../webhook/src/tuf/index.js';
import { DAY, ForgeKey, RepoForge, type ForgedRepo } from '../support/forge.js';
import { update } from '../support/forged-source.js';

const NOW = new Date('2031-06-01T12:00:00Z');

function ok<T>(v: T | TufError): T {
  if (v instanceof TufError) expect.fail(`unexpected TufError: ${v.code} ${v.message}`);
  return v as T;
}

async function refusal(f: () => unknown): Promise<TufError> {
  let v: unknown;
  try {
    v = await f();
  } catch (e) {
    if (e instanceof TufError) return e;
    throw e;
  }
  if (v instanceof TufError) return v;
  return expect.fail('expected a TufError');
}

async function expectRefused(f: () => unknown, code: TufErrorCode, role: string, message: string): Promise<void> {
  const e = await refusal(f);
  expect(e.code, e.message).to.equal(code);
  expect(e.role, e.message).to.equal(role);
  expect(e.message).to.contain(message);
}

/** The first update of a repository: what later updates may reuse. */
async function first(forge: RepoForge): Promise<{ r: ForgedRepo; previous: TrustedRepository }> {
  const r = forge.build();
  return { r, previous: (await update(r, { pin: pinFromPem(r.rootPems) })).repo };
}

describe('tuf reuse of previously verified metadata', () => {
  it('reuses unchanged files: the same answers without the files being served again', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, previous } = await first(forge);
    forge.bump('timestamp');
    const r2 = forge.build();
    const gone = new Map([...r.files.keys()].filter((k) => k !== 'timestamp' && k !== 'root').map((k) => [k, Buffer.from('{}')]));
    const { repo, source } = await update(r2, { pin: pinFromPem(r.rootPems), previous, serve: gone });
    expect(source.requests).to.deep.equal(['timestamp']);
    expect(repo.roleNames()).to.deep.equal(['targets', 'targets/releases', 'targets/releases/nightly', 'targets/qa']);
    expect(ok(repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW)).role).to.equal('targets/releases/nightly');
  });

  it('does not reuse targets under a new root that no longer lists the key that signed them', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, previous } = await first(forge);
    const oldTargetsKey = forge.keys.targets;
    forge.nextRoot();
    forge.setRoleKey('targets', [ForgeKey.ecdsa()]);
    forge.signWith('targets', [oldTargetsKey]);
    const r2 = forge.build();
    expect(r2.get('targets').equals(r.get('targets'))).to.equal(true);
    await expectRefused(() => update(r2, { pin: pinFromPem(r.rootPems), previous }), 'signature', 'targets', 'not a targets key');
  });

  it('refuses a reused snapshot and targets below a raised version floor', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, previous } = await first(forge);
    forge.bump('timestamp');
    const r2 = forge.build();
    const pin = pinFromPem(r.rootPems);
    await expectRefused(() => update(r2, { pin, previous, floor: new Map([['snapshot', 3]]) }), 'rollback', 'snapshot', 'older than version 3');
    await expectRefused(() => update(r2, { pin, previous, floor: new Map([['targets', 3]]) }), 'rollback', 'targets', 'older than version 3');
    await expectRefused(
      () => update(r2, { pin, previous, floor: new Map([['targets/qa', 2]]) }),
      'rollback',
      'targets/qa',
      'older than version 2',
    );
  });

  it('skips a reused delegation that has expired since', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    forge.expire('targets/qa', 20 * DAY);
    const { previous } = await first(forge);
    forge.expire('timestamp', 60 * DAY);
    const r2 = forge.build();
    const later = new Date(NOW.getTime() + 30 * DAY);
    const { repo, visited } = await update(r2, { pin: pinFromPem(r2.rootPems), previous, now: later });
    expect(visited.find(([n]) => n === 'targets/qa')![1]).to.be.instanceOf(TufError);
    await expectRefused(() => repo.findInRole('targets/qa', 'qa/rc1', later), 'expired', 'targets/qa', 'expired at');
    expect(ok(repo.findInRole('targets/releases', 'v2.0', later)).name).to.equal('v2.0');
  });

  it('refuses reused targets that have expired since', async () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    forge.expire('targets', 25 * DAY);
    const { previous } = await first(forge);
    forge.expire('timestamp', 60 * DAY);
    const r2 = forge.build();
    const later = new Date(NOW.getTime() + 30 * DAY);
    await expectRefused(() => update(r2, { pin: pinFromPem(r2.rootPems), previous, now: later }), 'expired', 'targets', 'expired at');
  });

  it('re-restricts the paths of a reused nested delegation when a grandparent narrowed them', async () => {
    // targets narrows targets/releases to rel/; releases.json and nightly.json are unchanged,
    // so nightly (paths nightly/) must now sign nothing, even though its parent file is the same.
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, previous } = await first(forge);
    forge.delegationEntry('targets', 'targets/releases').paths = ['rel/'];
    forge.bump('targets');
    const r2 = forge.build();
    expect(r2.get('targets/releases').equals(r.get('targets/releases'))).to.equal(true);
    expect(r2.get('targets/releases/nightly').equals(r.get('targets/releases/nightly'))).to.equal(true);
    const fresh = (await update(r2, { pin: pinFromPem(r.rootPems) })).repo;
    await expectRefused(() => fresh.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'delegation', 'targets/releases/nightly', 'outside its delegated paths');
    const reused = (await update(r2, { pin: pinFromPem(r.rootPems), previous })).repo;
    await expectRefused(() => reused.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'delegation', 'targets/releases/nightly', 'outside its delegated paths');
  });
});
