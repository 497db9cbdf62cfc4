/*
 * Replay, as pure functions: the schema rules (the table and every column of the logged rows exist on
 * the database that serves now; the table has a primary key), the conflict rule for each change given
 * the row the live database holds now, and the exact statement that applies it. replay.ts runs them.
 *   PostgreSQL: the logged JSON text goes back through jsonb_populate_record(NULL::table, ...), so every
 *     value is converted by the live table's own column types, exactly as to_jsonb wrote it.
 *   MySQL/MariaDB: values become SQL literals (numbers, quoted strings, JSON text for JSON values).
 */
import type { DatabaseEngine } from '../../config/model.js';
import { ident } from '../connection.js';
import { literal } from './log-sql.js';
import type { LoggedChange } from './log.js';

/** A table of the database that serves now, as replay needs it. */
export interface LiveTable { columns: string[]; pk: string[] }

/** Keys of a logged JSON object, in their order. */
export const keysOf = (json: string | null): string[] => (json === null ? [] : Object.keys(JSON.parse(json) as object));

/**
 * Why the changes to one table cannot be replayed, or undefined: the table is missing (a table of the
 * new release), has no primary key on either side, or lacks a column the logged rows have.
 */
export function schemaProblem(table: string, changes: LoggedChange[], live: LiveTable | undefined, database: string): string | undefined {
  // What a TRUNCATE removed is not in the log: replaying the rest would leave rows it had removed.
  if (changes.some((c) => c.op === 'T')) return `table ${table} was truncated on the slot left (the rows it removed are not in the log): its ${changes.length - changes.filter((c) => c.op === 'T').length} change(s) cannot be replayed`;
  if (!live) return `table ${table} does not exist in ${database}, the database that serves now (a table of the release traffic left, made by its migrations): its ${changes.length} change(s) cannot be replayed`;
  if (changes.some((c) => c.pk === null) || live.pk.length === 0) return `table ${table} has no primary key: its rows cannot be matched, so its ${changes.length} change(s) cannot be replayed`;
  const have = new Set(live.columns);
  const missing = [...new Set(changes.flatMap((c) => [...keysOf(c.old), ...keysOf(c.new)]))].filter((col) => !have.has(col));
  if (missing.length > 0) return `table ${table} in ${database} has no column ${missing.join(', ')}, which the changes made on the slot left have: its ${changes.length} change(s) cannot be replayed`;
  return undefined;
}

/** What the live database holds for a change's row: absent, or whether it equals the logged old and new row (on their columns). */
export type CurrentRow = { present: false } | { present: true; sameAsOld: boolean; sameAsNew: boolean };

/** Applied, skipped (the live row is already what the change made) or refused with the reason. */
export type Decision = { apply: true } | { apply: false; skip: string } | { apply: false; conflict: string };

const keyText = (pk: string | null) => pk ?? '(no key)';

/**
 * The conflict rules. Insert: refused when the key is present with other values. Update: refused when
 * the row is gone or differs from the row the change started from. Delete: refused when the row differs
 * from the one deleted. A row already as that change left it is skipped (a replay repeated is still
 * refused at the first row changed again later in the log: its live row is the later state).
 */
export function decide(c: LoggedChange, row: CurrentRow): Decision {
  const at = `table ${c.table}, row ${keyText(c.pk)}`;
  if (c.op === 'I') {
    if (!row.present) return { apply: true };
    if (row.sameAsNew) return { apply: false, skip: `${at}: already present with the same values` };
    return { apply: false, conflict: `${at}: inserted on the slot left, but the database that serves now has this primary key with other values` };
  }
  if (c.op === 'U') {
    if (!row.present) return { apply: false, conflict: `${at}: updated on the slot left, but deleted since in the database that serves now` };
    if (row.sameAsOld) return { apply: true };
    if (row.sameAsNew) return { apply: false, skip: `${at}: already has the updated values` };
    return { apply: false, conflict: `${at}: updated on the slot left, but changed since in the database that serves now` };
  }
  if (!row.present) return { apply: false, skip: `${at}: already absent` };
  if (row.sameAsOld) return { apply: true };
  return { apply: false, conflict: `${at}: deleted on the slot left, but changed since in the database that serves now` };
}

