/*
 * The change log's SQL, as pure functions of the tables it covers (so unit tests check the exact text):
 * a table updateserver_changes and, on every table of the database, an AFTER INSERT/UPDATE/DELETE row
 * trigger that appends the table, the operation, the primary key and the old and new row as JSON.
 * Installed on an idle copy before it takes traffic (docs/decisions/0015-change-log.md), never on a
 * live or shared database.
 *   PostgreSQL: one plpgsql function for every table; the row is to_jsonb(OLD/NEW), so a column added
 *     later is logged too; the primary key columns are the trigger's arguments.
 *   MySQL/MariaDB: three triggers per table with the column list spelled out (JSON_OBJECT), read when
 *     the log is installed.
 */
import type { DatabaseEngine } from '../../config/model.js';
import { ident } from '../connection.js';

export const LOG_TABLE = 'updateserver_changes';
/** PostgreSQL: the trigger's name on every table, and the function they call. */
export const PG_TRIGGER = 'updateserver_changes';
export const PG_FUNCTION = 'updateserver_log_change';
/** PostgreSQL: the statement trigger that logs a TRUNCATE (MySQL's TRUNCATE fires no trigger at all). */
export const PG_TRUNCATE_TRIGGER = 'updateserver_changes_truncate';

export interface LoggedTable {
  name: string;
  /** Primary key columns, in key order; empty: the table has none (its changes are logged without a key). */
  pk: string[];
  /** Every column, in table order (MySQL spells them out in its triggers). */
  columns: string[];
}

/** A literal string in SQL: quotes doubled (PostgreSQL standard_conforming_strings; MySQL NO_BACKSLASH_ESCAPES aside, backslashes doubled too). */
export function literal(engine: DatabaseEngine, s: string): string {
  return engine === 'postgres' ? `'${s.replace(/'/g, "''")}'` : `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** MySQL trigger names are at most 64 characters: the table's name is cut and a short hash keeps them apart. */
export function mysqlTriggerName(table: string, op: 'I' | 'U' | 'D'): string {
  const name = `us_chg_${op.toLowerCase()}_${table}`;
  if (name.length <= 64) return name;
  let h = 0;
  for (const ch of table) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return `${name.slice(0, 55)}_${h.toString(16).padStart(8, '0')}`;
}

/**
 * Statements that create the log (if missing), empty it and put a trigger on every table; one
 * transaction on PostgreSQL. PostgreSQL's are fixed text (PG_INSTALL): the tables and the schema are
 * found by the statement itself when it runs, after the migrations, so the plan holds exactly what is
 * sent. MySQL's spell out the columns of the tables given (read when it runs).
 */
export function installStatements(engine: DatabaseEngine, tables: LoggedTable[]): string[] {
  return engine === 'postgres' ? [...PG_INSTALL] : mysqlInstall(tables);
}

/**
 * The PostgreSQL install, one DO block: in the session's current schema, the log table, the function
 * every trigger calls (SECURITY INVOKER, the default: the application's own user writes its own rows
 * into the log), the log emptied (a copy brought its source's), and on every table of the schema
 * (updateserver's own excepted) a trigger passing its primary key columns as arguments.
 */
export const PG_INSTALL: readonly string[] = [`DO $install$
DECLARE s text := current_schema(); t record;
BEGIN
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.${LOG_TABLE} (seq bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), tbl text NOT NULL, op char(1) NOT NULL, pk jsonb, old_row jsonb, new_row jsonb)', s);
  EXECUTE format($f$CREATE OR REPLACE FUNCTION %1$I.${PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE o jsonb; n jsonb; r jsonb;
BEGIN
  -- TRUNCATE fires no row trigger: its statement trigger logs that the table was emptied (op T).
  IF TG_LEVEL = 'STATEMENT' THEN
    INSERT INTO %1$I.${LOG_TABLE} (tbl, op) VALUES (TG_TABLE_NAME, 'T');
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN o := to_jsonb(OLD); END IF;
  IF TG_OP <> 'DELETE' THEN n := to_jsonb(NEW); END IF;
  -- The key the row had before the change: an update that changes the key is found by its old one.
  r := COALESCE(o, n);
  INSERT INTO %1$I.${LOG_TABLE} (tbl, op, pk, old_row, new_row)
    VALUES (TG_TABLE_NAME, left(TG_OP, 1), (SELECT jsonb_object_agg(k, r -> k) FROM unnest(TG_ARGV) AS k), o, n);
  RETURN NULL;
END
$fn$
$f$, s);
  EXECUTE format('TRUNCATE %I.${LOG_TABLE}', s);
  FOR t IN SELECT c.relname AS name,
      COALESCE((SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY k.i) FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i)
        JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum WHERE x.indrelid = c.oid AND x.indisprimary), '') AS args
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = s AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT LIKE 'updateserver\\_%' ORDER BY 1
  LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS ${PG_TRIGGER} ON %I.%I', s, t.name);
    EXECUTE format('CREATE TRIGGER ${PG_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON %I.%I FOR EACH ROW EXECUTE FUNCTION %I.${PG_FUNCTION}(%s)', s, t.name, s, t.args);
    EXECUTE format('DROP TRIGGER IF EXISTS ${PG_TRUNCATE_TRIGGER} ON %I.%I', s, t.name);
    EXECUTE format('CREATE TRIGGER ${PG_TRUNCATE_TRIGGER} AFTER TRUNCATE ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION %I.${PG_FUNCTION}()', s, t.name, s);
  END LOOP;
