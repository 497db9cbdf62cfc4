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
import { splitMysqlScript } from './mysql-script.js';
export { splitMysqlScript, type ScriptStatement } from './mysql-script.js';

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
