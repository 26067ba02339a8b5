/**
 * A validator for the schema subset trustgate's own schemas use: the structural OpenAPI v3
 * schemas of its CRDs and the JSON Schema draft-07 of the Helm chart's values.schema.json.
 * It reports every problem (not the first), each with the path of the offending value, so
 * a person fixes a file in one round.
 *
 * Keywords: type (one or a list), nullable, properties, required, additionalProperties
 * (boolean or schema), items (schema or tuple list), enum, const, pattern, minLength,
 * maxLength, minimum, maximum, exclusiveMinimum/exclusiveMaximum (draft-07 numbers and the
 * OpenAPI 3.0 booleans), multipleOf, minItems, maxItems, uniqueItems, minProperties,
 * maxProperties, format (date-time, date, uri, hostname, ipv4, email, int32, int64, byte),
 * allOf, anyOf, oneOf, not, local $ref (#/definitions/..., #/$defs/...), and the
 * Kubernetes extensions x-kubernetes-list-type (set/map uniqueness),
 * x-kubernetes-preserve-unknown-fields and x-kubernetes-int-or-string.
 * Unknown keywords (description, title, x-kubernetes-validations...) are ignored here.
 */

export interface SchemaProblem {
  /** Where the value is, e.g. `spec.root.threshold`, `spec.images[2]`; '(root)' for the value itself. */
  path: string;
  message: string;
}

export interface ValidateOptions {
  /**
   * Reject fields an object's `properties` do not declare (unless additionalProperties or
   * x-kubernetes-preserve-unknown-fields allow them). A Kubernetes API server silently
   * prunes such fields, which for a file a person wrote means a typo goes unnoticed; JSON
   * Schema's own default is to allow them. Default false.
   */
  rejectUnknownFields?: boolean;
  /** Path prefix for reported problems, e.g. 'spec'. */
  basePath?: string;
}

type Schema = Record<string, unknown>;

const ROOT = '(root)';

export function validateSchema(schema: object, value: unknown, options: ValidateOptions = {}): SchemaProblem[] {
  const v = new Validator(schema as Schema, options);
  v.check(schema as Schema, value, options.basePath ?? '');
  return v.problems;
}

/**
 * A copy of `value` with the schema's defaults filled in where a field is absent, the way
 * an API server defaults an object before validating it: only inside objects that exist
 * (a default on `spec.freshness.x` does nothing when `spec.freshness` is absent) and only
 * where the value has the type the schema expects. `value` itself is never modified.
 */
export function applyDefaults<T>(schema: object, value: T): T {
  return defaults(schema as Schema, schema as Schema, structuredCloneJson(value), 0) as T;
}

