// JSON lines on one stream: one object per event, so log collectors need no parsing rules.
import type { LogFields, Logger } from '../admission/types.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

/**
 * Lines for stderr, written once per turn of the event loop: a synchronous pipe write per
 * admission costs more than the admission. Flushed on exit, so nothing logged is lost.
 */
const pending: string[] = [];
let flushScheduled = false;

function flushStderr(): void {
  flushScheduled = false;
  if (pending.length === 0) return;
  const text = pending.join('');
  pending.length = 0;
  process.stderr.write(text);
}

function writeStderr(line: string): void {
  pending.push(line);
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flushStderr);
}

process.once('exit', flushStderr);

export function createJsonLogger(level: LogLevel = 'info', write: (line: string) => void = writeStderr, clock: () => Date = () => new Date()): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    // One line per admission: the head is written by hand so the fields need no copy.
    const head = `{"time":"${clock().toISOString()}","level":"${lvl}","msg":${JSON.stringify(msg)}`;
    let rest: string;
    try {
      rest = fields === undefined ? '{}' : JSON.stringify(fields);
    } catch (e) {
      // A field that cannot be serialized (cycle, BigInt) must not take the request down.
      rest = JSON.stringify({ logError: (e as Error).message });
    }
    write(rest === '{}' ? `${head}}\n` : `${head},${rest.slice(1)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
