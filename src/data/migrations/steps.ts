/*
 * A pending migration as the plan shows it: every statement the runner sends for it, exactly as sent.
 * Its SQL: MySQL/MariaDB one statement at a time (splitMysqlScript, as the mysql client cuts a script),
 * each committed on its own; PostgreSQL the file as one script inside one transaction with its "ok"
 * row, one step, not cut here, because a split that does not know dollar quoting would show statements
 * that never run. Around it the version table's bookkeeping (docs/decisions/0004): the "begin" row
 * before, the "ok" row after, "error" on failure. Their text is fixed; the values known when the plan is
 * made (version, label, checksum, baseline; applied_by on the action) are plan data, and the values only
 * the run knows (the row's id, the duration, an error's message) are its parameters.
 */
import type { DatabaseEngine } from '../../config/model.js';
import { splitMysqlScript } from '../mysql-script.js';
import type { Migration } from './files.js';
import { insertBegin, setError, setOk } from './sql.js';

export interface PendingMigration {
  version: number;
  name: string;
  /** The file it comes from. */
  file: string;
  baseline: boolean;
  /** Its SQL steps, in order, as they will run. */
  statements: string[];
  /** sha256 of its SQL: the run checks that the database still lacks exactly this before it runs it. */
  checksum?: string;
  /** The comments of its rows: its name ("baseline <name>" for a baseline). */
  label?: string;
  /** MySQL: the line of the file each statement starts on (for the error). */
  lines?: number[];
  /** The version table's rows, exactly as sent: begin (before), ok (after, in its transaction on PostgreSQL), error (on failure). */
  rows?: { begin: string; ok: string; error: string };
}

export function pendingMigration(engine: DatabaseEngine, m: Migration): PendingMigration {
  const split = engine === 'mysql' ? splitMysqlScript(m.sql) : undefined;
  // trimEnd only: PostgreSQL reports an error's position in the text sent, and a line count from the
  // start keeps it the line of the file.
  const statements = split ? split.map((s) => s.sql.trim()) : [m.sql.trimEnd()];
  return {
    version: m.version, name: m.name, file: m.file, baseline: m.baseline, statements,
    checksum: m.checksum, label: m.baseline ? `baseline ${m.name}` : m.name,
    ...(split ? { lines: split.map((s) => s.line) } : {}),
    rows: { begin: insertBegin(engine), ok: setOk(engine), error: setError(engine) },
  };
}

/** The begin row's values, in the order of insertBegin's parameters. */
export function beginValues(p: PendingMigration, appliedBy: string): Array<string | number | boolean> {
  return [p.version, p.label ?? (p.baseline ? `baseline ${p.name}` : p.name), p.checksum ?? '', appliedBy, p.baseline];
}
