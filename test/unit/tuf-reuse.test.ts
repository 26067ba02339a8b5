/**
 * Reuse of previously verified files (TrustedMetadataSet with `previous`): what was trusted
 * under earlier metadata must be re-judged under the new one, never carried over blindly.
 */
import { expect } from 'chai';
import { TufError, pinFromPem, type TufErrorCode } from '../../webhook/src/tuf/index.js';
import { clientLoad, DAY, ForgeKey, RepoForge, type ForgedRepo } from '../support/forge.js';

const NOW = new Date('2031-06-01T12:00:00Z');

function ok<T>(v: T | TufError): T {
  if (v instanceof TufError) expect.fail(`unexpected TufError: ${v.code} ${v.message}`);
  return v as T;
}

function refusal(f: () => unknown): TufError {
  let v: unknown;
  try {
    v = f();
  } catch (e) {
    if (e instanceof TufError) return e;
    throw e;
  }
  if (v instanceof TufError) return v;
  return expect.fail('expected a TufError');
}

function expectRefused(f: () => unknown, code: TufErrorCode, role: string, message: string): void {
  const e = refusal(f);
  expect(e.code, e.message).to.equal(code);
  expect(e.role, e.message).to.equal(role);
  expect(e.message).to.contain(message);
}

function first(forge: RepoForge): { r: ForgedRepo; parts: ReturnType<typeof clientLoad>['set'] } {
  const r = forge.build();
  return { r, parts: clientLoad(r, { pin: pinFromPem(r.rootPems) }).set };
}

describe('tuf reuse of previously verified metadata', () => {
  it('reuses unchanged files: the same answers without the files being served again', () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, parts } = first(forge);
    forge.bump('timestamp');
    const r2 = forge.build();
    const gone = new Map([...r.files.keys()].filter((k) => k !== 'timestamp' && k !== 'root').map((k) => [k, Buffer.from('{}')]));
    const { repo } = clientLoad(r2, { pin: pinFromPem(r.rootPems), previous: parts.result(), reuse: true, serve: gone });
    expect(repo.roleNames()).to.deep.equal(['targets', 'targets/releases', 'targets/releases/nightly', 'targets/qa']);
    expect(ok(repo.findInRole('targets/releases/nightly', 'nightly/20310601', NOW)).role).to.equal('targets/releases/nightly');
  });

  it('does not reuse targets under a new root that no longer lists the key that signed them', () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, parts } = first(forge);
    const oldTargetsKey = forge.keys.targets;
    forge.nextRoot();
    forge.setRoleKey('targets', [ForgeKey.ecdsa()]);
    forge.signWith('targets', [oldTargetsKey]);
    const r2 = forge.build();
    expect(r2.get('targets').equals(r.get('targets'))).to.equal(true);
    expectRefused(() => clientLoad(r2, { pin: pinFromPem(r.rootPems), previous: parts.result(), reuse: true }), 'signature', 'targets', 'not a targets key');
  });

  it('refuses a reused snapshot and targets below a raised version floor', () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, parts } = first(forge);
    forge.bump('timestamp');
    const r2 = forge.build();
    const pin = pinFromPem(r.rootPems);
    expectRefused(() => clientLoad(r2, { pin, previous: parts.result(), reuse: true, floor: new Map([['snapshot', 3]]) }), 'rollback', 'snapshot', 'older than version 3');
    expectRefused(() => clientLoad(r2, { pin, previous: parts.result(), reuse: true, floor: new Map([['targets', 3]]) }), 'rollback', 'targets', 'older than version 3');
    expectRefused(
      () => clientLoad(r2, { pin, previous: parts.result(), reuse: true, floor: new Map([['targets/qa', 2]]) }),
      'rollback',
      'targets/qa',
      'older than version 2',
    );
  });

  it('skips a reused delegation that has expired since', () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    forge.expire('targets/qa', 20 * DAY);
    const { parts } = first(forge);
    forge.expire('timestamp', 60 * DAY);
    const r2 = forge.build();
    const later = new Date(NOW.getTime() + 30 * DAY);
    const { repo, visited } = clientLoad(r2, { pin: pinFromPem(r2.rootPems), previous: parts.result(), reuse: true, now: later });
    expect(visited.find(([n]) => n === 'targets/qa')![1]).to.be.instanceOf(TufError);
    expectRefused(() => repo.findInRole('targets/qa', 'qa/rc1', later), 'expired', 'targets/qa', 'expired at');
    expect(ok(repo.findInRole('targets/releases', 'v2.0', later)).name).to.equal('v2.0');
  });

  it('refuses reused targets that have expired since', () => {
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    forge.expire('targets', 25 * DAY);
    const { parts } = first(forge);
    forge.expire('timestamp', 60 * DAY);
    const r2 = forge.build();
    const later = new Date(NOW.getTime() + 30 * DAY);
    expectRefused(() => clientLoad(r2, { pin: pinFromPem(r2.rootPems), previous: parts.result(), reuse: true, now: later }), 'expired', 'targets', 'expired at');
  });

  it('re-restricts the paths of a reused nested delegation when a grandparent narrowed them', () => {
    // targets narrows targets/releases to rel/; releases.json and nightly.json are unchanged,
    // so nightly (paths nightly/) must now sign nothing, even though its parent file is the same.
    const forge = new RepoForge({ now: NOW, sharedKeys: true });
    const { r, parts } = first(forge);
    forge.delegationEntry('targets', 'targets/releases').paths = ['rel/'];
    forge.bump('targets');
    const r2 = forge.build();
    expect(r2.get('targets/releases').equals(r.get('targets/releases'))).to.equal(true);
    expect(r2.get('targets/releases/nightly').equals(r.get('targets/releases/nightly'))).to.equal(true);
    const fresh = clientLoad(r2, { pin: pinFromPem(r.rootPems) }).repo;
    expectRefused(() => fresh.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'delegation', 'targets/releases/nightly', 'outside its delegated paths');
    const reused = clientLoad(r2, { pin: pinFromPem(r.rootPems), previous: parts.result(), reuse: true }).repo;
    expectRefused(() => reused.findInRole('targets/releases/nightly', 'nightly/20310601', NOW), 'delegation', 'targets/releases/nightly', 'outside its delegated paths');
  });
});