const cols = (engine: DatabaseEngine, names: string[]) => names.map((n) => ident(engine, n)).join(', ');
const pgRecord = (table: string, json: string) => `jsonb_populate_record(NULL::${ident('postgres', table)}, ${literal('postgres', json)}::jsonb)`;

/** One SQL literal of a JSON value for MySQL; objects and arrays (JSON columns) as their JSON text. */
export function mysqlValue(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'NULL';
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'string') return literal('mysql', v);
  return literal('mysql', JSON.stringify(v));
}

function mysqlWhere(pk: Record<string, unknown>): string {
  return Object.entries(pk).map(([k, v]) => `${ident('mysql', k)} ${v === null ? 'IS NULL' : `= ${mysqlValue(v)}`}`).join(' AND ');
}

/** The WHERE clause that finds a change's row by its logged primary key. */
export function whereKey(engine: DatabaseEngine, table: string, pk: string): string {
  if (engine === 'mysql') return mysqlWhere(JSON.parse(pk) as Record<string, unknown>);
  const keys = keysOf(pk);
  return `(${cols('postgres', keys)}) = (SELECT ${cols('postgres', keys)} FROM ${pgRecord(table, pk)})`;
}

/**
 * The read that tells the conflict rules what the live row is: one row (or none) with same_old and
 * same_new, each comparing the live row on the logged row's columns. FOR UPDATE: nobody changes it
 * between this read and the statement (not in a dry run, whose session is read-only).
 */
export function currentRowQuery(engine: DatabaseEngine, c: LoggedChange, lock: boolean): string {
  const t = ident(engine, c.table);
  const forUpdate = lock ? ' FOR UPDATE' : '';
  if (engine === 'postgres') {
    const same = (json: string | null) => (json === null ? 'NULL::boolean'
      : `(SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(updateserver_row)) AS e WHERE ${literal('postgres', json)}::jsonb ? e.key) = ${literal('postgres', json)}::jsonb`);
    return `SELECT ${same(c.old)} AS same_old, ${same(c.new)} AS same_new FROM ${t} AS updateserver_row WHERE ${whereKey(engine, c.table, c.pk!)}${forUpdate}`;
  }
  // The same JSON_OBJECT the trigger wrote, on the same columns in the same order: equal values, equal text.
  // CAST: the driver would parse a JSON result into an object; the text is what is compared.
  const obj = (json: string | null) => (json === null ? 'NULL' : `CAST(JSON_OBJECT(${keysOf(json).map((k) => `${literal('mysql', k)}, ${ident('mysql', k)}`).join(', ')}) AS CHAR)`);
  return `SELECT ${obj(c.old)} AS old_now, ${obj(c.new)} AS new_now FROM ${t} WHERE ${whereKey(engine, c.table, c.pk!)}${forUpdate}`;
}

/** The statement that applies one change to the database that serves now; undefined for an update that changes nothing. */
export function applyStatement(engine: DatabaseEngine, c: LoggedChange): string | undefined {
  const t = ident(engine, c.table);
  if (c.op === 'D') return `DELETE FROM ${t} WHERE ${whereKey(engine, c.table, c.pk!)}`;
  const next = JSON.parse(c.new!) as Record<string, unknown>;
  if (c.op === 'I') {
    const names = Object.keys(next);
    return engine === 'postgres'
      ? `INSERT INTO ${t} (${cols(engine, names)}) OVERRIDING SYSTEM VALUE SELECT ${cols(engine, names)} FROM ${pgRecord(c.table, c.new!)}`
      : `INSERT INTO ${t} (${cols(engine, names)}) VALUES (${names.map((n) => mysqlValue(next[n])).join(', ')})`;
  }
  const before = JSON.parse(c.old!) as Record<string, unknown>;
  const changed = Object.keys(next).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(before[k]));
  if (changed.length === 0) return undefined;
  return engine === 'postgres'
    ? `UPDATE ${t} SET (${cols(engine, changed)}) = (SELECT ${cols(engine, changed)} FROM ${pgRecord(c.table, c.new!)}) WHERE ${whereKey(engine, c.table, c.pk!)}`
    : `UPDATE ${t} SET ${changed.map((k) => `${ident('mysql', k)} = ${mysqlValue(next[k])}`).join(', ')} WHERE ${whereKey(engine, c.table, c.pk!)}`;
}
