/**
 * Publishing hand-signed metadata to the real notary-server, for situations its CLI cannot
 * produce on demand: a delegation whose signer let it lapse. The file is signed with the
 * delegation's real private key and accepted by the server's own publish checks (which refuse
 * already-expired files, so the expiry is set a few seconds ahead and the caller waits).
 */
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { canonicalBytes } from '../../webhook/src/tuf/canonical.js';
import type { JsonValue } from '../../webhook/src/tuf/json.js';
import { fetchTuf, type Stack } from './stack.js';

/** Re-sign `role` (an ECDSA-keyed delegation) with a new expiry and version+1, and publish it. */
export async function republishDelegation(stack: Stack, gun: string, role: string, keyFile: string, expires: Date): Promise<void> {
  const current = await fetchTuf(stack, gun, `${role}.json`);
  if (current.status !== 200) throw new Error(`GET ${role}.json: ${current.status}`);
  const doc = JSON.parse(current.body.toString('utf8')) as { signed: Record<string, JsonValue>; signatures: { keyid: string }[] };
  doc.signed['expires'] = goTime(expires);
  doc.signed['version'] = (doc.signed['version'] as number) + 1;
  const key = createPrivateKey(readFileSync(keyFile));
  const sig = sign('sha256', canonicalBytes(doc.signed, role), { key, dsaEncoding: 'ieee-p1363' });
  doc.signatures = [{ keyid: doc.signatures[0]!.keyid, method: 'ecdsa', sig: sig.toString('base64') } as never];
  await postFiles(stack, gun, { [role]: Buffer.from(JSON.stringify(doc)) });
}

/**
 * An instant as Go's encoding/json writes a time.Time (RFC 3339, fraction without trailing
 * zeros). notary-server hashes its own re-encoding of a published file when it builds the
 * snapshot, but serves the bytes it was sent: with JavaScript's ".750Z" where Go writes
 * ".75Z", the snapshot would name a hash nobody can fetch.
 */
export function goTime(d: Date): string {
  return d.toISOString().replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac === '' ? 'Z' : `.${frac}Z`));
}

/** POST /v2/<gun>/_trust/tuf/ with one multipart part per role, as the notary client publishes. */
export function postFiles(stack: Stack, gun: string, files: Record<string, Buffer>): Promise<void> {
  const boundary = `tg${Date.now().toString(16)}`;
  const parts = Object.entries(files).map(([role, body]) =>
    Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${role}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      body,
      Buffer.from('\r\n'),
    ]),
  );
  const payload = Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${stack.notaryUrl}/v2/${gun}/_trust/tuf/`,
      { method: 'POST', ca: stack.caPem, headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': payload.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`publish ${Object.keys(files).join(',')}: ${res.statusCode} ${Buffer.concat(chunks).toString()}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
