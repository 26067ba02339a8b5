/**
 * TypeScript twins of the CEL rules (x-kubernetes-validations) in the CRDs. An API server
 * evaluates the CEL; policy files and `trustgate policy check` never reach one, so the same
 * rules run here. Each CRD rule's message starts with `[id]`; the twin with that id runs at
 * the place in the schema where the CRD puts the rule, and reports the CRD's own message.
 * A CRD rule without a twin makes loading the schema fail (see model.ts), and a test keeps
 * the two lists equal, so a rule added to the CRD cannot be silently skipped for files.
 */
import { isObject, joinPath, displayPath, type SchemaProblem } from './schema.js';

type Twin = (self: unknown) => boolean;

/** Same regular expression as the CEL rule `image-qualified` (a test compares the two). */
export const QUALIFIED_IMAGE = /^(localhost|\[[a-fA-F0-9:]+\]|[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9-]+:[0-9]+)(:[0-9]+)?\//;

/** Same regular expression as the CEL rule `notary-roles`. */
export const NOTARY_ROLE = /^targets\/[-a-z0-9_]+(\/[-a-z0-9_]+)*$/;

const DURATION = /^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$/;

/** Seconds in a Go-style `1h30m5s` duration (hours, minutes, seconds only), or undefined. */
export function durationSeconds(text: string): number | undefined {
  const m = typeof text === 'string' && text !== '' ? DURATION.exec(text) : null;
  if (!m) return undefined;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

const has = (o: unknown, key: string): boolean => isObject(o) && Object.prototype.hasOwnProperty.call(o, key) && o[key] !== undefined;
const size = (v: unknown): number => (Array.isArray(v) ? v.length : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Keyed by the id in the CRD message. Each returns true when the rule holds. */
export const CEL_TWINS: Readonly<Record<string, Twin>> = Object.freeze({
  // self.matches(r'^(localhost|...)(:[0-9]+)?/')
  'image-qualified': (self) => QUALIFIED_IMAGE.test(str(self)),
  // !has(self.credentials) || self.url.startsWith('https://')
  'credentials-https': (self) => !has(self, 'credentials') || str((self as Record<string, unknown>).url).startsWith('https://'),
  // !has(self.caBundle) || self.caBundle == '' || self.url.startsWith('https://')
  'cabundle-https': (self) => {
    const o = self as Record<string, unknown>;
    return !has(self, 'caBundle') || o.caBundle === '' || str(o.url).startsWith('https://');
  },
  // has(self.keys) != has(self.trustedRoot)
  'root-one-of': (self) => has(self, 'keys') !== has(self, 'trustedRoot'),
  // !has(self.keys) || self.threshold <= size(self.keys)
  'root-threshold': (self) => {
    const o = self as Record<string, unknown>;
    return !has(self, 'keys') || (typeof o.threshold === 'number' && o.threshold <= size(o.keys));
  },
  // !has(self.root.trustedRoot) || (has(self.trustServer.protocol) && self.trustServer.protocol == 'tuf')
  'trusted-root-tuf': (self) => {
    const o = self as Record<string, unknown>;
    return !has(o.root, 'trustedRoot') || (has(o.trustServer, 'protocol') && (o.trustServer as Record<string, unknown>).protocol === 'tuf');
  },
  // !has(self.delegations) || (protocol == 'tuf') || self.delegations.roles.all(r, r.matches(NOTARY_ROLE))
  'notary-roles': (self) => {
    const o = self as Record<string, unknown>;
    if (!has(o, 'delegations') || (has(o.trustServer, 'protocol') && (o.trustServer as Record<string, unknown>).protocol === 'tuf')) return true;
    const roles = (o.delegations as Record<string, unknown>).roles;
    return Array.isArray(roles) && roles.every((r) => NOTARY_ROLE.test(str(r)));
  },
  // !has(self.threshold) || self.threshold <= size(self.roles)
  'delegation-threshold': (self) => {
    const o = self as Record<string, unknown>;
    return !has(self, 'threshold') || (typeof o.threshold === 'number' && o.threshold <= size(o.roles));
  },
  // duration(self) >= duration('1s') && duration(self) <= duration('8760h')
  'freshness-range': (self) => {
    const s = durationSeconds(str(self));
    return s !== undefined && s >= 1 && s <= 8760 * 3600;
  },
});

export interface CelRule {
  id: string;
  rule: string;
  message: string;
  /** Schema location, e.g. `spec.root`, `spec.images[]`. */
  at: string;
}

const ID = /^\[([a-z0-9-]+)\]\s/;

/** Every x-kubernetes-validations rule in a schema, with its id and location. Throws on a rule without an id. */
export function celRules(schema: unknown, at = ''): CelRule[] {
  const out: CelRule[] = [];
  walkSchema(schema, at, (node, where) => {
    const rules = node['x-kubernetes-validations'];
    if (!Array.isArray(rules)) return;
    for (const r of rules) {
      const message = isObject(r) ? str(r.message) : '';
      const m = ID.exec(message);
      if (!m) throw new Error(`CEL rule at ${where || '(root)'} has no "[id] " at the start of its message: ${JSON.stringify(r)}`);
      out.push({ id: m[1]!, rule: isObject(r) ? str(r.rule) : '', message, at: where });
    }
  });
  return out;
}

/** Throws unless every CEL rule in the schema has a twin: a rule that cannot be checked here must not be skipped. */
export function assertTwinsFor(schema: unknown): void {
  const missing = celRules(schema).filter((r) => !(r.id in CEL_TWINS));
  if (missing.length > 0) throw new Error(`CEL rules without a TypeScript twin: ${missing.map((r) => `${r.id} at ${r.at}`).join(', ')}`);
}

/**
 * Runs the twins against a value, walking schema and value together as an API server
 * does: a rule runs only where the value exists and has the type the schema expects there.
 * `skip(path)` lets the caller leave out values that already failed the schema (the twins
 * assume a well-typed `self`, as CEL does).
 */
export function celProblems(schema: unknown, value: unknown, path = '', skip: (path: string) => boolean = () => false): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  visit(schema, value, path, problems, skip, 0);
  return problems;
}

function visit(schema: unknown, value: unknown, path: string, problems: SchemaProblem[], skip: (path: string) => boolean, depth: number): void {
  if (!isObject(schema) || value === undefined || value === null || depth > 64) return;
  if (isObject(schema.properties) && isObject(value)) {
    for (const [key, sub] of Object.entries(schema.properties)) {
      if (Object.prototype.hasOwnProperty.call(value, key)) visit(sub, value[key], joinPath(path, key), problems, skip, depth + 1);
    }
  }
  if (isObject(schema.items) && Array.isArray(value)) {
    value.forEach((item, i) => visit(schema.items, item, joinPath(path, i), problems, skip, depth + 1));
  }
  const rules = schema['x-kubernetes-validations'];
  if (!Array.isArray(rules) || skip(path) || !typeMatches(schema.type, value)) return;
  for (const r of rules) {
    const message = isObject(r) ? str(r.message) : '';
    const id = ID.exec(message)?.[1];
    const twin = id === undefined ? undefined : CEL_TWINS[id];
    // Unknown rules fail closed: model.ts refuses such a schema at load time, this is a backstop.
    if (!twin || !twin(value)) problems.push({ path: displayPath(path), message: message.replace(ID, '').trim() + (id ? ` (rule ${id})` : '') });
  }
}

function typeMatches(type: unknown, value: unknown): boolean {
  switch (type) {
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return true;
  }
}

function walkSchema(schema: unknown, where: string, fn: (node: Record<string, unknown>, where: string) => void): void {
  if (!isObject(schema)) return;
  fn(schema, where);
  if (isObject(schema.properties)) for (const [k, s] of Object.entries(schema.properties)) walkSchema(s, joinPath(where, k), fn);
  if (isObject(schema.items)) walkSchema(schema.items, `${where}[]`, fn);
  if (isObject(schema.additionalProperties)) walkSchema(schema.additionalProperties, `${where}[*]`, fn);
}
