/**
 * Mutations for fuzzing JSON documents, at two levels: the parsed tree (type swaps, huge and
 * fractional numbers, deep nesting, duplicate and prototype keys, strings, arrays, moved
 * subtrees) and the raw bytes (bit flips, truncation, invalid UTF-8, spliced ranges). The
 * tree keeps what JSON.parse would lose: duplicate keys and number spellings are written
 * back verbatim, so the bytes under test are exactly the bytes an attacker could send.
 */
import type { Prng } from './prng.js';

/** Text written as-is into the output (a number spelling, a deep nest, an escape). */
export class Raw {
  constructor(readonly text: string) {}
}

export const DUPLICATES: unique symbol = Symbol('duplicate keys');
export type Obj = { [key: string]: Node } & { [DUPLICATES]?: { before: [string, Node][]; after: [string, Node][] } };
export type Node = null | boolean | number | string | Raw | Node[] | Obj;

/** Parse into a tree of prototype-free objects (a `__proto__` key stays a plain key). */
export function parseTree(text: string): Node {
  return JSON.parse(text, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const o = Object.create(null) as Obj;
    for (const k of Object.keys(v)) o[k] = (v as Record<string, Node>)[k]!;
    return o;
  }) as Node;
}

export function serialize(n: Node): string {
  if (n instanceof Raw) return n.text;
  if (n === null || typeof n !== 'object') return JSON.stringify(n);
  if (Array.isArray(n)) return '[' + n.map(serialize).join(',') + ']';
  const dups = n[DUPLICATES];
  const entries: [string, Node][] = [...(dups?.before ?? []), ...Object.keys(n).map((k) => [k, n[k]!] as [string, Node]), ...(dups?.after ?? [])];
  return '{' + entries.map(([k, v]) => JSON.stringify(k) + ':' + serialize(v)).join(',') + '}';
}

export function cloneTree(n: Node): Node {
  if (n instanceof Raw || n === null || typeof n !== 'object') return n;
  if (Array.isArray(n)) return n.map(cloneTree);
  const o = Object.create(null) as Obj;
  for (const k of Object.keys(n)) o[k] = cloneTree(n[k]!);
  const d = n[DUPLICATES];
  if (d) o[DUPLICATES] = { before: d.before.map(([k, v]) => [k, cloneTree(v)]), after: d.after.map(([k, v]) => [k, cloneTree(v)]) };
  return o;
}

interface Slot {
  get(): Node;
  set(v: Node): void;
  /** Removes the node from its parent (no-op for the root). */
  remove(): void;
  path: string;
}

/** Every node of the tree with a way to replace it, root first. */
export function slots(root: { value: Node }): Slot[] {
  const out: Slot[] = [];
  const walk = (get: () => Node, set: (v: Node) => void, remove: () => void, path: string) => {
    out.push({ get, set, remove, path });
    const n = get();
    if (n instanceof Raw || n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      n.forEach((_, i) => walk(() => n[i]!, (v) => (n[i] = v), () => n.splice(i, 1), `${path}[${i}]`));
    } else {
      for (const k of Object.keys(n)) walk(() => n[k]!, (v) => (n[k] = v), () => delete n[k], `${path}.${k}`);
    }
  };
  walk(() => root.value, (v) => (root.value = v), () => undefined, '$');
  return out;
}

const HUGE_AND_ODD_NUMBERS = [
  '1e309', '-1e309', '9007199254740993', '9007199254740992', '18446744073709551616', '1e21', '1E2', '2.0', '1.5', '0.5', '-0', '-1',
  '0', '4294967296', '2147483648', '1e-7', '123456789012345678901234567890', '0.0000000000000000000001', '-9007199254740993',
];

const STRANGE_STRINGS = [
  '', ' ', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '../../etc/passwd', 'targets/../root',
  'targets/releases', 'targets', 'root', 'sha256', 'ecdsa', 'ed25519', 'rsapss', 'ecdsa-x509', 'rsa-x509', 'Root', 'Targets', 'Snapshot', 'Timestamp',
  '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2000-01-01T00:00:00Z', '2031-13-01T00:00:00Z', 'not a date', '2031-06-01T12:00:00+01:00',
  '2031-06-01T12:00:00.999999999Z', '1e3', 'AAAA', '====', 'é', '\u0000', '\u2028', '😀', 'x'.repeat(70_000),
];

const NEST_DEPTHS = [65, 100, 1000, 20_000];

const PROTO_INJECTIONS: Array<[string, string]> = [
  ['__proto__', '{"polluted":"fuzz"}'],
  ['__proto__', '[1,2,3]'],
  ['__proto__', 'null'],
  ['constructor', '{"prototype":{"polluted":"fuzz"}}'],
  ['prototype', '{"polluted":"fuzz"}'],
  ['hasOwnProperty', '"fuzz"'],
  ['toString', '{"polluted":"fuzz"}'],
  ['valueOf', '1'],
];

