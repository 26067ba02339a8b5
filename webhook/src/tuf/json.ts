import { TufError } from './errors.js';

/** A parsed JSON object with no prototype: keys such as `__proto__` stay plain data. */
export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const MAX_DEPTH = 64;

/**
 * Strict parse of untrusted metadata bytes. Invalid UTF-8 is refused rather than replaced
 * (Go would substitute U+FFFD and sign something other than what was sent); objects lose
 * their prototype so no key can reach Object.prototype; nesting is bounded so hostile
 * input cannot exhaust the stack later on.
 */
export function parseJson(bytes: Uint8Array, role: string): JsonValue {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new TufError('malformed', role, 'metadata is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TufError('malformed', role, `metadata is not valid JSON (${(e as Error).message})`);
  }
  return harden(value, role, 0);
}

function harden(value: unknown, role: string, depth: number): JsonValue {
  if (depth > MAX_DEPTH) throw new TufError('malformed', role, `metadata nests deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) harden(value[i], role, depth + 1);
    return value as JsonValue[];
  }
  if (value !== null && typeof value === 'object') {
    // In place: JSON.parse made every key an own data property (even "__proto__"), so
    // dropping the prototype leaves exactly the parsed data, without copying a large file.
    Object.setPrototypeOf(value, null);
    for (const key of Object.keys(value)) harden((value as Record<string, unknown>)[key], role, depth + 1);
    return value as JsonObject;
  }
  return value as JsonValue;
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Typed field access that turns every shape problem into one 'malformed' error naming the field. */
export class Fields {
  constructor(
    private readonly obj: JsonObject,
    private readonly role: string,
    private readonly where: string,
  ) {}

  private fail(key: string, want: string): never {
    throw new TufError('malformed', this.role, `${this.where}.${key} must be ${want}`);
  }

  has(key: string): boolean {
    return Object.hasOwn(this.obj, key);
  }

  object(key: string): JsonObject {
    const v = this.obj[key];
    return isObject(v) ? v : this.fail(key, 'an object');
  }

  fields(key: string): Fields {
    return new Fields(this.object(key), this.role, `${this.where}.${key}`);
  }

  array(key: string): JsonValue[] {
    const v = this.obj[key];
    return Array.isArray(v) ? v : this.fail(key, 'an array');
  }

  string(key: string): string {
    const v = this.obj[key];
    return typeof v === 'string' ? v : this.fail(key, 'a string');
  }

  stringArray(key: string): string[] {
    const arr = this.array(key);
    for (const s of arr) if (typeof s !== 'string') this.fail(key, 'an array of strings');
    return arr as string[];
  }

  /** Integers only: the canonical encoder cannot represent anything else. */
  int(key: string, min: number): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }

  boolean(key: string): boolean {
    const v = this.obj[key];
    return typeof v === 'boolean' ? v : this.fail(key, 'a boolean');
  }
}
