/*
 * Readable lines on the console for the operator, and every event as JSON in a file per run for
 * whoever investigates later. Commands get the narrow Logger interface, never winston itself.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import winston from 'winston';

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

export function createLogger(options: LoggerOptions = {}): Logger {
  const transports: winston.transport[] = [];
  const color = options.color ?? (process.stderr.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb');
  transports.push(new winston.transports.Console({
    level: options.consoleLevel ?? 'info',
    // The console is for people; stdout stays free for results (--json).
    stderrLevels: ['error', 'warn', 'info', 'debug'],
    format: winston.format.combine(
      ...(color ? [winston.format.colorize({ level: true })] : []),
      winston.format.printf((info) => {
        const t = new Date().toISOString().slice(11, 23);
        const host = typeof info.host === 'string' ? `[${info.host}] ` : '';
        return `${t} ${info.level.padEnd(color ? 15 : 5)} ${host}${String(info.message)}`;
      }),
    ),
  }));
  if (options.file) {
    mkdirSync(dirname(options.file), { recursive: true });
    transports.push(new winston.transports.File({
      filename: options.file, level: 'debug',
      format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    }));
  }
  const logger = winston.createLogger({ transports });
  return {
    info: (m, f) => logger.info(m, f),
    warn: (m, f) => logger.warn(m, f),
    error: (m, f) => logger.error(m, f),
    debug: (m, f) => logger.debug(m, f),
    close: () => new Promise((resolve) => {
      logger.on('finish', () => resolve());
      logger.end();
      setTimeout(resolve, 500).unref();
    }),
  };
}

/** For unit tests and library use: drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {}, close: async () => {} };
