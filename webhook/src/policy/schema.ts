/**
 * Validation against trustgate's own schemas (the structural OpenAPI v3 schemas of its CRDs
 * and the draft-07 values.schema.json of the Helm chart) with Ajv. What trustgate adds:
 * every problem at once (allErrors), each at the path of the offending value (`spec.root`,
 * `spec.images[2]`) with a message a person can act on, a did-you-mean hint for unknown
 * fields, and the Kubernetes schema extensions an API server applies
 * (x-kubernetes-int-or-string, x-kubernetes-list-type set/map, nullable, OpenAPI 3.0's
 * boolean exclusiveMinimum/exclusiveMaximum, x-kubernetes-preserve-unknown-fields).
 * Keywords Ajv does not know (description, x-kubernetes-validations...) are ignored here;
 * CEL rules run through their twins in rules.ts.
 */
import { Ajv, type ErrorObject, type FuncKeywordDefinition, type SchemaValidateFunction, type ValidateFunction } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import deepEqual from 'fast-deep-equal';

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

// ajv-formats is CommonJS: under NodeNext its default import is the module object.
const addFormats = ((addFormatsPlugin as unknown as { default?: typeof addFormatsPlugin }).default ?? addFormatsPlugin) as unknown as (ajv: Ajv) => Ajv;

function newAjv(useDefaults: boolean): Ajv {
  // strict: false ignores keywords Ajv does not know (x-kubernetes-validations, description
  // in odd places); logger: false keeps unknown formats from printing (they are accepted,
  // as JSON Schema allows).
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: false, strictNumbers: true, logger: false, useDefaults });
  addFormats(ajv);
  for (const k of KUBERNETES_KEYWORDS) ajv.addKeyword(k);
  return ajv;
}

const checkIntOrString: SchemaValidateFunction = function check(on: boolean, data: unknown): boolean {
  if (!on || typeof data === 'string' || (typeof data === 'number' && Number.isInteger(data))) return true;
  checkIntOrString.errors = [{ keyword: 'x-kubernetes-int-or-string', params: {}, message: `must be an integer or a string, not ${typeName(data)}` }];
  return false;
};

/** set: items unique; map: items unique by x-kubernetes-list-map-keys. Reports each later duplicate. */
const checkListType: SchemaValidateFunction = function check(kind: string, data: unknown[], parent?: Schema): boolean {
  const keys = kind === 'map' && Array.isArray(parent?.['x-kubernetes-list-map-keys']) ? (parent['x-kubernetes-list-map-keys'] as string[]) : undefined;
  if (kind !== 'set' && !keys) return true;
  const same = (a: unknown, b: unknown) => (keys ? isObject(a) && isObject(b) && keys.every((k) => deepEqual(a[k], b[k])) : deepEqual(a, b));
  const errors: Partial<ErrorObject>[] = [];
  data.forEach((item, i) => {
    const first = data.findIndex((other) => same(other, item));
    if (first < i) errors.push({ keyword: 'x-kubernetes-list-type', params: { index: i, first, keys } });
  });
  checkListType.errors = errors;
  return errors.length === 0;
};

const KUBERNETES_KEYWORDS: FuncKeywordDefinition[] = [
  { keyword: 'x-kubernetes-int-or-string', schemaType: 'boolean', errors: true, validate: checkIntOrString },
  { keyword: 'x-kubernetes-list-type', schemaType: 'string', type: 'array', errors: true, validate: checkListType },
];

const checking = newAjv(false);
const defaulting = newAjv(true);

const compiled = new WeakMap<object, Map<boolean, ValidateFunction | Error>>();

function compile(schema: object, rejectUnknown: boolean): ValidateFunction | Error {
  let bySchema = compiled.get(schema);
  if (!bySchema) compiled.set(schema, (bySchema = new Map()));
  let fn = bySchema.get(rejectUnknown);
  if (!fn) {
    try {
      fn = checking.compile(forAjv(schema as Schema, rejectUnknown));
    } catch (e) {
      fn = e as Error;
    }
    bySchema.set(rejectUnknown, fn);
  }
  return fn;
}

export function validateSchema(schema: object, value: unknown, options: ValidateOptions = {}): SchemaProblem[] {
  const base = options.basePath ?? '';
  const fn = compile(schema, options.rejectUnknownFields === true);
  if (fn instanceof Error) return [{ path: displayPath(base), message: schemaError(fn) }];
  try {
    fn(value);
  } catch (e) {
    // A schema whose $ref leads back to itself recurses without end.
    return [{ path: displayPath(base), message: schemaError(e as Error) }];
  }
  return problemsOf(fn.errors ?? [], value, base);
}