END
$install$`];

function jsonObject(prefix: 'OLD' | 'NEW', columns: string[]): string {
  return `JSON_OBJECT(${columns.map((c) => `${literal('mysql', c)}, ${prefix}.${ident('mysql', c)}`).join(', ')})`;
}

function mysqlInstall(tables: LoggedTable[]): string[] {
  const log = ident('mysql', LOG_TABLE);
  return [
    `CREATE TABLE IF NOT EXISTS ${log} (seq bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, at datetime(6) NOT NULL DEFAULT NOW(6), tbl varchar(64) NOT NULL, op char(1) NOT NULL, pk longtext, old_row longtext, new_row longtext) ENGINE=InnoDB`,
    `TRUNCATE TABLE ${log}`,
    ...tables.flatMap((t) => (['I', 'U', 'D'] as const).flatMap((op) => {
      const name = ident('mysql', mysqlTriggerName(t.name, op));
      const event = op === 'I' ? 'INSERT' : op === 'U' ? 'UPDATE' : 'DELETE';
      const keyFrom = op === 'I' ? 'NEW' : 'OLD';
      const pk = t.pk.length === 0 ? 'NULL' : jsonObject(keyFrom, t.pk);
      const oldRow = op === 'I' ? 'NULL' : jsonObject('OLD', t.columns);
      const newRow = op === 'D' ? 'NULL' : jsonObject('NEW', t.columns);
      return [
        `DROP TRIGGER IF EXISTS ${name}`,
        `CREATE TRIGGER ${name} AFTER ${event} ON ${ident('mysql', t.name)} FOR EACH ROW INSERT INTO ${log} (tbl, op, pk, old_row, new_row) VALUES (${literal('mysql', t.name)}, '${op}', ${pk}, ${oldRow}, ${newRow})`,
      ];
    })),
  ];
}

/** The tables of the database the log covers: base tables of the current schema, updateserver's own excepted. */
export function tablesQuery(engine: DatabaseEngine): string {
  return engine === 'postgres'
    ? `SELECT c.relname AS name,
         COALESCE((SELECT json_agg(a.attname ORDER BY k.i) FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i)
           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum WHERE x.indrelid = c.oid AND x.indisprimary), '[]')::text AS pk,
         COALESCE((SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]')::text AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT LIKE 'updateserver\\_%' ORDER BY 1`
    : `SELECT t.TABLE_NAME AS name,
         (SELECT CONCAT('[', COALESCE(GROUP_CONCAT(JSON_QUOTE(k.COLUMN_NAME) ORDER BY k.ORDINAL_POSITION), ''), ']') FROM information_schema.KEY_COLUMN_USAGE k
           WHERE k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME AND k.CONSTRAINT_NAME = 'PRIMARY') AS pk,
         (SELECT CONCAT('[', COALESCE(GROUP_CONCAT(JSON_QUOTE(c.COLUMN_NAME) ORDER BY c.ORDINAL_POSITION), ''), ']') FROM information_schema.COLUMNS c
           WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME) AS columns
       FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' AND t.TABLE_NAME NOT LIKE 'updateserver\\_%' ORDER BY 1`;
}

