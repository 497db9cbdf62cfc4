/*
 * One statement on the lab's MariaDB (127.0.0.1:3306, root without a password), for tests that set up
 * or inspect databases directly rather than through updateserver.
 */
import mysql from 'mysql2/promise';

export async function sql<T = Record<string, unknown>>(database: string | undefined, text: string, params: unknown[] = []): Promise<T[]> {
  const c = await mysql.createConnection({ host: '127.0.0.1', user: 'root', ...(database ? { database } : {}) });
  try { return (await c.query(text, params))[0] as T[]; } finally { await c.end(); }
}