/**
 * A copy of `value` with the schema's defaults filled in where a field is absent, the way
 * an API server defaults an object before validating it: only inside objects that exist
 * (a default on `spec.freshness.x` does nothing when `spec.freshness` is absent) and only
 * where the value has the type the schema expects. `value` itself is never modified.
 */
export function applyDefaults<T>(schema: object, value: T): T {
  if (value === undefined) return value;
  const copy = JSON.parse(JSON.stringify(value)) as T;
  let fn = defaulters.get(schema);
  if (!fn) {
    try {
      fn = defaulting.compile(forAjv(schema as Schema, false));
    } catch {
      return copy; // validateSchema reports the broken schema
    }
    defaulters.set(schema, fn);
  }
  try {
    fn(copy);
  } catch {
    // as above
  }
  return copy;
}

const defaulters = new WeakMap<object, ValidateFunction>();

/** Appends a property or index to a path: `a.b`, `a[0]`, `a["x.y"]`. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) return base === '' ? key : `${base}.${key}`;
  return `${base}[${JSON.stringify(key)}]`;
}

export function displayPath(path: string): string {
  return path === '' ? ROOT : path;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The schema as Ajv's draft-07 reads it: OpenAPI 3.0's boolean exclusiveMinimum/Maximum
 * become draft-07 numbers, and with rejectUnknown every object schema that declares
 * properties and allows nothing else gets additionalProperties: false. A copy: the
 * caller's schema is not changed.
 */
function forAjv(schema: Schema, rejectUnknown: boolean): Schema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!isObject(node)) return node;
    const out: Schema = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'properties' || k === 'definitions' || k === '$defs' || k === 'patternProperties' || k === 'dependencies') {
        out[k] = isObject(v) ? Object.fromEntries(Object.entries(v).map(([name, s]) => [name, walk(s)])) : v;
      } else if (SUBSCHEMA_KEYWORDS.has(k)) {
        out[k] = walk(v);
      } else {
        out[k] = v; // enum, const, default, examples...: data, not schemas
      }
    }
    for (const [bool, limit] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
      if (typeof out[bool] === 'boolean') {
        if (out[bool] === true && typeof out[limit] === 'number') {
          out[bool] = out[limit];
          delete out[limit];
        } else delete out[bool];
      }
    }
    if (rejectUnknown && isObject(out.properties) && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
      out.additionalProperties = false;
    }
    return out;
  };
  return walk(schema) as Schema;
}

const SUBSCHEMA_KEYWORDS = new Set(['items', 'additionalItems', 'additionalProperties', 'allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else', 'contains', 'propertyNames']);

function schemaError(e: Error): string {
  const missing = (e as { missingRef?: string }).missingRef;
  if (missing !== undefined) return `schema error: cannot resolve $ref ${JSON.stringify(missing)}`;
  if (e instanceof SyntaxError && /regular expression/i.test(e.message)) return `schema error: invalid pattern: ${e.message}`;
  if (e instanceof RangeError) return `schema error: the schema refers to itself without end (${e.message})`;
  return `schema error: ${e.message}`;
}

/** Ajv's errors as trustgate's problems: paths, messages, alternatives folded into one. */
function problemsOf(errors: ErrorObject[], value: unknown, base: string): SchemaProblem[] {
  // The branches of anyOf/oneOf explain why the alternative failed; they are not problems of
  // their own (only one branch needs to pass).
  const alternatives = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const inAlternative = (e: ErrorObject) => alternatives.some((a) => a !== e && e.schemaPath.startsWith(`${a.schemaPath}/`));
  // A value of the wrong type: nothing else about it is worth saying.
  const wrongType = new Set(errors.filter((e) => e.keyword === 'type' || e.keyword === 'x-kubernetes-int-or-string').map((e) => e.instancePath));

  const out: SchemaProblem[] = [];
  // Ajv checks a tuple's length before its items; items beyond it read better after them.
  const extra: SchemaProblem[] = [];
  for (const e of errors) {
    if (inAlternative(e)) continue;
    if (wrongType.has(e.instancePath) && e.keyword !== 'type' && e.keyword !== 'x-kubernetes-int-or-string' && e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    const path = dataPath(base, e.instancePath, value);
    for (const p of describe(e, path, errors)) (e.keyword === 'additionalItems' ? extra : out).push({ path: displayPath(p.path), message: p.message });
  }
  return [...out, ...extra];
}

/** JSON pointer -> `a.b[0]["x.y"]`, telling list indexes from keys by the data itself. */
function dataPath(base: string, pointer: string, value: unknown): string {
  let path = base;
  let node = value;
  if (pointer === '') return path;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      path = joinPath(path, Number(key));
      node = node[Number(key)];
    } else {
      path = joinPath(path, key);
      node = isObject(node) ? node[key] : undefined;
    }
  }
  return path;
}