/** Tables of the current schema (updateserver's own excepted) that have no change-log trigger: their writes are not recorded. */
export function untrackedQuery(engine: DatabaseEngine): string {
  return engine === 'postgres'
    ? `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT LIKE 'updateserver\\_%'
         AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = '${PG_TRIGGER}') ORDER BY 1`
    : `SELECT t.TABLE_NAME AS name FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' AND t.TABLE_NAME NOT LIKE 'updateserver\\_%'
         AND (SELECT COUNT(*) FROM information_schema.TRIGGERS g WHERE g.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA AND g.EVENT_OBJECT_TABLE = t.TABLE_NAME AND g.TRIGGER_NAME LIKE 'us\\_chg\\_%') < 3 ORDER BY 1`;
}

function sinceExpression(engine: DatabaseEngine): string {
  const log = ident(engine, LOG_TABLE);
  return engine === 'postgres'
    ? `COALESCE((SELECT (new_row ->> 'upTo')::bigint FROM ${log} WHERE op = 'R' ORDER BY seq DESC LIMIT 1), 0)`
    : `COALESCE((SELECT CAST(JSON_VALUE(new_row, '$.upTo') AS UNSIGNED) FROM ${log} WHERE op = 'R' ORDER BY seq DESC LIMIT 1), 0)`;
}

/**
 * The changes after the last report's mark (an 'R' row holding the last sequence it covered), oldest
 * first, JSON as text: numbers keep every digit, and a replay sends the very text back. ORDER BY names
 * the column through its table: the output column `seq` is text, and "10" sorts before "9".
 */
export function changesQuery(engine: DatabaseEngine): string {
  const log = ident(engine, LOG_TABLE);
  const text = (c: string) => (engine === 'postgres' ? `${c}::text` : c);
  const since = sinceExpression(engine);
  return `SELECT ${engine === 'postgres' ? 'seq::text' : 'CAST(seq AS CHAR)'} AS seq, ${engine === 'postgres' ? "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" : "DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%f')"} AS at, tbl, op, ${text('pk')} AS pk, ${text('old_row')} AS old_row, ${text('new_row')} AS new_row
    FROM ${log} AS c WHERE c.op IN ('I', 'U', 'D', 'T') AND c.seq > ${since} ORDER BY c.seq`;
}

/**
 * The mark a report leaves in the log it read: the next report of this database starts after `upTo`.
 * Fixed text (plan data: the rollback's report step holds it); its values are what only the report
 * knows: 1, the last sequence it covered (the previous mark's when nothing new was logged), 2, the run id.
 */
export function markStatement(engine: DatabaseEngine): string {
  const row = engine === 'postgres' ? "jsonb_build_object('upTo', $1::bigint, 'run', $2::text)" : "JSON_OBJECT('upTo', CAST(? AS UNSIGNED), 'run', ?)";
  return `INSERT INTO ${ident(engine, LOG_TABLE)} (tbl, op, new_row) VALUES ('', 'R', ${row})`;
}

/** Where the next report starts: the last mark's upTo, 0 without one (changesQuery reads after it). */
export function sinceQuery(engine: DatabaseEngine): string {
  return `SELECT ${sinceExpression(engine)} AS since`;
}
