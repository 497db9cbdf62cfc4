/*
 * The narrow interface the tool needs from a database driver: one session (so a transaction, a
 * snapshot export or an advisory lock stays on it), single statements with parameters, scripts of
 * several statements, a transaction around a function. PostgreSQL through pg (postgres.ts),
 * MySQL/MariaDB through mysql2 (mysql.ts). Errors name the server and the database, never the password.
 */
import type { DatabaseConnection, DatabaseEngine } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { describeConnection } from './connection.js';
import { currentInstrument } from '../run/instrument.js';

export interface Db {
  readonly engine: DatabaseEngine;
  /** engine://user@host:port/database, for messages; never the password. */
  readonly label: string;
  /** One statement; parameters are $1.. (PostgreSQL) or ? (MySQL). Rows, or [] for a statement without. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A script of one or more statements, run in order on this session; stops at the first error. */
  exec(sql: string): Promise<void>;
  /** Runs fn inside BEGIN .. COMMIT, or ROLLBACK when it throws. Does not nest. MySQL commits DDL by itself. */
  tx<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Where in a script an error happened: a line of the script, and for MySQL the statement that failed. */
export interface ScriptPosition {
  line: number;
  /** 1-based number of the failed statement; the ones before it ran (MySQL: and stay applied). */
  statement?: number;
  statements?: number;
}

/** A driver's error, named after the server and database it came from. */
export class DatabaseError extends UpdateserverError {
  /** engine://user@host:port/database */
  readonly where: string;
  /** The driver's or the server's code: 42P01, 28P01, ER_ACCESS_DENIED_ERROR, ECONNREFUSED... */
  readonly code: string | undefined;
  readonly at: ScriptPosition | undefined;
  /** The message without the server in front, e.g. for the comments column of the version table. */
  readonly reason: string;
  constructor(where: string, message: string, options: { cause?: unknown; hint?: string; code?: string; at?: ScriptPosition } = {}) {
    super(`${where}: ${message}`, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      ...(options.hint === undefined ? {} : { hint: options.hint }),
    });
    this.where = where;
    this.reason = message;
    this.code = options.code;
    this.at = options.at;
  }
}

export interface OpenOptions {
  /** Another database on the same server than conn.database, e.g. 'postgres' (or '' on MySQL) to create one. */
  database?: string;
  /** Every transaction of the session is read-only: a snapshot's source is only ever read. */
  readOnly?: boolean;
}

export const CONNECT_TIMEOUT_MS = 10_000;

export async function openDb(conn: DatabaseConnection, opts: OpenOptions = {}): Promise<Db> {
  const target = { ...conn, database: opts.database ?? conn.database };
  // Drivers load only when a database is used: most commands never need one.
  const readOnly = opts.readOnly === true;
  const db = conn.engine === 'postgres' ? await (await import('./postgres.js')).openPostgres(target, { readOnly }) : await (await import('./mysql.js')).openMysql(target, { readOnly });
  const wrap = currentInstrument()?.db;
  return wrap ? wrap(db, readOnly) : db;
}

const AUTH_CODES = new Set(['28P01', '28000', 'ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR']);

/**
 * Turns whatever a driver threw into a DatabaseError. The password is masked wherever it would show:
 * drivers do not put it in their messages, but a message quoting the server's reply could, and a
 * wrong password is exactly what an operator pastes into a bug report.
 */
export function driverError(err: unknown, conn: DatabaseConnection, at?: ScriptPosition): DatabaseError {
  const secret = conn.password?.reveal() ?? '';
  const mask = (s: string) => (secret ? s.split(secret).join('********') : s);
  const e = (err ?? {}) as { message?: unknown; code?: unknown; hint?: unknown; detail?: unknown };
  let message = typeof e.message === 'string' && e.message ? e.message : String(err);
  if (typeof e.detail === 'string' && e.detail) message += ` (${e.detail})`;
  if (at) message += at.statement === undefined ? ` (line ${at.line})` : ` (statement ${at.statement} of ${at.statements ?? '?'}, line ${at.line})`;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const hint = code !== undefined && AUTH_CODES.has(code)
    ? `check the user and password${conn.password ? ` (from ${conn.password.source})` : ' (none is configured)'}`
    : typeof e.hint === 'string' && e.hint ? mask(e.hint) : undefined;
  return new DatabaseError(mask(describeConnection(conn)), mask(message), {
    // The driver's own error stays as the cause only if nothing in it carries the password.
    ...(err !== undefined && !mentions(err, secret) ? { cause: err } : {}),
    ...(code === undefined ? {} : { code }),
    ...(hint === undefined ? {} : { hint }),
    ...(at === undefined ? {} : { at }),
  });
}

function mentions(err: unknown, secret: string): boolean {
  if (!secret || typeof err !== 'object' || err === null) return false;
  const seen = new Set<unknown>();
  const walk = (v: unknown, depth: number): boolean => {
    if (typeof v === 'string') return v.includes(secret);
    if (typeof v !== 'object' || v === null || seen.has(v) || depth > 3) return false;
    seen.add(v);
    const values = [...Object.values(v), (v as { message?: unknown }).message, (v as { stack?: unknown }).stack, (v as { cause?: unknown }).cause];
    return values.some((x) => walk(x, depth + 1));
  };
  return walk(err, 0);
}
