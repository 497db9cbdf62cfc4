import type { Db } from './db.js';

/**
 * What a snapshot of the database would copy, in bytes, read-only: PostgreSQL's pg_database_size;
 * for MySQL/MariaDB the data and index lengths of its tables (InnoDB's estimate, close enough to
 * tell a 10 MB copy from a 100 GB one before starting it).
 */
export async function databaseBytes(db: Db): Promise<number> {
  const [row] = db.engine === 'postgres'
    ? await db.query<{ n: string | number }>('SELECT pg_database_size(current_database()) AS n')
    : await db.query<{ n: string | number }>('SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()');
  return Number(row?.n ?? 0);
}
