/*
 * One statement on the lab's PostgreSQL (127.0.0.1:5432, user postgres, trust auth), for tests that
 * set up or inspect databases directly rather than through updateserver.
 */
import pg from 'pg';

export async function sql<T = Record<string, unknown>>(database: string, text: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database });
  await c.connect();
  try { return (await c.query(text)).rows as T[]; } finally { await c.end(); }
}
