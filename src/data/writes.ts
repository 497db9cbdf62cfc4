/*
 * How many rows were written to a slot's database since a mark taken when the data step finished (the
 * copy and its migrations done, before the slot took traffic), read the cheap way each engine offers.
 * A rollback or flip leaves that database behind with whatever users wrote to it since the switch: the
 * operator is told how much (issue 23), until a full rollback data report exists.
 *   PostgreSQL: the sum of n_tup_ins + n_tup_upd + n_tup_del over pg_stat_user_tables, i.e. rows
 *     inserted, updated or deleted (a row updated twice counts twice), from the cumulative statistics,
 *     which a session reports at most about once a second, and which a statistics reset or a crash zeroes.
 *   MariaDB/MySQL: with userstat=ON, the sum of ROWS_CHANGED over information_schema.TABLE_STATISTICS
 *     (the same meaning); without it no per-database row count is kept, so only the tables whose
 *     UPDATE_TIME is after the mark are named (at one-second resolution, lost at a server restart).
 */
import type { Db } from './db.js';

export type WriteMark =
  | { how: 'pg_stat_user_tables' | 'userstat'; value: number }
  | { how: 'update_time'; at: string };

const truthy = (v: unknown) => v === true || Number(v) === 1;

async function userstat(db: Db): Promise<boolean> {
  const [r] = await db.query<{ on: unknown }>('SELECT @@userstat AS `on`').catch(() => [] as Array<{ on: unknown }>);
  return truthy(r?.on);
}

async function counter(db: Db, how: 'pg_stat_user_tables' | 'userstat'): Promise<number> {
  const [r] = how === 'pg_stat_user_tables'
    ? await db.query<{ n: unknown }>('SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) AS n FROM pg_stat_user_tables')
    : await db.query<{ n: unknown }>('SELECT COALESCE(SUM(ROWS_CHANGED), 0) AS n FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = DATABASE()');
  return Number(r?.n ?? 0);
}

/**
 * PostgreSQL: a session's own writes reach the statistics when it next goes idle, at most about once a
 * second; the flush is forced first (PostgreSQL 15+), so this session's writes (the migrations) are in
 * the mark and not counted as written since.
 */
export async function markWrites(db: Db): Promise<WriteMark> {
  if (db.engine === 'postgres') {
    await db.query('SELECT pg_stat_force_next_flush()').catch(() => []);
    return { how: 'pg_stat_user_tables', value: await counter(db, 'pg_stat_user_tables') };
  }
  if (await userstat(db)) return { how: 'userstat', value: await counter(db, 'userstat') };
  const [r] = await db.query<{ at: unknown }>("SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:%s') AS at");
  return { how: 'update_time', at: String(r?.at) };
}

/** One sentence: what was written to the database since the mark, and how that was counted. */
export async function writesSince(db: Db, mark: WriteMark): Promise<string> {
  if (mark.how === 'update_time') {
    const tables = await db.query<{ t: string }>('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND UPDATE_TIME > ? ORDER BY 1', [mark.at]);
    const which = tables.length === 0 ? 'no table was written' : `table(s) ${tables.map((x) => x.t).join(', ')} were written`;
    return `${which} since ${mark.at} (server time; MariaDB counts rows changed per table only with userstat=ON, so the number of rows is unknown)`;
  }
  if (mark.how === 'userstat' && !(await userstat(db))) return 'the number of rows written is unknown: userstat was turned off since the mark';
  const now = await counter(db, mark.how);
  const source = mark.how === 'userstat' ? 'ROWS_CHANGED of information_schema.TABLE_STATISTICS' : 'n_tup_ins + n_tup_upd + n_tup_del of pg_stat_user_tables, which may lag by about a second';
  if (now < mark.value) return `the number of rows written is unknown: the statistics were reset since the switch (${source})`;
  return `${now - mark.value} row(s) inserted, updated or deleted since the switch (${source})`;
}