export type TreeMutation =
  | 'type-swap'
  | 'number'
  | 'deep-nesting'
  | 'duplicate-key'
  | 'prototype-key'
  | 'delete-key'
  | 'add-key'
  | 'string'
  | 'array'
  | 'move';

export const TREE_MUTATIONS: readonly TreeMutation[] = [
  'type-swap', 'number', 'deep-nesting', 'duplicate-key', 'prototype-key', 'delete-key', 'add-key', 'string', 'array', 'move',
];

function objects(all: Slot[]): Slot[] {
  return all.filter((s) => {
    const n = s.get();
    return n !== null && typeof n === 'object' && !Array.isArray(n) && !(n instanceof Raw);
  });
}

function randomValue(rng: Prng, notOfType?: string): Node {
  const candidates: Node[] = [null, true, false, 0, 1, -1, 2, '', 'x', [], Object.create(null) as Obj, new Raw('1.5'), new Raw('1e400'), ['x'], 'sha256:00'];
  for (let i = 0; i < 8; i++) {
    const v = rng.pick(candidates);
    if (typeName(v) !== notOfType) return v instanceof Raw ? v : cloneTree(v);
  }
  return null;
}

function typeName(v: Node): string {
  if (v === null) return 'null';
  if (v instanceof Raw) return 'number';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Apply one tree mutation of `kind` (falling back to another when the tree has nothing it
 * applies to). Returns a description for the reproducer.
 */
export function mutateTree(root: { value: Node }, rng: Prng, kind: TreeMutation): string {
  const all = slots(root);
  const target = rng.pick(all);
  const current = target.get();
  switch (kind) {
    case 'type-swap': {
      target.set(randomValue(rng, typeName(current)));
      return `type-swap ${target.path} (${typeName(current)})`;
    }
    case 'number': {
      const numbers = all.filter((s) => typeof s.get() === 'number');
      const slot = numbers.length > 0 && rng.chance(0.8) ? rng.pick(numbers) : target;
      const v = slot.get();
      const text = typeof v === 'number' && rng.chance(0.3) ? `${v}.5` : rng.pick(HUGE_AND_ODD_NUMBERS);
      slot.set(new Raw(text));
      return `number ${slot.path} = ${text}`;
    }
    case 'deep-nesting': {
      const d = rng.pick(NEST_DEPTHS);
      const text = rng.chance(0.5) ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '1' + '}'.repeat(d);
      target.set(new Raw(text));
      return `deep-nesting ${target.path} depth ${d}`;
    }
    case 'duplicate-key': {
      const objs = objects(all).filter((s) => Object.keys(s.get() as Obj).length > 0);
      if (objs.length === 0) return mutateTree(root, rng, 'add-key');
      const slot = rng.pick(objs);
      const o = slot.get() as Obj;
      const key = rng.pick(Object.keys(o));
      const value = rng.chance(0.5) ? cloneTree(o[key]!) : randomValue(rng);
      const d = (o[DUPLICATES] ??= { before: [], after: [] });
      const where = rng.chance(0.5) ? 'before' : 'after';
      d[where].push([key, value]);
      return `duplicate-key ${slot.path}.${key} ${where}`;
    }
    case 'prototype-key': {
      const objs = objects(all);
      if (objs.length === 0) return mutateTree(root, rng, 'type-swap');
      const slot = rng.pick(objs);
      const [key, value] = rng.pick(PROTO_INJECTIONS);
      const o = slot.get() as Obj;
      const d = (o[DUPLICATES] ??= { before: [], after: [] });
      d[rng.chance(0.5) ? 'before' : 'after'].push([key, new Raw(value)]);
      return `prototype-key ${slot.path}.${key}=${value}`;
    }
    case 'delete-key': {
      if (target.path === '$') return mutateTree(root, rng, 'type-swap');
      target.remove();
      return `delete ${target.path}`;
    }
    case 'add-key': {
      const objs = objects(all);
      if (objs.length === 0) return mutateTree(root, rng, 'type-swap');
      const slot = rng.pick(objs);
      const key = rng.pick(STRANGE_STRINGS.filter((s) => s.length < 100));
      (slot.get() as Obj)[key] = randomValue(rng);
      return `add-key ${slot.path}.${JSON.stringify(key)}`;
    }
    case 'string': {
      const strings = all.filter((s) => typeof s.get() === 'string');
      const slot = strings.length > 0 ? rng.pick(strings) : target;
      const old = slot.get();
      const choice = rng.int(5);
      let v: Node;
      if (choice === 0 && strings.length > 1) v = rng.pick(strings).get();
      else if (choice === 1 && typeof old === 'string' && old.length > 1) v = old.slice(0, rng.int(old.length));
      else if (choice === 2 && typeof old === 'string') v = old + rng.pick(['x', '/', '\u0000', 'é', '=']);
      else if (choice === 3) v = new Raw(rng.pick(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\/b"', '"\\u00e9"']));
      else v = rng.pick(STRANGE_STRINGS);
      slot.set(v);
      return `string ${slot.path}`;
    }
    case 'array': {
      const arrays = all.filter((s) => Array.isArray(s.get()));
      if (arrays.length === 0) return mutateTree(root, rng, 'type-swap');
      const slot = rng.pick(arrays);
      const a = slot.get() as Node[];
      const op = rng.int(4);
      if (op === 0 && a.length > 0) a.push(cloneTree(a[rng.int(a.length)]!));
      else if (op === 1 && a.length > 0) a.splice(rng.int(a.length), 1);
      else if (op === 2) slot.set([]);
      else a.reverse();
      return `array ${slot.path} op ${op}`;
    }
    case 'move': {
      const other = rng.pick(all);
      if (other.path === target.path || other.path.startsWith(target.path) || target.path.startsWith(other.path)) return mutateTree(root, rng, 'type-swap');
      const a = target.get();
      target.set(cloneTree(other.get()));
      if (rng.chance(0.5)) other.set(cloneTree(a));
      return `move ${other.path} -> ${target.path}`;
    }
  }
}

export type ByteMutation = 'bit-flip' | 'truncate' | 'invalid-utf8' | 'splice' | 'whitespace';
export const BYTE_MUTATIONS: readonly ByteMutation[] = ['bit-flip', 'truncate', 'invalid-utf8', 'splice', 'whitespace'];

const INVALID_UTF8 = [[0xff], [0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xc3], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80]];

export function mutateBytes(input: Buffer, rng: Prng, kind: ByteMutation): { bytes: Buffer; note: string } {
  const b = Buffer.from(input);
  const at = () => rng.int(Math.max(1, b.length));
  switch (kind) {
    case 'bit-flip': {
      const n = 1 + rng.int(4);
      const where: number[] = [];
      for (let i = 0; i < n && b.length > 0; i++) {
        const p = at();
        b[p] = b[p]! ^ (1 << rng.int(8));
        where.push(p);
      }
      return { bytes: b, note: `bit-flip at ${where.join(',')}` };
    }
    case 'truncate': {
      const p = at();
      return { bytes: b.subarray(0, p), note: `truncate to ${p}` };
    }
    case 'invalid-utf8': {
      // Inside a string most of the time, where only a strict decoder notices.
      const quotes: number[] = [];
      for (let i = 0; i < b.length; i++) if (b[i] === 0x22) quotes.push(i);
      const p = quotes.length > 0 && rng.chance(0.8) ? rng.pick(quotes) + 1 : at();
      const seq = Buffer.from(rng.pick(INVALID_UTF8));
      return { bytes: Buffer.concat([b.subarray(0, p), seq, b.subarray(p)]), note: `invalid-utf8 ${seq.toString('hex')} at ${p}` };
    }
    case 'splice': {
      const from = at();
      const len = rng.int(Math.min(64, b.length - from) + 1);
      const op = rng.int(3);
      if (op === 0) return { bytes: Buffer.concat([b.subarray(0, from), b.subarray(from + len)]), note: `delete ${from}+${len}` };
      if (op === 1) return { bytes: Buffer.concat([b.subarray(0, from + len), b.subarray(from, from + len), b.subarray(from + len)]), note: `duplicate ${from}+${len}` };
      const junk = Buffer.from(Array.from({ length: 1 + rng.int(8) }, () => rng.int(256)));
      return { bytes: Buffer.concat([b.subarray(0, from), junk, b.subarray(from)]), note: `insert ${junk.toString('hex')} at ${from}` };
    }
    case 'whitespace': {
      // Insignificant outside strings: must change nothing at all.
      const structural: number[] = [];
      let inString = false;
      for (let i = 0; i < b.length; i++) {
        const c = b[i]!;
        if (inString) {
          if (c === 0x5c) i++;
          else if (c === 0x22) inString = false;
        } else if (c === 0x22) inString = true;
        else if (c === 0x2c || c === 0x3a || c === 0x7b || c === 0x5b) structural.push(i + 1);
      }
      const p = structural.length > 0 ? rng.pick(structural) : 0;
      const ws = rng.pick([' ', '\n', '\t', '\r\n', '   ']);
      return { bytes: Buffer.concat([b.subarray(0, p), Buffer.from(ws), b.subarray(p)]), note: `whitespace at ${p}` };
    }
  }
}
