/*
 * MySQL/MariaDB through one mysql2 connection. The session never allows several statements in one
 * query: exec() splits a script the way the mysql command-line client does (quotes, comments,
 * DELIMITER) and runs the statements one by one on the same session, so a lock, a transaction or a
 * session variable set by one call holds for the next, and a failure names the statement and its line.
 * (mysql2 fixes multipleStatements for the whole connection at the handshake; enabling it for exec
 * would enable it for every query, and a second connection for scripts would lose the session.)
 */
import mysql from 'mysql2/promise';
import type { DatabaseConnection } from '../config/model.js';
import { CONNECT_TIMEOUT_MS, driverError, type Db } from './db.js';
import { describeConnection } from './connection.js';

export interface ScriptStatement {
  sql: string;
  /** 1-based line of the script on which the statement starts. */
  line: number;
}

const DELIMITER_LINE = /^[ \t]*delimiter[ \t]+(\S+)[ \t]*(?:\r?\n|$)/i;

/**
 * Splits a MySQL script into statements like the mysql client: `;` (or the current DELIMITER) ends a
 * statement outside quotes ('..', "..", `..`, with backslash escapes and doubled quotes) and comments
 * (-- , #, /* *\/). Statements holding only comments are dropped; the others keep their comments.
 */
export function splitMysqlScript(script: string): ScriptStatement[] {
  const out: ScriptStatement[] = [];
  let delimiter = ';';
  let start = 0;
  let line = 1;
  let startLine = 0;
  let hasCode = false;
  const end = (to: number) => {
    if (hasCode) out.push({ sql: script.slice(start, to).trim(), line: startLine });
    hasCode = false;
  };
  const code = () => { if (!hasCode) { hasCode = true; startLine = line; } };
  let i = 0;
  while (i < script.length) {
    const c = script[i]!;
    // DELIMITER is a client command: only at the start of a line, between statements.
    if (!hasCode && (i === 0 || script[i - 1] === '\n')) {
      const m = DELIMITER_LINE.exec(script.slice(i, i + 200));
      if (m) {
        delimiter = m[1]!;
        i += m[0].length;
        if (m[0].endsWith('\n')) line++;
        start = i;
        continue;
      }
    }
    if (c === '\n') { line++; i++; continue; }
    if (c === '\'' || c === '"' || c === '`') {
      code();
      i++;
      while (i < script.length) {
        const d = script[i]!;
        if (d === '\n') line++;
        if (d === '\\' && c !== '`') { if (script[i + 1] === '\n') line++; i += 2; continue; }
        i++;
        if (d === c) break;
      }
      continue;
    }
    if (c === '#' || (c === '-' && script[i + 1] === '-' && (i + 2 >= script.length || /\s/.test(script[i + 2]!)))) {
      while (i < script.length && script[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && script[i + 1] === '*') {
      // /*! ... */ and /*M! ... */ are executed by the server: they are code.
      if (script[i + 2] === '!' || (script[i + 2] === 'M' && script[i + 3] === '!')) code();
      const close = script.indexOf('*/', i + 2);
      const stop = close === -1 ? script.length : close + 2;
      for (let j = i; j < stop; j++) if (script[j] === '\n') line++;
      i = stop;
      continue;
    }
    if (script.startsWith(delimiter, i)) {
      end(i);
      i += delimiter.length;
      start = i;
      continue;
    }
    if (!/\s/.test(c)) code();
    i++;
  }
  end(script.length);
  return out;
}

export async function openMysql(conn: DatabaseConnection, opts: { readOnly?: boolean } = {}): Promise<Db> {
  const password = conn.password?.reveal();
  let c: mysql.Connection;
  try {
    c = await mysql.createConnection({
      host: conn.host, port: conn.port, user: conn.user, connectTimeout: CONNECT_TIMEOUT_MS,
      multipleStatements: false,
      ...(conn.database ? { database: conn.database } : {}),
      ...(password === undefined ? {} : { password }),
    });
  } catch (err) {
    throw driverError(err, conn);
  }
  // A connection lost while idle: the next call on it fails and says so.
  c.on('error', () => {});
  if (opts.readOnly) {
    try { await c.query('SET SESSION TRANSACTION READ ONLY'); } catch (err) { await c.end().catch(() => {}); throw driverError(err, conn); }
  }
  let inTx = false;
  const query = async <T>(sql: string, params?: unknown[]): Promise<T[]> => {
    const [rows] = await c.query(sql, params);
    return (Array.isArray(rows) ? rows : []) as T[];
  };
  const run = async (sql: string): Promise<void> => {
    try { await query(sql); } catch (err) { throw driverError(err, conn); }
  };
  return {
    engine: 'mysql',
    label: describeConnection(conn),
    async query<T>(sql: string, params?: unknown[]): Promise<T[]> {
      try { return await query<T>(sql, params); } catch (err) { throw driverError(err, conn); }
    },
    async exec(script: string): Promise<void> {
      const statements = splitMysqlScript(script);
      for (const [n, s] of statements.entries()) {
        try {
          await query(s.sql);
        } catch (err) {
          throw driverError(err, conn, statements.length > 1 || s.line > 1 ? { line: s.line, statement: n + 1, statements: statements.length } : undefined);
        }
      }
    },
    async tx<T>(fn: () => Promise<T>): Promise<T> {
      if (inTx) throw new Error('tx() does not nest');
      inTx = true;
      try {
        await run('START TRANSACTION');
        try {
          const result = await fn();
          await run('COMMIT');
          return result;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          throw err;
        }
      } finally {
        inTx = false;
      }
    },
    async close(): Promise<void> {
      await c.end().catch(() => {});
    },
  };
}
