// A deliberately small Helm renderer for the trustgate chart's tests. No Helm binary can run
// here, so the chart keeps to a plain subset of Go templates and this module renders exactly
// that subset, failing loudly on anything else (so a template that drifts outside it breaks
// the tests instead of being rendered wrongly).
//
// Supported:
//   - text, {{ pipeline }}, trim markers {{- and -}}, comments {{/* ... */}}
//   - {{ define "name" }}, {{ if }} / {{ else if }} / {{ else }}, {{ range }} (over lists and
//     maps, optionally `$v :=` or `$k, $v :=`), {{ with }} (with {{ else }}), {{ end }}
//   - variables: `$` (the root), `$x := pipeline`, `$x = pipeline`, `$x.field`
//   - operands: `.`, `.A.b.c`, `$x.a`, "strings", `raw strings`, integers, true/false/nil,
//     (sub pipelines); pipes `a | f b` pass the value as the last argument
//   - functions: include, toYaml, indent, nindent, quote, default, required, fail, b64enc,
//     genCA, genSignedCert (real certificates from the openssl CLI), lookup (answered by
//     the caller, as `helm template` answers with an empty map), list, dict, set, index, int, add, and,
//     or, not, eq, ne, lt, le, gt, ge, printf (%s %d %v), trunc, trimSuffix, contains,
//     replace, lower, toString
//
// Deliberate differences from Helm, all stricter:
//   - reading a map key that does not exist is an error (Helm yields nil) so a template that
//     names a value missing from values.yaml fails; use `index` where absence is expected;
//   - printing a map or list without toYaml is an error (Helm prints Go's map[...] syntax);
//   - unknown functions, `template`, `block`, `tpl`, `.Capabilities`, `.Files` are errors.
// Not parsed: `}}` inside a string literal (the action ends there), `{{ else with }}`,
// `break`/`continue`, method calls with arguments, and comparisons across number types.
// Not modelled: Go's exact number formatting (values are JS numbers), sprig's full quoting
// rules (quote uses JSON string syntax, which agrees for ordinary strings), subcharts,
// `helm.sh/hook` ordering, and the values schema check (the tests do that separately).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import YAML from 'yaml';

export type Lookup = (apiVersion: string, kind: string, namespace: string, name: string) => unknown;

export interface RenderOptions {
  /** Merged over values.yaml the way `helm install -f` merges (maps merge, null deletes). */
  values?: Record<string, unknown>;
  release?: { name?: string; namespace?: string; isUpgrade?: boolean };
  /** Answers `lookup`; by default nothing exists (what `helm template` and first installs see). */
  lookup?: Lookup;
}

export interface RenderedChart {
  values: Record<string, unknown>;
  /** Template path relative to the chart (e.g. templates/deployment.yaml) -> rendered text. */
  files: Map<string, string>;
  notes: string;
}

export interface ManifestDoc {
  source: string;
  doc: Record<string, unknown>;
}

export class TemplateError extends Error {}

// ---------------------------------------------------------------- public entry points

export function renderChart(chartDir: string, options: RenderOptions = {}): RenderedChart {
  const chart = YAML.parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const defaults = (YAML.parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
  const values = mergeValues(defaults, options.values ?? {});
  const release = {
    Name: options.release?.name ?? 'trustgate',
    Namespace: options.release?.namespace ?? 'trustgate-system',
    Service: 'Helm',
    IsInstall: !options.release?.isUpgrade,
    IsUpgrade: !!options.release?.isUpgrade,
    Revision: options.release?.isUpgrade ? 2 : 1,
  };
  const root = {
    Values: values,
    Release: release,
    Chart: {
      Name: chart.name,
      Version: chart.version,
      AppVersion: chart.appVersion,
      Description: chart.description,
    },
  };

  const templateDir = join(chartDir, 'templates');
  const paths = listFiles(templateDir).sort();
  const defines = new Map<string, Node[]>();
  const parsed = new Map<string, Node[]>();
  for (const path of paths) {
    const name = relative(chartDir, path);
    const nodes = parse(readFileSync(path, 'utf8'), name);
    parsed.set(name, collectDefines(nodes, defines, name));
  }

  const engine = new Engine(defines, options.lookup ?? (() => ({})));
  const files = new Map<string, string>();
  let notes = '';
  for (const [name, nodes] of parsed) {
    const base = name.split('/').pop() ?? name;
    if (base.startsWith('_')) continue;
    const out = engine.run(nodes, root, name);
    if (base === 'NOTES.txt') notes = out;
    else files.set(name, out);
  }
  return { values, files, notes };
}

/** Every non-empty YAML document of the rendered manifests, parsed (throws on bad YAML). */
export function manifests(rendered: RenderedChart): ManifestDoc[] {
  const out: ManifestDoc[] = [];
  for (const [source, text] of rendered.files) {
    for (const doc of YAML.parseAllDocuments(text)) {
      if (doc.errors.length > 0) {
        throw new TemplateError(`${source}: rendered YAML does not parse: ${doc.errors[0]?.message}\n${text}`);
      }
      const value = doc.toJS() as unknown;
      if (value === null || value === undefined) continue;
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw new TemplateError(`${source}: a rendered document is not a mapping: ${JSON.stringify(value)}`);
      }
      out.push({ source, doc: value as Record<string, unknown> });
    }
  }
  return out;
}

