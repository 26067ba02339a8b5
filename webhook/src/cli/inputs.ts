/**
 * Reading what a person names on the command line: files, directories, stdin (`-`), YAML
 * and JSON documents, times. Every failure is an InputError that names the thing and says
 * what to do, never a raw ENOENT / EISDIR.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isScalar, parseAllDocuments } from 'yaml';

/** Bad input (a file, a document, a value): exit code 2, the message alone (no usage text). */
export class InputError extends Error {
  override readonly name = 'InputError';
}

export interface InputFile {
  /** As given, or `<stdin>`. */
  name: string;
  text: string;
}

let stdinTaken = false;

function explain(path: string, what: string, e: unknown): InputError {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return new InputError(`${what} ${path} does not exist: check the path`);
  if (code === 'EISDIR') return new InputError(`${what} ${path} is a directory: name a file in it`);
  if (code === 'ENOTDIR') return new InputError(`${what} ${path}: a component of the path is not a directory`);
  if (code === 'EACCES' || code === 'EPERM') return new InputError(`${what} ${path} cannot be read: permission denied`);
  return new InputError(`${what} ${path} cannot be read: ${(e as Error).message}`);
}

/** One file (or stdin for `-`); a directory is refused with a message saying so. */
export function readInputFile(path: string, what: string): InputFile {
  if (path === '-') return { name: '<stdin>', text: readStdin(what) };
  try {
    return { name: path, text: readFileSync(path, 'utf8') };
  } catch (e) {
    throw explain(path, what, e);
  }
}

function readStdin(what: string): string {
  if (stdinTaken) throw new InputError(`${what} -: stdin can be read only once`);
  stdinTaken = true;
  try {
    return readFileSync(0, 'utf8');
  } catch (e) {
    throw new InputError(`${what} - (stdin) cannot be read: ${(e as Error).message}`);
  }
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/**
 * A file, stdin, or every *.yaml, *.yml, *.json file below a directory (sorted, hidden
 * entries skipped, as kubectl apply -R does).
 */
export function readInputPaths(paths: string[], what: string): InputFile[] {
  const out: InputFile[] = [];
  for (const path of paths) {
    if (path === '-') {
      out.push(readInputFile(path, what));
      continue;
    }
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (e) {
      throw explain(path, what, e);
    }
    if (!isDir) out.push(readInputFile(path, what));
    else {
      const found = walk(path, what);
      if (found.length === 0) throw new InputError(`${what} ${path} is a directory without any .yaml, .yml or .json file`);
      out.push(...found.map((f) => readInputFile(f, what)));
    }
  }
  return out;
}

function walk(dir: string, what: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw explain(dir, what, e);
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, what));
    else if (MANIFEST_FILE.test(e.name)) out.push(p);
  }
  return out;
}

export interface YamlDocument {
  value: unknown;
  /** 1-based line where the document starts. */
  line: number;
}

/**
 * Every non-empty document of a YAML (or JSON) text. Broken YAML is an InputError with the
 * file, line and column and a frame of the text around it.
 */
export function parseDocuments(file: InputFile): YamlDocument[] {
  const docs = parseAllDocuments(file.text, { uniqueKeys: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [];
  const out: YamlDocument[] = [];
  for (const doc of list) {
    const err = doc.errors[0];
    if (err) {
      const pos = err.linePos?.[0];
      const [head, ...frame] = err.message.split('\n');
      const where = pos ? `${file.name}:${pos.line}:${pos.col}` : file.name;
      throw new InputError(`${where}: not valid YAML: ${head!.replace(/ at line \d+, column \d+:?$/, '')}${frame.length ? `\n${frame.filter((l, i) => l !== '' || i > 0).join('\n').trimEnd()}` : ''}`);
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 50 });
    } catch (e) {
      throw new InputError(`${file.name}: ${(e as Error).message}`);
    }
    const offset = doc.range[0];
    out.push({ value, line: file.text.slice(0, offset).split('\n').length });
  }
  return out;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** `--at TIME`: an RFC 3339 instant; the error shows an accepted value. */
export function parseAt(raw: string): Date {
  const at = new Date(raw);
  if (!RFC3339.test(raw) || Number.isNaN(at.getTime())) {
    throw new InputError(`--at ${JSON.stringify(raw)} is not an RFC 3339 time: write a date, "T", a time and a zone, e.g. --at 2026-12-01T00:00:00Z or --at 2026-12-01T09:30:00+01:00`);
  }
  return at;
}

export function parseOutput(raw: unknown): 'text' | 'json' {
  if (raw !== 'text' && raw !== 'json') throw new InputError(`--output must be text or json, got ${JSON.stringify(raw)} (e.g. --output json)`);
  return raw;
}