/** Appends a property or index to a path: `a.b`, `a[0]`, `a["x.y"]`. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) return base === '' ? key : `${base}.${key}`;
  return `${base}[${JSON.stringify(key)}]`;
}

export function displayPath(path: string): string {
  return path === '' ? ROOT : path;
}

const MAX_DEPTH = 64;

class Validator {
  readonly problems: SchemaProblem[] = [];
  private readonly regexCache = new Map<string, RegExp | null>();

  constructor(
    private readonly root: Schema,
    private readonly opts: ValidateOptions,
  ) {}

  private add(path: string, message: string): void {
    this.problems.push({ path: displayPath(path), message });
  }

  check(schemaIn: Schema | boolean, value: unknown, path: string, depth = 0): void {
    if (depth > MAX_DEPTH) {
      this.add(path, `nested deeper than ${MAX_DEPTH} levels`);
      return;
    }
    if (schemaIn === true) return;
    if (schemaIn === false) {
      this.add(path, 'no value is allowed here');
      return;
    }
    const schema = this.resolve(schemaIn, path);
    if (!schema) return;

    if (value === null && schema.nullable === true) return;
    if (value === undefined) return;

    if (!this.checkType(schema, value, path)) return;

    if ('const' in schema && !deepEqual(schema.const, value)) this.add(path, `must be ${JSON.stringify(schema.const)}`);
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => deepEqual(e, value))) {
      this.add(path, `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}, not ${short(value)}`);
    }

    if (typeof value === 'string') this.checkString(schema, value, path);
    else if (typeof value === 'number') this.checkNumber(schema, value, path);
    else if (Array.isArray(value)) this.checkArray(schema, value, path, depth);
    else if (isObject(value)) this.checkObject(schema, value, path, depth);

    this.checkCombinators(schema, value, path, depth);
  }

  private resolve(schema: Schema, path: string): Schema | undefined {
    let s = schema;
    for (let hops = 0; typeof s.$ref === 'string'; hops++) {
      const target = hops < 32 ? resolveRef(this.root, s.$ref as string) : undefined;
      if (!target) {
        this.add(path, `schema error: cannot resolve $ref ${JSON.stringify(s.$ref)}`);
        return undefined;
      }
      s = target;
    }
    return s;
  }

  /** False when the type is wrong: nothing else about the value is worth saying then. */
  private checkType(schema: Schema, value: unknown, path: string): boolean {
    if (schema['x-kubernetes-int-or-string'] === true) {
      if (typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value))) return true;
      this.add(path, `must be an integer or a string, not ${typeName(value)}`);
      return false;
    }
    const t = schema.type;
    if (t === undefined) return true;
    const types = Array.isArray(t) ? (t as string[]) : [t as string];
    if (value === null && schema.nullable === true) return true;
    if (types.some((ty) => hasType(value, ty))) return true;
    this.add(path, `must be ${types.map(article).join(' or ')}, not ${typeName(value)}`);
    return false;
  }

  private checkString(schema: Schema, value: string, path: string): void {
    const len = [...value].length;
    if (typeof schema.minLength === 'number' && len < schema.minLength) {
      this.add(path, schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters long (is ${len})`);
    }
    if (typeof schema.maxLength === 'number' && len > schema.maxLength) {
      this.add(path, `must be at most ${schema.maxLength} characters long (is ${len})`);
    }
    if (typeof schema.pattern === 'string') {
      const re = this.regex(schema.pattern);
      if (re === null) this.add(path, `schema error: invalid pattern ${JSON.stringify(schema.pattern)}`);
      else if (!re.test(value)) this.add(path, `${short(value)} does not match the pattern ${schema.pattern}`);
    }
    if (typeof schema.format === 'string') {
      const problem = formatProblem(schema.format, value);
      if (problem) this.add(path, problem);
    }
  }

  private checkNumber(schema: Schema, value: number, path: string): void {
    const exMin = schema.exclusiveMinimum;
    const exMax = schema.exclusiveMaximum;
    if (typeof schema.minimum === 'number') {
      if (exMin === true ? value <= schema.minimum : value < schema.minimum) {
        this.add(path, `must be ${exMin === true ? 'greater than' : 'at least'} ${schema.minimum} (is ${value})`);
      }
    }
    if (typeof schema.maximum === 'number') {
      if (exMax === true ? value >= schema.maximum : value > schema.maximum) {
        this.add(path, `must be ${exMax === true ? 'less than' : 'at most'} ${schema.maximum} (is ${value})`);
      }
    }
    if (typeof exMin === 'number' && value <= exMin) this.add(path, `must be greater than ${exMin} (is ${value})`);
    if (typeof exMax === 'number' && value >= exMax) this.add(path, `must be less than ${exMax} (is ${value})`);
    if (typeof schema.multipleOf === 'number' && schema.multipleOf > 0) {
      const q = value / schema.multipleOf;
      if (Math.abs(q - Math.round(q)) > 1e-9) this.add(path, `must be a multiple of ${schema.multipleOf}`);
    }
    if (typeof schema.format === 'string') {
      const problem = formatProblem(schema.format, value);
      if (problem) this.add(path, problem);
    }
  }

  private checkArray(schema: Schema, value: unknown[], path: string, depth: number): void {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) {
      this.add(path, schema.minItems === 1 ? 'must not be empty' : `must have at least ${schema.minItems} items (has ${value.length})`);
    }
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) {
      this.add(path, `must have at most ${schema.maxItems} items (has ${value.length})`);
    }
    const items = schema.items;
    if (Array.isArray(items)) {
      value.forEach((item, i) => {
        if (i < items.length) this.check(items[i] as Schema, item, joinPath(path, i), depth + 1);
        else if (schema.additionalItems !== undefined) this.check(schema.additionalItems as Schema, item, joinPath(path, i), depth + 1);
      });
    } else if (items !== undefined && (isObject(items) || typeof items === 'boolean')) {
      value.forEach((item, i) => this.check(items as Schema, item, joinPath(path, i), depth + 1));
    }
    const listType = schema['x-kubernetes-list-type'];
    if (schema.uniqueItems === true || listType === 'set') {
      value.forEach((item, i) => {
        const first = value.findIndex((other) => deepEqual(other, item));
        if (first < i) this.add(joinPath(path, i), `duplicate of ${joinPath(path, first)}: entries must be unique`);
      });
    } else if (listType === 'map' && Array.isArray(schema['x-kubernetes-list-map-keys'])) {
      const keys = schema['x-kubernetes-list-map-keys'] as string[];
      value.forEach((item, i) => {
        if (!isObject(item)) return;
        const first = value.findIndex((other) => isObject(other) && keys.every((k) => deepEqual(other[k], item[k])));
        if (first < i) this.add(joinPath(path, i), `same ${keys.join('/')} as ${joinPath(path, first)}: entries must be unique by ${keys.join(', ')}`);
      });
    }
  }

  private checkObject(schema: Schema, value: Record<string, unknown>, path: string, depth: number): void {
    const props = isObject(schema.properties) ? (schema.properties as Record<string, Schema>) : undefined;
    const keys = Object.keys(value);
    if (Array.isArray(schema.required)) {
      for (const r of schema.required as string[]) {
        if (!Object.prototype.hasOwnProperty.call(value, r) || value[r] === undefined) this.add(joinPath(path, r), 'is required');
      }
    }
    if (typeof schema.minProperties === 'number' && keys.length < schema.minProperties) {
      this.add(path, `must have at least ${schema.minProperties} fields (has ${keys.length})`);
    }
    if (typeof schema.maxProperties === 'number' && keys.length > schema.maxProperties) {
      this.add(path, `must have at most ${schema.maxProperties} fields (has ${keys.length})`);
    }
    const additional = schema.additionalProperties;
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    for (const key of keys) {
      const child = joinPath(path, key);
      if (props && Object.prototype.hasOwnProperty.call(props, key)) {
        this.check(props[key]!, value[key], child, depth + 1);
      } else if (additional === false) {
        this.add(child, unknownFieldMessage(key, props));
      } else if (isObject(additional)) {
        this.check(additional as Schema, value[key], child, depth + 1);
      } else if (additional === undefined && props && !preserve && this.opts.rejectUnknownFields) {
        this.add(child, unknownFieldMessage(key, props));
      }
    }
  }

  private checkCombinators(schema: Schema, value: unknown, path: string, depth: number): void {
    const sub = (s: unknown): SchemaProblem[] => {
      const v = new Validator(this.root, this.opts);
      v.check(s as Schema, value, path, depth + 1);
      return v.problems;
    };
    if (Array.isArray(schema.allOf)) for (const s of schema.allOf) this.check(s as Schema, value, path, depth + 1);
    if (Array.isArray(schema.anyOf)) {
      const results = schema.anyOf.map(sub);
      if (!results.some((r) => r.length === 0)) {
        this.add(path, `must match at least one of ${results.length} alternatives: ${results.map((r) => r.map((p) => `${p.path}: ${p.message}`).join('; ')).join(' | ')}`);
      }
    }
    if (Array.isArray(schema.oneOf)) {
      const results = schema.oneOf.map(sub);
      const ok = results.filter((r) => r.length === 0).length;
      if (ok === 0) {
        this.add(path, `must match exactly one of ${results.length} alternatives, matches none: ${results.map((r) => r.map((p) => `${p.path}: ${p.message}`).join('; ')).join(' | ')}`);
      } else if (ok > 1) {
        this.add(path, `must match exactly one of ${results.length} alternatives, matches ${ok}`);
      }
    }
    if (schema.not !== undefined && sub(schema.not).length === 0) this.add(path, 'matches a schema it must not match');
  }

  private regex(pattern: string): RegExp | null {
    let re = this.regexCache.get(pattern);
    if (re === undefined) {
      try {
        re = new RegExp(pattern, 'u');
      } catch {
        re = null;
      }
      this.regexCache.set(pattern, re);
    }
    return re;
  }
}

function resolveRef(root: Schema, ref: string): Schema | undefined {
  if (!ref.startsWith('#')) return undefined;
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(node) || !Object.prototype.hasOwnProperty.call(node, key)) return undefined;
    node = node[key];
  }
  return isObject(node) ? node : undefined;
}

function defaults(root: Schema, schemaIn: Schema, value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH || !isObject(schemaIn)) return value;
  let schema = schemaIn;
  for (let hops = 0; typeof schema.$ref === 'string' && hops < 32; hops++) {
    const target = resolveRef(root, schema.$ref as string);
    if (!target) return value;
    schema = target;
  }
  if (Array.isArray(schema.allOf)) for (const s of schema.allOf) value = defaults(root, s as Schema, value, depth + 1);
  if (isObject(value) && isObject(schema.properties)) {
    for (const [key, propSchema] of Object.entries(schema.properties as Record<string, Schema>)) {
      const resolved = isObject(propSchema) ? propSchema : {};
      if (!Object.prototype.hasOwnProperty.call(value, key) && 'default' in resolved) {
        value[key] = structuredCloneJson(resolved.default);
      }
      if (Object.prototype.hasOwnProperty.call(value, key)) value[key] = defaults(root, resolved, value[key], depth + 1);
    }
  }
  if (isObject(value) && isObject(schema.additionalProperties)) {
    const declared = isObject(schema.properties) ? (schema.properties as Schema) : {};
    for (const key of Object.keys(value)) {
      if (!Object.prototype.hasOwnProperty.call(declared, key)) value[key] = defaults(root, schema.additionalProperties as Schema, value[key], depth + 1);
    }
  }
  if (Array.isArray(value) && isObject(schema.items)) {
    return value.map((item) => defaults(root, schema.items as Schema, item, depth + 1));
  }
  return value;
}

function structuredCloneJson<T>(value: T): T {
  if (value === undefined) return value;
  if (Array.isArray(value)) return value.map((v) => structuredCloneJson(v)) as T;
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // defineProperty keeps a literal "__proto__" key a plain field instead of a prototype.
      Object.defineProperty(out, k, { value: structuredCloneJson(v), enumerable: true, writable: true, configurable: true });
    }
    return out as T;
  }
  return value;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isObject(value);
    case 'null':
      return value === null;
    default:
      return false;
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number') return Number.isInteger(value) ? `the integer ${value}` : `the number ${value}`;
  if (typeof value === 'string') return `the string ${short(value)}`;
  if (typeof value === 'object') return 'an object';
  return typeof value === 'boolean' ? `the boolean ${value}` : typeof value;
}

function article(type: string): string {
  switch (type) {
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
    case 'integer':
      return 'an integer';
    case 'null':
      return 'null';
    default:
      return `a ${type}`;
  }
}

function short(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function unknownFieldMessage(key: string, props: Record<string, unknown> | undefined): string {
  const known = props ? Object.keys(props) : [];
  const close = known.filter((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= Math.max(1, Math.floor(k.length / 4)));
  const hint = close.length > 0 ? ` (did you mean ${close.map((k) => JSON.stringify(k)).join(' or ')}?)` : known.length > 0 ? ` (known fields: ${known.join(', ')})` : '';
  return `unknown field ${JSON.stringify(key)}${hint}`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Formats whose check is a line or two; any other format is accepted as JSON Schema allows. */
function formatProblem(format: string, value: string | number): string | undefined {
  if (typeof value === 'number') {
    if (format === 'int32' && (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1)) return 'must be a 32-bit integer';
    if (format === 'int64' && !Number.isSafeInteger(value)) return 'must be an integer within ±2^53';
    return undefined;
  }
  switch (format) {
    case 'date-time': {
      const m = DATE_TIME.exec(value);
      if (!m || !validDate(m[1]!, m[2]!, m[3]!) || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60) {
        return `${short(value)} is not an RFC 3339 date-time (e.g. 2024-05-01T12:00:00Z)`;
      }
      return undefined;
    }
    case 'date': {
      const m = DATE.exec(value);
      return m && validDate(m[1]!, m[2]!, m[3]!) ? undefined : `${short(value)} is not a date (YYYY-MM-DD)`;
    }
    case 'uri':
      try {
        const u = new URL(value);
        return u.protocol ? undefined : `${short(value)} is not an absolute URI`;
      } catch {
        return `${short(value)} is not an absolute URI`;
      }
    case 'hostname':
      return HOSTNAME.test(value) ? undefined : `${short(value)} is not a hostname`;
    case 'ipv4':
      return IPV4.test(value) ? undefined : `${short(value)} is not an IPv4 address`;
    case 'email':
      return EMAIL.test(value) ? undefined : `${short(value)} is not an email address`;
    case 'byte':
      return BASE64.test(value) ? undefined : `${short(value)} is not base64`;
    default:
      return undefined;
  }
}

function validDate(y: string, m: string, d: string): boolean {
  const month = Number(m);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= new Date(Date.UTC(Number(y), month, 0)).getUTCDate();
}