/** `helm install --set`-style merge: maps merge recursively, anything else replaces, null deletes. */
export function mergeValues(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    if (v === null) {
      delete out[k];
    } else if (isMap(v) && isMap(out[k])) {
      out[k] = mergeValues(out[k] as Record<string, unknown>, v);
    } else {
      out[k] = structuredClone(v);
    }
  }
  return out;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------- lexing

type Token =
  | { t: 'field'; path: string[] } // `.` is path []
  | { t: 'var'; name: string; path: string[] } // `$` has name ''
  | { t: 'ident'; name: string }
  | { t: 'string'; value: string }
  | { t: 'number'; value: number }
  | { t: 'bool'; value: boolean }
  | { t: 'nil' }
  | { t: 'lparen' }
  | { t: 'rparen' }
  | { t: 'pipe' }
  | { t: 'declare' }
  | { t: 'assign' }
  | { t: 'comma' };

type Piece = { kind: 'text'; text: string } | { kind: 'action'; tokens: Token[]; where: string };

function split(src: string, file: string): Piece[] {
  const pieces: Piece[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos <= src.length) {
    const open = src.indexOf('{{', pos);
    let text = open < 0 ? src.slice(pos) : src.slice(pos, open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    if (open < 0) {
      pieces.push({ kind: 'text', text });
      break;
    }
    const trimBefore = src.startsWith('{{- ', open) || src.startsWith('{{-\n', open);
    if (trimBefore) text = text.replace(/[ \t\r\n]+$/, '');
    pieces.push({ kind: 'text', text });
    const close = src.indexOf('}}', open + 2);
    const where = `${file}:${src.slice(0, open).split('\n').length}`;
    if (close < 0) throw new TemplateError(`${where}: unclosed action`);
    const trimAfter = /[ \t\r\n]-$/.test(src.slice(open, close));
    const inner = src.slice(open + (trimBefore ? 3 : 2), trimAfter ? close - 1 : close).trim();
    trimNext = trimAfter;
    pos = close + 2;
    if (inner.startsWith('/*')) {
      if (!inner.endsWith('*/')) throw new TemplateError(`${where}: a comment must fill its action`);
      continue;
    }
    pieces.push({ kind: 'action', tokens: lex(inner, where), where });
  }
  return pieces;
}

function lex(src: string, where: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const pathAt = (start: number): [string[], number] => {
    const m = /^(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(start));
    const text = m?.[0] ?? '';
    return [text === '' ? [] : text.slice(1).split('.'), start + text.length];
  };
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw new TemplateError(`${where}: unterminated string`);
      out.push({ t: 'string', value: JSON.parse(src.slice(i, j + 1)) as string });
      i = j + 1;
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j < 0) throw new TemplateError(`${where}: unterminated raw string`);
      out.push({ t: 'string', value: src.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '.') {
      const [path, next] = pathAt(i);
      out.push({ t: 'field', path });
      i = next === i ? i + 1 : next;
    } else if (c === '$') {
      const m = /^\$[A-Za-z0-9_]*/.exec(src.slice(i)) as RegExpExecArray;
      const [path, next] = pathAt(i + m[0].length);
      out.push({ t: 'var', name: m[0].slice(1), path });
      i = next;
    } else if (/[0-9-]/.test(c)) {
      const m = /^-?[0-9]+/.exec(src.slice(i));
      if (!m) throw new TemplateError(`${where}: unexpected "${c}"`);
      out.push({ t: 'number', value: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i)) as RegExpExecArray;
      const w = m[0];
      if (w === 'true' || w === 'false') out.push({ t: 'bool', value: w === 'true' });
      else if (w === 'nil') out.push({ t: 'nil' });
      else out.push({ t: 'ident', name: w });
      i += w.length;
    } else if (src.startsWith(':=', i)) {
      out.push({ t: 'declare' });
      i += 2;
    } else if (c === '=') {
      out.push({ t: 'assign' });
      i++;
    } else if (c === '(' || c === ')' || c === '|' || c === ',') {
      out.push(c === '(' ? { t: 'lparen' } : c === ')' ? { t: 'rparen' } : c === '|' ? { t: 'pipe' } : { t: 'comma' });
      i++;
    } else {
      throw new TemplateError(`${where}: unexpected "${c}"`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- parsing

type Operand =
  | { k: 'field'; path: string[] }
  | { k: 'var'; name: string; path: string[] }
  | { k: 'lit'; value: unknown }
  | { k: 'fn'; name: string }
  | { k: 'sub'; pipe: Pipe };

interface Pipe {
  vars: string[];
  mode: 'none' | 'declare' | 'assign';
  cmds: Operand[][];
  where: string;
}

type Node =
  | { n: 'text'; text: string }
  | { n: 'action'; pipe: Pipe }
  | { n: 'if'; pipe: Pipe; then: Node[]; else: Node[] }
  | { n: 'range'; pipe: Pipe; body: Node[]; else: Node[] }
  | { n: 'with'; pipe: Pipe; body: Node[]; else: Node[] }
  | { n: 'define'; name: string; body: Node[]; where: string };

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue']);

function parse(src: string, file: string): Node[] {
  const pieces = split(src, file);
  let i = 0;

  // Parses until an `end` or `else` at this level; returns the nodes and the stopping piece.
  const parseList = (topLevel: boolean): { nodes: Node[]; stop?: { word: string; rest: Token[]; where: string } } => {
    const nodes: Node[] = [];
    while (i < pieces.length) {
      const p = pieces[i++] as Piece;
      if (p.kind === 'text') {
        if (p.text !== '') nodes.push({ n: 'text', text: p.text });
        continue;
      }
      const [first, ...rest] = p.tokens;
      const word = first?.t === 'ident' && KEYWORDS.has(first.name) ? first.name : undefined;
      if (word === 'end' || word === 'else') {
        if (topLevel) throw new TemplateError(`${p.where}: unexpected {{ ${word} }}`);
        return { nodes, stop: { word, rest, where: p.where } };
      }
      if (word === 'if' || word === 'with' || word === 'range') {
        nodes.push(parseBlock(word, rest, p.where));
      } else if (word === 'define') {
        const name = rest[0];
        if (rest.length !== 1 || name?.t !== 'string') throw new TemplateError(`${p.where}: define takes one string`);
        const body = parseList(false);
        if (body.stop?.word !== 'end') throw new TemplateError(`${p.where}: define without end`);
        nodes.push({ n: 'define', name: name.value, body: body.nodes, where: p.where });
      } else if (word !== undefined) {
        throw new TemplateError(`${p.where}: "${word}" is outside the supported template subset`);
      } else {
        nodes.push({ n: 'action', pipe: parsePipe(p.tokens, p.where) });
      }
    }
    if (!topLevel) throw new TemplateError(`${file}: missing {{ end }}`);
    return { nodes };
  };

  const parseBlock = (word: 'if' | 'with' | 'range', tokens: Token[], where: string): Node => {
    const pipe = parsePipe(tokens, where);
    if (word !== 'range' && pipe.mode !== 'none') throw new TemplateError(`${where}: variables in ${word} are not supported`);
    const body = parseList(false);
    let elseNodes: Node[] = [];
    if (body.stop?.word === 'else') {
      const rest = body.stop.rest;
      if (rest[0]?.t === 'ident' && rest[0].name === 'if') {
        // `else if` shares the outer block's `end`.
        elseNodes = [parseBlock('if', rest.slice(1), body.stop.where)];
      } else {
        if (rest.length > 0) throw new TemplateError(`${body.stop.where}: only "else" and "else if" are supported`);
        const tail = parseList(false);
        if (tail.stop?.word !== 'end') throw new TemplateError(`${where}: a second else`);
        elseNodes = tail.nodes;
      }
    }
    if (word === 'if') return { n: 'if', pipe, then: body.nodes, else: elseNodes };
    return { n: word, pipe, body: body.nodes, else: elseNodes };
  };

  return parseList(true).nodes;
}

function parsePipe(tokens: Token[], where: string): Pipe {
  let vars: string[] = [];
  let mode: Pipe['mode'] = 'none';
  const declAt = tokens.findIndex((t) => t.t === 'declare' || t.t === 'assign');
  if (declAt >= 0) {
    const head = tokens.slice(0, declAt);
    const names = head.filter((t) => t.t !== 'comma');
    if (names.length === 0 || names.length > 2 || names.some((t) => t.t !== 'var' || t.path.length > 0 || t.name === '')) {
      throw new TemplateError(`${where}: bad variable declaration`);
    }
    vars = names.map((t) => (t as { name: string }).name);
    mode = tokens[declAt]?.t === 'declare' ? 'declare' : 'assign';
    tokens = tokens.slice(declAt + 1);
  }
  let pos = 0;
  const parseCmds = (inParens: boolean): Operand[][] => {
    const cmds: Operand[][] = [[]];
    while (pos < tokens.length) {
      const t = tokens[pos++] as Token;
      const cmd = cmds[cmds.length - 1] as Operand[];
      switch (t.t) {
        case 'pipe':
          if (cmd.length === 0) throw new TemplateError(`${where}: empty command in pipeline`);
          cmds.push([]);
          break;
        case 'rparen':
          if (!inParens) throw new TemplateError(`${where}: unbalanced )`);
          return cmds;
        case 'lparen':
          cmd.push({ k: 'sub', pipe: { vars: [], mode: 'none', cmds: parseCmds(true), where } });
          break;
        case 'field':
          cmd.push({ k: 'field', path: t.path });
          break;
        case 'var':
          cmd.push({ k: 'var', name: t.name, path: t.path });
          break;
        case 'ident':
          if (KEYWORDS.has(t.name)) throw new TemplateError(`${where}: "${t.name}" inside a pipeline`);
          if (cmd.length > 0) throw new TemplateError(`${where}: function "${t.name}" as an argument: wrap it in ( )`);
          cmd.push({ k: 'fn', name: t.name });
          break;
        case 'string':
        case 'number':
        case 'bool':
          cmd.push({ k: 'lit', value: t.value });
          break;
        case 'nil':
          cmd.push({ k: 'lit', value: null });
          break;
        default:
          throw new TemplateError(`${where}: unexpected token ${t.t}`);
      }
    }
    if (inParens) throw new TemplateError(`${where}: unbalanced (`);
    return cmds;
  };
  const cmds = parseCmds(false);
  if (cmds.some((c) => c.length === 0)) throw new TemplateError(`${where}: empty pipeline`);
  for (const c of cmds) {
    if (c[0]?.k !== 'fn' && c.length > 1) throw new TemplateError(`${where}: arguments after a non-function`);
  }
  return { vars, mode, cmds, where };
}

function collectDefines(nodes: Node[], defines: Map<string, Node[]>, file: string): Node[] {
  const rest: Node[] = [];
  for (const node of nodes) {
    if (node.n === 'define') {
      if (defines.has(node.name)) throw new TemplateError(`${node.where}: "${node.name}" defined twice`);
      defines.set(node.name, node.body);
    } else {
      rest.push(node);
    }
  }
  if (file.endsWith('.tpl') && rest.some((n) => n.n !== 'text' || n.text.trim() !== '')) {
    throw new TemplateError(`${file}: a helpers file may hold only defines`);
  }
  return rest;
}

// ---------------------------------------------------------------- evaluation

class Scope {
  private readonly vars = new Map<string, unknown>();
  constructor(private readonly parent?: Scope) {}
  get(name: string, where: string): unknown {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name, where);
    throw new TemplateError(`${where}: undefined variable $${name}`);
  }
  declare(name: string, value: unknown): void {
    this.vars.set(name, value);
  }
  assign(name: string, value: unknown, where: string): void {
    if (this.vars.has(name)) this.vars.set(name, value);
    else if (this.parent) this.parent.assign(name, value, where);
    else throw new TemplateError(`${where}: assignment to undeclared $${name}`);
  }
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go template truthiness (and sprig's `empty`): false, 0, "", nil, empty list/map are empty. */
export function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (isMap(v)) return Object.keys(v).length === 0;
  return false;
}

function walk(value: unknown, path: string[], where: string, what: string): unknown {
  let cur = value;
  let seen = what;
  for (const key of path) {
    if (!isMap(cur)) throw new TemplateError(`${where}: ${seen} is not a map, cannot read .${key}`);
    if (!(key in cur)) throw new TemplateError(`${where}: ${seen}.${key} does not exist (use index for optional keys)`);
    cur = cur[key];
    seen += `.${key}`;
  }
  return cur;
}

function print(v: unknown, where: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new TemplateError(`${where}: printing a ${Array.isArray(v) ? 'list' : 'map'} needs toYaml`);
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.replace(/\n/g, `\n${pad}`);
}

function compare(a: unknown, b: unknown, where: string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  throw new TemplateError(`${where}: cannot compare ${typeof a} with ${typeof b}`);
}

function asNumber(v: unknown, where: string, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TemplateError(`${where}: ${what} must be a number`);
  return v;
}

function asString(v: unknown, where: string, what: string): string {
  if (typeof v !== 'string') throw new TemplateError(`${where}: ${what} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

interface KeyPair {
  Cert: string;
  Key: string;
}

class Engine {
  private depth = 0;

  constructor(
    private readonly defines: Map<string, Node[]>,
    private readonly lookup: Lookup,
  ) {}

  run(nodes: Node[], root: unknown, file: string): string {
    const scope = new Scope();
    scope.declare('', root);
    try {
      return this.exec(nodes, root, scope);
    } catch (e) {
      if (e instanceof TemplateError) throw new TemplateError(`${file}: ${e.message}`);
      throw e;
    }
  }

  private exec(nodes: Node[], dot: unknown, scope: Scope): string {
    let out = '';
    for (const node of nodes) {
      switch (node.n) {
        case 'text':
          out += node.text;
          break;
        case 'action': {
          const v = this.pipe(node.pipe, dot, scope);
          if (node.pipe.mode === 'none') out += print(v, node.pipe.where);
          break;
        }
        case 'if':
          out += isEmpty(this.pipe(node.pipe, dot, scope))
            ? this.exec(node.else, dot, new Scope(scope))
            : this.exec(node.then, dot, new Scope(scope));
          break;
        case 'with': {
          const v = this.pipe(node.pipe, dot, scope);
          out += isEmpty(v) ? this.exec(node.else, dot, new Scope(scope)) : this.exec(node.body, v, new Scope(scope));
          break;
        }
        case 'range':
          out += this.range(node, dot, scope);
          break;
        case 'define':
          throw new TemplateError(`${node.where}: define inside a block`);
      }
    }
    return out;
  }

  private range(node: Extract<Node, { n: 'range' }>, dot: unknown, scope: Scope): string {
    const { vars } = node.pipe;
    const v = this.pipe({ ...node.pipe, vars: [], mode: 'none' }, dot, scope);
    let entries: [unknown, unknown][];
    if (v === null || v === undefined) entries = [];
    else if (Array.isArray(v)) entries = v.map((x, i) => [i, x]);
    else if (isMap(v)) entries = Object.keys(v).sort().map((k) => [k, v[k]]);
    else throw new TemplateError(`${node.pipe.where}: range over a ${typeof v}`);
    if (entries.length === 0) return this.exec(node.else, dot, new Scope(scope));
    let out = '';
    for (const [k, x] of entries) {
      const inner = new Scope(scope);
      if (vars.length === 1) inner.declare(vars[0] as string, x);
      if (vars.length === 2) {
        inner.declare(vars[0] as string, k);
        inner.declare(vars[1] as string, x);
      }
      out += this.exec(node.body, x, inner);
    }
    return out;
  }

  private pipe(pipe: Pipe, dot: unknown, scope: Scope): unknown {
    let value: unknown;
    let first = true;
    for (const cmd of pipe.cmds) {
      value = this.command(cmd, dot, scope, pipe.where, first ? [] : [value]);
      first = false;
    }
    if (pipe.mode === 'declare') scope.declare(pipe.vars[0] as string, value);
    if (pipe.mode === 'assign') scope.assign(pipe.vars[0] as string, value, pipe.where);
    return value;
  }

  private operand(op: Operand, dot: unknown, scope: Scope, where: string): unknown {
    switch (op.k) {
      case 'lit':
        return op.value;
      case 'field':
        return walk(dot, op.path, where, '.');
      case 'var':
        return walk(scope.get(op.name, where), op.path, where, `$${op.name}`);
      case 'sub':
        return this.pipe(op.pipe, dot, scope);
      case 'fn':
        throw new TemplateError(`${where}: function ${op.name} used as a value`);
    }
  }

  private command(cmd: Operand[], dot: unknown, scope: Scope, where: string, piped: unknown[]): unknown {
    const [head, ...rest] = cmd as [Operand, ...Operand[]];
    if (head.k !== 'fn') {
      if (piped.length > 0) throw new TemplateError(`${where}: piping into a non-function`);
      return this.operand(head, dot, scope, where);
    }
    // `and`/`or` short-circuit like Go's, so a guard can protect a later argument.
    if (head.name === 'and' || head.name === 'or') {
      const all = [...rest.map((op) => () => this.operand(op, dot, scope, where)), ...piped.map((p) => () => p)];
      if (all.length < 1) throw new TemplateError(`${where}: ${head.name} needs arguments`);
      let v: unknown;
      for (const get of all) {
        v = get();
        if (head.name === 'and' ? isEmpty(v) : !isEmpty(v)) return v;
      }
      return v;
    }
    const args = [...rest.map((op) => this.operand(op, dot, scope, where)), ...piped];
    return this.call(head.name, args, where);
  }

  private call(name: string, args: unknown[], where: string): unknown {
    const arity = (n: number) => {
      if (args.length !== n) throw new TemplateError(`${where}: ${name} takes ${n} argument(s), got ${args.length}`);
    };
    switch (name) {
      case 'include': {
        arity(2);
        const tplName = asString(args[0], where, 'include name');
        const body = this.defines.get(tplName);
        if (!body) throw new TemplateError(`${where}: no template "${tplName}"`);
        if (++this.depth > 50) throw new TemplateError(`${where}: include nested too deeply`);
        try {
          const scope = new Scope();
          scope.declare('', args[1]);
          return this.exec(body, args[1], scope);
        } finally {
          this.depth--;
        }
      }
      case 'toYaml': {
        arity(1);
        if (args[0] === undefined || args[0] === null) return 'null';
        return YAML.stringify(args[0], { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
      }
      case 'indent':
      case 'nindent': {
        arity(2);
        const text = indent(asNumber(args[0], where, name), print(args[1], where));
        return name === 'nindent' ? `\n${text}` : text;
      }
      case 'quote':
        return args.filter((a) => a !== null && a !== undefined).map((a) => JSON.stringify(print(a, where))).join(' ');
      case 'default':
        arity(2);
        return isEmpty(args[1]) ? args[0] : args[1];
      case 'required':
        arity(2);
        if (isEmpty(args[1])) throw new TemplateError(`${where}: ${print(args[0], where)}`);
        return args[1];
      case 'fail':
        arity(1);
        throw new TemplateError(`${where}: fail: ${print(args[0], where)}`);
      case 'b64enc':
        arity(1);
        return Buffer.from(print(args[0], where), 'utf8').toString('base64');
      case 'genCA':
        arity(2);
        return genCA(asString(args[0], where, 'genCA cn'), asNumber(args[1], where, 'genCA days'));
      case 'genSignedCert': {
        arity(5);
        const [cn, ips, alts, days, ca] = args;
        if (!Array.isArray(ips) || !Array.isArray(alts)) throw new TemplateError(`${where}: genSignedCert ips and alt names must be lists`);
        if (!isMap(ca) || typeof ca.Cert !== 'string' || typeof ca.Key !== 'string') {
          throw new TemplateError(`${where}: genSignedCert needs a CA from genCA`);
        }
        return genSignedCert(
          asString(cn, where, 'genSignedCert cn'),
          ips.map((x) => asString(x, where, 'ip')),
          alts.map((x) => asString(x, where, 'alt name')),
          asNumber(days, where, 'genSignedCert days'),
          ca as unknown as KeyPair,
        );
      }
      case 'lookup': {
        arity(4);
        const [a, k, ns, n] = args.map((x) => print(x, where)) as [string, string, string, string];
        return this.lookup(a, k, ns, n) ?? {};
      }
      case 'list':
        return [...args];
      case 'set': {
        arity(3);
        if (!isMap(args[0])) throw new TemplateError(`${where}: set needs a dict`);
        args[0][asString(args[1], where, 'set key')] = args[2];
        return args[0];
      }
      case 'int': {
        arity(1);
        const n = typeof args[0] === 'string' ? Number(args[0]) : args[0];
        return Number.isFinite(n) ? Math.trunc(n as number) : 0;
      }
      case 'add':
        return args.reduce<number>((sum, a) => sum + asNumber(a, where, 'add'), 0);
      case 'dict': {
        if (args.length % 2 !== 0) throw new TemplateError(`${where}: dict needs key/value pairs`);
        const out: Record<string, unknown> = {};
        for (let i = 0; i < args.length; i += 2) out[asString(args[i], where, 'dict key')] = args[i + 1];
        return out;
      }
      case 'index': {
        if (args.length < 2) throw new TemplateError(`${where}: index needs a collection and keys`);
        let cur = args[0];
        for (const key of args.slice(1)) {
          if (cur === undefined || cur === null) return undefined;
          if (Array.isArray(cur)) cur = cur[asNumber(key, where, 'list index')];
          else if (isMap(cur)) cur = cur[print(key, where)];
          else throw new TemplateError(`${where}: index of a ${typeof cur}`);
        }
        return cur;
      }
      case 'not':
        arity(1);
        return isEmpty(args[0]);
      case 'eq':
        arity(2);
        return args[0] === args[1];
      case 'ne':
        arity(2);
        return args[0] !== args[1];
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge': {
        arity(2);
        const c = compare(args[0], args[1], where);
        return name === 'lt' ? c < 0 : name === 'le' ? c <= 0 : name === 'gt' ? c > 0 : c >= 0;
      }
      case 'printf': {
        const format = asString(args[0], where, 'printf format');
        let i = 1;
        return format.replace(/%[sdv%]/g, (verb) => {
          if (verb === '%%') return '%';
          if (i >= args.length) throw new TemplateError(`${where}: printf is missing an argument`);
          const a = args[i++];
          if (verb === '%d') return String(Math.trunc(asNumber(a, where, 'printf %d')));
          return print(a, where);
        });
      }
      case 'trunc': {
        arity(2);
        const s = print(args[1], where);
        return s.slice(0, asNumber(args[0], where, 'trunc length'));
      }
      case 'trimSuffix': {
        arity(2);
        const [suffix, s] = [print(args[0], where), print(args[1], where)];
        return suffix !== '' && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s;
      }
      case 'contains':
        arity(2);
        return print(args[1], where).includes(print(args[0], where));
      case 'replace':
        arity(3);
        return print(args[2], where).split(print(args[0], where)).join(print(args[1], where));
      case 'lower':
        arity(1);
        return print(args[0], where).toLowerCase();
      case 'toString':
        arity(1);
        return print(args[0], where);
      default:
        throw new TemplateError(`${where}: function "${name}" is outside the supported template subset`);
    }
  }
}

// ---------------------------------------------------------------- certificates

// Helm's genCA / genSignedCert make an RSA-2048 CA and a leaf it signs; the openssl CLI does
// the same here so tests can check the chain, the names and the CA bundle for real.
function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function genCA(cn: string, days: number): KeyPair {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ca-'));
  try {
    openssl(['genrsa', '-out', 'ca.key', '2048'], dir);
    openssl(
      [
        'req', '-x509', '-new', '-key', 'ca.key', '-subj', `/CN=${cn}`, '-days', String(days), '-out', 'ca.crt',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment',
      ],
      dir,
    );
    return { Cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), Key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function genSignedCert(cn: string, ips: string[], alts: string[], days: number, ca: KeyPair): KeyPair {
  const dir = mkdtempSync(join(tmpdir(), 'tg-leaf-'));
  try {
    writeFileSync(join(dir, 'ca.crt'), ca.Cert);
    writeFileSync(join(dir, 'ca.key'), ca.Key);
    const san = [...ips.map((ip) => `IP:${ip}`), ...alts.map((d) => `DNS:${d}`)].join(',');
    writeFileSync(
      join(dir, 'ext.cnf'),
      `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n` +
        (san ? `subjectAltName=${san}\n` : ''),
    );
    openssl(['genrsa', '-out', 'tls.key', '2048'], dir);
    openssl(['req', '-new', '-key', 'tls.key', '-subj', `/CN=${cn}`, '-out', 'tls.csr'], dir);
    openssl(
      ['x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', String(days), '-extfile', 'ext.cnf', '-out', 'tls.crt'],
      dir,
    );
    return { Cert: readFileSync(join(dir, 'tls.crt'), 'utf8'), Key: readFileSync(join(dir, 'tls.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
