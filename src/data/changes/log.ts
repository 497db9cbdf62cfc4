/*
 * The change log of one slot database (log-sql.ts holds its SQL): installed on the idle copy after its
 * migrations, so the new release's own tables are covered; read when traffic leaves the slot.
 */
import type { Db } from '../db.js';
import { LOG_TABLE, PG_FUNCTION, changesQuery, installStatements, sinceQuery, tablesQuery, untrackedQuery, type LoggedTable } from './log-sql.js';
import { ident } from '../connection.js';
import { UpdateserverError } from '../../errors.js';

/** One row of the log: JSON kept as the text the database wrote. */
export interface LoggedChange {
  seq: string;
  at: string;
  table: string;
  /** T: the table was truncated (PostgreSQL; no key, no rows: what it removed is not in the log). */
  op: 'I' | 'U' | 'D' | 'T';
  pk: string | null;
  old: string | null;
  new: string | null;
}

export async function loggedTables(db: Db): Promise<LoggedTable[]> {
  const rows = await db.query<{ name: string; pk: string; columns: string }>(tablesQuery(db.engine));
  return rows.map((r) => ({ name: r.name, pk: JSON.parse(r.pk) as string[], columns: JSON.parse(r.columns) as string[] }));
}

/**
 * Creates (or empties) the log and puts its trigger on every table; returns the tables covered.
 * `planned`: the statements the plan holds (PostgreSQL), sent exactly; else built here.
 */
export async function installChangeLog(db: Db, planned?: readonly string[]): Promise<LoggedTable[]> {
  if (db.engine === 'postgres') {
    const statements = planned ?? installStatements('postgres', []);
    await db.tx(async () => { for (const st of statements) await db.query(st); });
    return loggedTables(db);
  }
  const tables = await loggedTables(db);
  // MySQL commits each CREATE TRIGGER by itself: no transaction to hold them together.
  for (const st of planned ?? installStatements('mysql', tables)) await db.query(st);
  return tables;
}

/** Removes the log, its function and every trigger of it (the copy brought them from its source). */
/** What removes the change log from a PostgreSQL copy, in one transaction (the function's CASCADE takes its triggers). */
export const PG_DROP_CHANGE_LOG: readonly string[] = [`DROP FUNCTION IF EXISTS ${PG_FUNCTION}() CASCADE`, `DROP TABLE IF EXISTS ${LOG_TABLE}`];

/**
 * What removes the change log a copy brought from its source (read on the source, whose log the copy
 * has): PostgreSQL fixed statements; MySQL each trigger of the log by name, then the table. Plan text
 * of the copy step, read in the read phase.
 */
export async function copiedLogDrop(source: Db): Promise<string[]> {
  if (source.engine === 'postgres') return [...PG_DROP_CHANGE_LOG];
  const triggers = await source.query<{ t: string }>(MYSQL_LOG_TRIGGERS);
  return [...triggers.map(({ t }) => `DROP TRIGGER IF EXISTS ${ident('mysql', t)}`), `DROP TABLE IF EXISTS ${ident('mysql', LOG_TABLE)}`];
}

const MYSQL_LOG_TRIGGERS = "SELECT TRIGGER_NAME AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'us\\_chg\\_%' ORDER BY 1";

/**
 * Removes the log, its function and every trigger of it (the copy brought them from its source).
 * `planned`: the plan's statements (copiedLogDrop), sent exactly; on MySQL a trigger they do not name
 * (the source changed since the plan) is refused rather than dropped unplanned.
 */
export async function dropChangeLog(db: Db, planned?: readonly string[]): Promise<void> {
  if (db.engine === 'postgres') {
    await db.tx(async () => {
      for (const sql of planned ?? PG_DROP_CHANGE_LOG) await db.query(sql);
    });
    return;
  }
  if (planned) {
    for (const sql of planned) await db.query(sql);
    const left = await db.query<{ t: string }>(MYSQL_LOG_TRIGGERS);
    if (left.length > 0) {
      throw new UpdateserverError(`${db.label}: the copy has change-log triggers the plan did not list (${left.map((r) => r.t).join(', ')}): its source changed since the plan was made`, {
        hint: 'run again: the new plan lists what the copy brings',
      });
    }
    return;
  }
  const triggers = await db.query<{ t: string }>(MYSQL_LOG_TRIGGERS);
  for (const { t } of triggers) await db.query(`DROP TRIGGER IF EXISTS ${ident('mysql', t)}`);
  await db.query(`DROP TABLE IF EXISTS ${ident('mysql', LOG_TABLE)}`);
}

export async function hasChangeLog(db: Db): Promise<boolean> {
  const rows = db.engine === 'postgres'
    ? await db.query("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = $1 AND c.relkind = 'r'", [LOG_TABLE])
    : await db.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", [LOG_TABLE]);
  return rows.length > 0;
}

/**
 * What was logged since the last report (or since the log was installed), the tables the log does not
 * cover, and where the next report would start if this one left no new mark (`upTo`: the last change read,
 * else the previous mark's).
 */
export async function readChanges(db: Db): Promise<{ changes: LoggedChange[]; untracked: string[]; upTo: string }> {
  const rows = await db.query<{ seq: string; at: string; tbl: string; op: 'I' | 'U' | 'D'; pk: string | null; old_row: string | null; new_row: string | null }>(changesQuery(db.engine));
  const untracked = (await db.query<{ name: string }>(untrackedQuery(db.engine))).map((r) => r.name);
  const changes = rows.map((r) => ({ seq: String(r.seq), at: r.at, table: r.tbl, op: r.op, pk: r.pk, old: r.old_row, new: r.new_row }));
  const upTo = changes.at(-1)?.seq ?? String((await db.query<{ since: unknown }>(sinceQuery(db.engine)))[0]?.since ?? 0);
  return { changes, untracked, upTo };
}

/**
 * Leaves the mark after a report, so that the next report of this database (after a later switch to it)
 * starts after it. `sql` is the plan's text (markStatement), sent as it is.
 */
export async function markReported(db: Db, sql: string, upTo: string, runId: string): Promise<void> {
  await db.query(sql, [upTo, runId]);
}

/** Rows in the log, for the benchmark and tests. */
export async function logSize(db: Db): Promise<number> {
  const [r] = await db.query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM ${ident(db.engine, LOG_TABLE)}`);
  return Number(r?.n ?? 0);
}
