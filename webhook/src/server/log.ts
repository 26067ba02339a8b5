// JSON lines on one stream: one object per event, so log collectors need no parsing rules.
import type { LogFields, Logger } from '../admission/types.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

/**
 * Lines for stderr, written in batches: a write per admission costs more than the
 * admission, and so does one per turn of the event loop under load (a turn often carries a
 * single admission). Routine lines (info, debug: every allowed admission) go out after
 * FLUSH_MS or once FLUSH_BYTES are waiting; a warning or an error goes out at the end of the
 * current turn, with whatever waits before it. All of it on exit, so nothing logged is lost
 * short of a kill -9 (at most FLUSH_MS of routine lines).
 */
const FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;
const pending: string[] = [];
let pendingBytes = 0;
let timer: NodeJS.Timeout | undefined;
let soon: NodeJS.Immediate | undefined;

function flushStderr(): void {
  if (timer) clearTimeout(timer);
  if (soon) clearImmediate(soon);
  timer = undefined;
  soon = undefined;
  if (pending.length === 0) return;
  const text = pending.join('');
  pending.length = 0;
  pendingBytes = 0;
  process.stderr.write(text);
}

function writeStderr(line: string, level: LogLevel): void {
  pending.push(line);
  pendingBytes += line.length;
  if (pendingBytes >= FLUSH_BYTES) return flushStderr();
  // Unref'd: a pending batch never keeps the process alive; the exit handler writes it.
  if (level === 'warn' || level === 'error') soon ??= setImmediate(flushStderr).unref();
  else timer ??= setTimeout(flushStderr, FLUSH_MS).unref();
}

process.once('exit', flushStderr);

export function createJsonLogger(level: LogLevel = 'info', write: (line: string, level: LogLevel) => void = writeStderr, clock: () => Date = () => new Date()): Logger {
  const min = LOG_LEVELS.indexOf(level);
  // Under load many lines share a millisecond: its text is made once.
  let lastMs = NaN;
  let lastIso = '';
  const time = () => {
    const now = clock();
    const ms = now.getTime();
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = now.toISOString();
    }
    return lastIso;
  };
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    // One line per admission: the head is written by hand so the fields need no copy.
    const head = `{"time":"${time()}","level":"${lvl}","msg":${JSON.stringify(msg)}`;
    let rest: string;
    try {
      rest = fields === undefined ? '{}' : JSON.stringify(fields);
    } catch (e) {
      // A field that cannot be serialized (cycle, BigInt) must not take the request down.
      rest = JSON.stringify({ logError: (e as Error).message });
    }
    write(rest === '{}' ? `${head}}\n` : `${head},${rest.slice(1)}\n`, lvl);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
