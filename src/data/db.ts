/*
 * The narrow interface the tool needs from a database driver: one session (so a transaction, a
 * snapshot export or an advisory lock stays on it), queries with parameters, scripts of several
 * statements. PostgreSQL through pg, MySQL/MariaDB through mysql2. Errors name the server and the
 * database, never the password.
 */
import type mysql from 'mysql2/promise';
import type { DatabaseConnection } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { describeConnection } from './connection.js';

export interface Db {
  readonly engine: DatabaseConnection['engine'];
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of one or more statements. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

export class DatabaseError extends UpdateserverError {
  constructor(readonly connection: string, message: string, cause?: unknown) {
    super(`${connection}: ${message}`, cause === undefined ? undefined : { cause });
  }
}

function clean(message: string, conn: DatabaseConnection): string {
  const secret = conn.password?.reveal();
  return secret ? message.split(secret).join('********') : message;
}

export async function openDb(conn: DatabaseConnection, opts: { database?: string } = {}): Promise<Db> {
  const database = opts.database ?? conn.database;
  const label = describeConnection({ ...conn, database });
  const wrap = (err: unknown): DatabaseError => new DatabaseError(label, clean((err as Error).message, conn), err);
  if (conn.engine === 'postgres') {
    // Drivers load only when a database is used: most commands never need them.
    const { default: pg } = await import('pg');
    const client = new pg.Client({
      host: conn.host, port: conn.port, user: conn.user, database, connectionTimeoutMillis: 10_000,
      ...(conn.password ? { password: conn.password.reveal() } : {}),
    });
    client.on('error', () => { /* reported by the pending query */ });
    try { await client.connect(); } catch (err) { throw wrap(err); }
    return {
      engine: 'postgres',
      query: async <T>(sql: string, params?: unknown[]) => {
        try { return (await client.query(sql, params)).rows as T[]; } catch (err) { throw wrap(err); }
      },
      exec: async (sql: string) => { try { await client.query(sql); } catch (err) { throw wrap(err); } },
      close: async () => { await client.end().catch(() => {}); },
    };
  }
  let c: mysql.Connection;
  try {
    const { default: mysqlDriver } = await import('mysql2/promise');
    c = await mysqlDriver.createConnection({
      host: conn.host, port: conn.port, user: conn.user, connectTimeout: 10_000, multipleStatements: true,
      ...(database ? { database } : {}), ...(conn.password ? { password: conn.password.reveal() } : {}),
    });
  } catch (err) { throw wrap(err); }
  c.on('error', () => { /* reported by the pending query */ });
  return {
    engine: 'mysql',
    query: async <T>(sql: string, params?: unknown[]) => {
      try { const [rows] = await c.query(sql, params); return rows as T[]; } catch (err) { throw wrap(err); }
    },
    exec: async (sql: string) => { try { await c.query(sql); } catch (err) { throw wrap(err); } },
    close: async () => { await c.end().catch(() => {}); },
  };
}
