// A tenant's own trust server for the isolation figure: validly signed metadata that is as
// large as the caps allow. Two repository shapes, each served under any number of GUNs (the
// root certificate is issued to a wildcard, as Notary allows), so every admission the bench
// sends is a fresh load and no failure memory hides the work:
//   <prefix>/big-N:   targets/releases of ~63 MiB (signed by the delegated key)
//   <prefix>/snap-N:  a ~15 MiB snapshot (listing many roles)
// Real keys and signatures from the forge, Notary's serialisation; only the size is hostile.
//
//   node hostile-server.js CERT KEY PREFIX [delegationMiB] [snapshotMiB]
//     -> prints one JSON line {port, rootPems, bigBytes, snapshotBytes}
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dict, RepoForge, sha256hex } from '../support/forge.js';

const [certFile, keyFile, prefix, delegationMiB = '63', snapshotMiB = '15'] = process.argv.slice(2);
if (!certFile || !keyFile || !prefix) throw new Error('usage: hostile-server.js CERT KEY PREFIX [delegationMiB] [snapshotMiB]');
const MiB = 1024 * 1024;
const now = new Date();

/** Adds entries made by `entry` to `into` until about `bytes` of JSON are added. */
function pad(into: Record<string, unknown>, bytes: number, entry: (i: number) => [string, unknown]): void {
  const [k, v] = entry(0);
  const size = JSON.stringify(k).length + JSON.stringify(v).length + 2;
  const count = Math.floor(bytes / size);
  for (let i = 0; i < count; i++) {
    const [name, value] = entry(i);
    into[name] = value;
  }
}

function digest(i: number, length: number): string {
  const h = Buffer.alloc(length);
  h.writeUInt32BE(i);
  return h.toString('base64');
}

// Long tag names: as many entries as fit, each a real signed target.
const target = (i: number): [string, unknown] => [`tag-${i.toString().padStart(8, '0')}-${'p'.repeat(170)}`, dict({ hashes: dict({ sha256: digest(i, 32) }), length: 1000 + (i % 1000) })];
const listed = (i: number): [string, unknown] => [
  `targets/unused-${i.toString().padStart(8, '0')}-${'s'.repeat(40)}`,
  dict({ hashes: dict({ sha256: digest(i, 32), sha512: digest(i, 64) }), length: 100 }),
];

function build(kind: 'big' | 'snap') {
  const forge = new RepoForge({ now, gun: `${prefix}/${kind}-*` });
  if (kind === 'big') {
    pad(forge.signed('targets/releases').targets, Number(delegationMiB) * MiB - 64 * 1024, target);
    return forge.build();
  }
  return forge.build({
    beforeSign: (role, signed) => {
      if (role === 'snapshot') pad(signed.meta, Number(snapshotMiB) * MiB - 64 * 1024, listed);
    },
  });
}

const repos = { big: build('big'), snap: build('snap') };
/** file name (as Notary routes it) -> bytes, per repository shape. */
const files = new Map<string, Map<string, Buffer>>();
for (const [kind, repo] of Object.entries(repos)) {
  const byName = new Map<string, Buffer>();
  for (const [role, bytes] of repo.files) {
    byName.set(`${role}.json`, bytes);
    byName.set(`${role}.${sha256hex(bytes)}.json`, bytes);
  }
  repo.roots.forEach((bytes, i) => byName.set(`${i + 1}.root.json`, bytes));
  files.set(kind, byName);
}

const PATH = /^\/v2\/(.+)\/(big|snap)-\d+\/_trust\/tuf\/(.+)$/;
const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const m = PATH.exec(req.url ?? '');
  const bytes = m && m[1] === prefix ? files.get(m[2]!)?.get(m[3]!) : undefined;
  if (!bytes) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"METADATA_NOT_FOUND","message":"not found"}]}');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(
    JSON.stringify({
      port: (server.address() as AddressInfo).port,
      rootPems: [...repos.big.rootPems, ...repos.snap.rootPems],
      bigBytes: repos.big.get('targets/releases').length,
      snapshotBytes: repos.snap.get('snapshot').length,
    }) + '\n',
  );
});
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
