/*
 * Readable lines on the console for the operator, and every event as JSON in a file per run for
 * whoever investigates later. Commands get the narrow Logger interface.
 * Why not winston (used here before): loading it took ~15 ms of every command's start, before the
 * first connection (issue 17), for two transports this file writes in a few lines. The file keeps
 * winston's format: one JSON object per line, keys sorted (level, message, the fields, timestamp).
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  /** Flushes the run's log file. */
  close(): Promise<void>;
}

export interface LoggerOptions {
  /** JSON log file of this run; omitted: console only. */
  file?: string;
  /** Console level: 'info' normally, 'warn' with --quiet or --json, 'debug' with --verbose. */
  consoleLevel?: string;
  color?: boolean;
}

type Level = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<string, number> = { error: 0, warn: 1, info: 2, verbose: 3, debug: 4, silly: 5 };
const COLOR: Record<Level, number> = { error: 31, warn: 33, info: 32, debug: 34 };

/** JSON with the keys of every object sorted, as winston's json format wrote it. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
    : v));
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const color = options.color ?? (process.stderr.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb');
  const consoleRank = RANK[options.consoleLevel ?? 'info'] ?? RANK.info!;
  let fd: number | undefined;
  if (options.file) {
    mkdirSync(dirname(options.file), { recursive: true });
    fd = openSync(options.file, 'a');
  }
  const log = (level: Level, message: string, fields?: Record<string, unknown>) => {
    if (RANK[level]! <= consoleRank) {
      // The console is for people; stdout stays free for results (--json).
      const t = new Date().toISOString().slice(11, 23);
      const host = typeof fields?.host === 'string' ? `[${fields.host}] ` : '';
      const name = color ? `\x1b[${COLOR[level]}m${level}\x1b[39m` : level;
      process.stderr.write(`${t} ${name.padEnd(color ? 15 : 5)} ${host}${message}\n`);
    }
    // Written at once: a run that dies still leaves every line it logged before.
    // A log line that cannot be written (disk full) does not stop the run it describes.
    if (fd !== undefined) {
      try { writeSync(fd, `${sortedJson({ ...fields, level, message, timestamp: new Date().toISOString() })}\n`); } catch { /* the console line was written */ }
    }
  };
  return {
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    debug: (m, f) => log('debug', m, f),
    close: async () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** For unit tests and library use: drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {}, close: async () => {} };
