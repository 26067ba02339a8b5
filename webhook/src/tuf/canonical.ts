import { TufError } from './errors.js';
import type { JsonValue } from './json.js';

/**
 * Canonical JSON exactly as Notary signs it (docker/go canonical/json): no whitespace, keys
 * in byte-wise UTF-8 order, strings with only `"` and `\` escaped and every other byte raw,
 * integers only. Signatures cover these bytes, never the raw bytes on the wire.
 */
export function canonicalBytes(value: JsonValue, role: string): Buffer {
  // Notary writes the signed part canonically, so its parsed keys are already in order and
  // the native serialiser produces the same bytes. Other writers (tuf-js, go-tuf) keep their
  // own key order: the same holds for a copy of what is out of order with its keys sorted.
  // Anything the native serialiser would write differently takes the careful path.
  const native = nativeForm(value);
  if (native !== undefined) return Buffer.from(JSON.stringify(native), 'utf8');
  const parts: string[] = [];
  write(value, parts, role);
  return Buffer.from(parts.join(''), 'utf8');
}

function write(value: JsonValue, out: string[], role: string): void {
  if (value === null) {
    out.push('null');
  } else if (typeof value === 'boolean') {
    out.push(value ? 'true' : 'false');
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new TufError('malformed', role, `number ${value} cannot be canonicalised (integers only)`);
    }
    out.push(String(value));
  } else if (typeof value === 'string') {
    out.push(quote(value));
  } else if (Array.isArray(value)) {
    out.push('[');
    value.forEach((v, i) => {
      if (i > 0) out.push(',');
      write(v, out, role);
    });
    out.push(']');
  } else {
    out.push('{');
    sortedKeys(Object.keys(value)).forEach((k, i) => {
      if (i > 0) out.push(',');
      out.push(quote(k), ':');
      write(value[k] as JsonValue, out, role);
    });
    out.push('}');
  }
}

const NEEDS_ESCAPE = /["\\]/g;
function quote(s: string): string {
  return '"' + s.replace(NEEDS_ESCAPE, (c) => '\\' + c) + '"';
}

// UTF-16 order equals UTF-8 byte order except where surrogate pairs meet U+E000..U+FFFF.
const ASTRAL = /[\uD800-\uDFFF]/;
function sortedKeys(keys: string[]): string[] {
  if (!keys.some((k) => ASTRAL.test(k))) return keys.sort();
  return keys.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

// JSON.stringify escapes control characters and lone surrogates where canonical JSON writes
// them raw, and lists integer-like keys first whatever their order: any of these, or keys
// out of order, means the native serialiser would write other bytes.
const STRINGIFY_DIFFERS = /[\u0000-\u001f\ud800-\udfff]/;
const INDEX_LIKE = /^(?:0|[1-9][0-9]*)$/;

/**
 * `value` itself when JSON.stringify(value) is exactly its canonical form, or a copy of it
 * with the objects whose keys are out of order rebuilt in canonical order (the rest shared);
 * undefined when the native serialiser cannot write it canonically whatever the order.
 */
function nativeForm(value: JsonValue): JsonValue | undefined {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'string') return STRINGIFY_DIFFERS.test(value) ? undefined : value;
  if (Array.isArray(value)) {
    let copy: JsonValue[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = nativeForm(value[i]!);
      if (v === undefined) return undefined;
      if (v !== value[i]) (copy ??= value.slice())[i] = v;
    }
    return copy ?? value;
  }
  const keys = Object.keys(value);
  let changed = false;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (STRINGIFY_DIFFERS.test(k) || INDEX_LIKE.test(k)) return undefined;
    // Without surrogates (refused above), UTF-16 order is UTF-8 byte order.
    if (i > 0 && !(keys[i - 1]! < k)) changed = true;
  }
  if (changed) keys.sort();
  const values = new Array<JsonValue>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const old = value[keys[i]!] as JsonValue;
    const v = nativeForm(old);
    if (v === undefined) return undefined;
    if (v !== old) changed = true;
    values[i] = v;
  }
  if (!changed) return value;
  // No prototype, so a "__proto__" key stays a plain key of the copy.
  const copy: { [key: string]: JsonValue } = Object.create(null);
  for (let i = 0; i < keys.length; i++) copy[keys[i]!] = values[i]!;
  return copy;
}
