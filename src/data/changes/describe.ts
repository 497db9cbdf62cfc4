/* The change-log step as the dry run shows it: what it creates, on which database, and what it costs. */
import { describeConnection } from '../connection.js';
import type { Action } from '../../plan/plan.js';
import { LOG_TABLE, PG_FUNCTION, PG_TRIGGER, PG_TRUNCATE_TRIGGER } from './log-sql.js';

export function describeChangeLog(a: Extract<Action, { kind: 'change-log' }>): string {
  const db = describeConnection(a.connection);
  // The statements themselves when the plan holds them (PostgreSQL): exactly what is sent.
  if (a.statements) {
    return [`on ${db}, in one transaction: the log ${LOG_TABLE} (emptied: the copy brought the source's), its function ${PG_FUNCTION}, a row trigger ${PG_TRIGGER} and a TRUNCATE trigger ${PG_TRUNCATE_TRIGGER} on every table of the schema as it is after the migrations:`,
      ...a.statements.flatMap((st) => st.split('\n').map((line, i) => `${i === 0 ? '  sql> ' : '       '}${line}`))].join('\n');
  }
  return a.connection.engine === 'postgres'
    ? `on ${db}: CREATE TABLE IF NOT EXISTS ${LOG_TABLE} (seq, at, tbl, op, pk, old_row, new_row jsonb); TRUNCATE it (the copy brought the source's);\n`
      + `  CREATE TRIGGER ${PG_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW EXECUTE FUNCTION ${PG_FUNCTION}(<primary key>) on every table of the schema (as they are after the migrations); one transaction`
    : `on ${db}: CREATE TABLE IF NOT EXISTS ${LOG_TABLE} (seq, at, tbl, op, pk, old_row, new_row JSON text); TRUNCATE it (the copy brought the source's);\n`
      + '  CREATE TRIGGER us_chg_{i,u,d}_<table> AFTER INSERT/UPDATE/DELETE ... FOR EACH ROW INSERT INTO the log (JSON_OBJECT of every column) on every table (as they are after the migrations)';
}
