import { canonicalBytes } from './canonical.js';
import { TufError } from './errors.js';
import { Fields, isObject, parseJson, type JsonObject } from './json.js';

/**
 * The signed envelope both dialects share, `{"signed": {...}, "signatures": [...]}`: strict
 * JSON, the `_type` the caller expects, and the canonical bytes signatures cover. How one
 * signature reads (Notary: base64 with a method; TUF 1.0: hex) is the dialect's.
 */
export function parseSignedEnvelope<S>(
  bytes: Uint8Array,
  role: string,
  type: string,
  readSignature: (f: Fields, i: number) => S,
): { role: string; signed: JsonObject; canonical: Buffer; signatures: S[] } {
  const doc = parseJson(bytes, role);
  if (!isObject(doc)) throw new TufError('malformed', role, 'metadata is not a JSON object');
  const top = new Fields(doc, role, 'file');
  const signed = top.object('signed');
  const signatures = top.array('signatures').map((s, i) => {
    if (!isObject(s)) throw new TufError('malformed', role, `signatures[${i}] is not an object`);
    return readSignature(new Fields(s, role, `signatures[${i}]`), i);
  });
  const actual = signed['_type'];
  if (actual !== type) throw new TufError('malformed', role, `_type is ${JSON.stringify(actual)}, expected "${type}"`);
  return { role, signed, canonical: canonicalBytes(signed, role), signatures };
}
