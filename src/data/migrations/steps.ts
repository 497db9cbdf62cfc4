/*
 * A pending migration as the plan shows it: its SQL steps exactly as the runner will send them.
 * MySQL/MariaDB: one statement at a time (splitMysqlScript, what mysql.ts exec() runs), each committed on
 * its own. PostgreSQL: the file is sent as one script inside one transaction with its "ok" row, so it is
 * one step; it is not cut here, because a split that does not know dollar quoting would show statements
 * that never run.
 */
import type { DatabaseEngine } from '../../config/model.js';
import { splitMysqlScript } from '../mysql-script.js';
import type { Migration } from './files.js';

export interface PendingMigration {
  version: number;
  name: string;
  /** The file it comes from. */
  file: string;
  baseline: boolean;
  /** Its SQL steps, in order, as they will run. */
  statements: string[];
}

export function pendingMigration(engine: DatabaseEngine, m: Migration): PendingMigration {
  const statements = engine === 'mysql' ? splitMysqlScript(m.sql).map((s) => s.sql.trim()) : [m.sql.trim()];
  return { version: m.version, name: m.name, file: m.file, baseline: m.baseline, statements };
}
