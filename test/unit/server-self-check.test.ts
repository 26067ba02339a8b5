// The self-check a replica runs before it reports ready: one admission of a signed image
// through the real HTTPS app, engine and TUF code. It must pass on the built-in repository
// and refuse a repository an attacker tampered with, so a build that stopped checking
// signatures cannot start.
import { expect } from 'chai';
import { readFile, rm } from 'node:fs/promises';
import { generateSelfSigned } from '../../webhook/src/server/tls.js';
import { selfCheck, type SelfCheckRepository } from '../../webhook/src/server/warm-up.js';
import { FIXTURE } from '../../webhook/src/verify/self-check-fixture.js';
import { tamper, withSignatures } from '../support/forge.js';

describe('server: self-check before ready', function () {
  this.timeout(20_000);
  let pair: { cert: Buffer; key: Buffer };
  let dir: string;

  before(async () => {
    const made = await generateSelfSigned();
    dir = made.dir;
    pair = { cert: await readFile(made.certFile), key: await readFile(made.keyFile) };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const edited = (role: string, change: (bytes: Buffer) => Buffer): SelfCheckRepository => ({
    ...FIXTURE,
    files: { ...FIXTURE.files, [role]: change(Buffer.from(FIXTURE.files[role as keyof typeof FIXTURE.files], 'base64')).toString('base64') },
  });

  it('admits the built-in signed image pinned to its digest', async () => {
    await selfCheck(pair);
  });

  it('refuses when a delegation signs another digest (signature no longer matches)', async () => {
    const repo = edited('targets/qa', (b) =>
      tamper(b, (signed) => {
        signed.targets['v2.0'].hashes.sha256 = Buffer.alloc(32, 1).toString('base64');
      }),
    );
    let error: Error | undefined;
    await selfCheck(pair, repo).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/self-check admission of the built-in signed image was not pinned/).and.match(/targets\/qa/);
  });

  it('refuses when the root signature is removed', async () => {
    const repo = edited('root', (b) => withSignatures(b, (sigs) => sigs.splice(0)));
    let error: Error | undefined;
    await selfCheck(pair, repo).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/not pinned/).and.match(/root/);
  });

  it('refuses at an instant when the trust data has expired (the check uses its own clock, never stale)', async () => {
    let error: Error | undefined;
    await selfCheck(pair, { ...FIXTURE, at: new Date(Date.parse(FIXTURE.at) + 30 * 24 * 3600 * 1000).toISOString() }).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/not pinned/).and.match(/expired/);
  });
});