function describe(e: ErrorObject, path: string, all: ErrorObject[]): { path: string; message: string }[] {
  const data = e.data;
  const p = e.params as Record<string, unknown>;
  const at = (message: string) => [{ path, message }];
  switch (e.keyword) {
    case 'type': {
      const types = Array.isArray(p.type) ? (p.type as string[]) : String(p.type).split(',');
      return at(`must be ${types.map(article).join(' or ')}, not ${typeName(data)}`);
    }
    case 'enum':
      return at(`must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, not ${short(data)}`);
    case 'const':
      return at(`must be ${JSON.stringify(p.allowedValue)}`);
    case 'pattern':
      return at(`${short(data)} does not match the pattern ${String(p.pattern)}`);
    case 'minLength':
      return at(p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters long (is ${[...String(data)].length})`);
    case 'maxLength':
      return at(`must be at most ${p.limit} characters long (is ${[...String(data)].length})`);
    case 'format':
      return at(formatMessage(String(p.format), data));
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const words: Record<string, string> = { '>=': 'at least', '<=': 'at most', '>': 'greater than', '<': 'less than' };
      return at(`must be ${words[String(p.comparison)]} ${p.limit} (is ${data})`);
    }
    case 'multipleOf':
      return at(`must be a multiple of ${p.multipleOf}`);
    case 'minItems':
      return at(p.limit === 1 ? 'must not be empty' : `must have at least ${p.limit} items (has ${(data as unknown[]).length})`);
    case 'maxItems':
      return at(`must have at most ${p.limit} items (has ${(data as unknown[]).length})`);
    case 'additionalItems': {
      const items = data as unknown[];
      return items.slice(Number(p.limit)).map((_, i) => ({ path: joinPath(path, Number(p.limit) + i), message: 'no value is allowed here' }));
    }
    case 'uniqueItems':
      // Ajv names the later duplicate i and the earlier j.
      return [{ path: joinPath(path, Number(p.i)), message: `duplicate of ${joinPath(path, Number(p.j))}: entries must be unique` }];
    case 'x-kubernetes-list-type': {
      const keys = p.keys as string[] | undefined;
      const first = joinPath(path, Number(p.first));
      const message = keys ? `same ${keys.join('/')} as ${first}: entries must be unique by ${keys.join(', ')}` : `duplicate of ${first}: entries must be unique`;
      return [{ path: joinPath(path, Number(p.index)), message }];
    }
    case 'required':
      return [{ path: joinPath(path, String(p.missingProperty)), message: 'is required' }];
    case 'minProperties':
      return at(`must have at least ${p.limit} fields (has ${Object.keys(data as object).length})`);
    case 'maxProperties':
      return at(`must have at most ${p.limit} fields (has ${Object.keys(data as object).length})`);
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const props = (e.parentSchema as Schema | undefined)?.properties;
      return [{ path: joinPath(path, key), message: unknownFieldMessage(key, isObject(props) ? props : undefined) }];
    }
    case 'anyOf':
    case 'oneOf': {
      const n = Array.isArray(e.schema) ? e.schema.length : 0;
      if (e.keyword === 'oneOf' && Array.isArray(p.passingSchemas)) {
        return at(`must match exactly one of ${n} alternatives, matches ${p.passingSchemas.length}`);
      }
      const why = Array.from({ length: n }, (_, i) =>
        all
          .filter((sub) => sub.schemaPath.startsWith(`${e.schemaPath}/${i}/`))
          .flatMap((sub) => describe(sub, dataPath(path, sub.instancePath.slice(e.instancePath.length), data), all))
          .map((d) => `${displayPath(d.path)}: ${d.message}`)
          .join('; '),
      );
      const what = e.keyword === 'anyOf' ? 'at least one' : 'exactly one';
      return at(`must match ${what} of ${n} alternatives${e.keyword === 'oneOf' ? ', matches none' : ''}: ${why.join(' | ')}`);
    }
    case 'not':
      return at('matches a schema it must not match');
    case 'false schema':
      return at('no value is allowed here');
    default:
      return at(e.message ?? `fails ${e.keyword}`);
  }
}

function formatMessage(format: string, value: unknown): string {
  const v = short(value);
  switch (format) {
    case 'date-time':
      return `${v} is not an RFC 3339 date-time (e.g. 2024-05-01T12:00:00Z)`;
    case 'date':
      return `${v} is not a date (YYYY-MM-DD)`;
    case 'uri':
      return `${v} is not an absolute URI`;
    case 'hostname':
      return `${v} is not a hostname`;
    case 'ipv4':
      return `${v} is not an IPv4 address`;
    case 'email':
      return `${v} is not an email address`;
    case 'byte':
      return `${v} is not base64`;
    case 'int32':
      return 'must be a 32-bit integer';
    case 'int64':
      return 'must be a 64-bit integer';
    default:
      return `${v} is not a valid ${format}`;
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
