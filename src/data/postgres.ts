/*
 * PostgreSQL through one pg Client. query() uses the extended protocol, which takes exactly one
 * statement; exec() uses the simple protocol, which takes a script (run as one implicit transaction
 * unless the script has its own BEGIN/COMMIT).
 */
import pg from 'pg';
import type { DatabaseConnection } from '../config/model.js';
import { CONNECT_TIMEOUT_MS, driverError, type Db } from './db.js';
import { describeConnection } from './connection.js';
import { READ_ONLY_OPTIONS } from './tools.js';

/** 1-based line of a 1-based character offset in text (PostgreSQL reports error positions so). */
export function lineAt(text: string, position: number): number {
  let line = 1;
  for (let i = 0; i < Math.min(position - 1, text.length); i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

export async function openPostgres(conn: DatabaseConnection, opts: { readOnly?: boolean } = {}): Promise<Db> {
  const password = conn.password?.reveal();
  const client = new pg.Client({
    host: conn.host, port: conn.port, user: conn.user, database: conn.database,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(opts.readOnly ? { options: READ_ONLY_OPTIONS } : {}),
    ...(password === undefined ? {} : { password }),
  });
  // A connection lost while idle: the next call on this client fails and says so.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw driverError(err, conn);
  }
  let inTx = false;
  const run = async (sql: string): Promise<void> => {
    try { await client.query(sql); } catch (err) { throw driverError(err, conn); }
  };
  const db: Db = {
    engine: 'postgres',
    label: describeConnection(conn),
    async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
      try {
        // queryMode is not in @types/pg: it makes pg use the extended protocol even without parameters.
        const result = await client.query({ text: sql, values: params, queryMode: 'extended' } as pg.QueryConfig);
        return (result.rows ?? []) as T[];
      } catch (err) {
        throw driverError(err, conn);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await client.query(sql);
      } catch (err) {
        const position = Number((err as { position?: unknown }).position);
        throw driverError(err, conn, Number.isInteger(position) && position > 0 ? { line: lineAt(sql, position) } : undefined);
      }
    },
    async tx<T>(fn: () => Promise<T>): Promise<T> {
      if (inTx) throw new Error('tx() does not nest');
      inTx = true;
      try {
        await run('BEGIN');
        try {
          const result = await fn();
          await run('COMMIT');
          return result;
        } catch (err) {
          // The original error is the one to report; a failed ROLLBACK (lost connection) rolls back anyway.
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      } finally {
        inTx = false;
      }
    },
    async close(): Promise<void> {
      await client.end().catch(() => {});
    },
  };
  return db;
}
