/*
 * Replays one service's changes from a rollback data report into the database that serves now: the
 * schema rules first (every table, before anything runs), then each change in the order it was made,
 * inside one transaction: the live row is read (locked), the conflict rules decide, the statement runs.
 * The first conflict rolls everything back and names the table and the row. A dry run does exactly
 * the same in a transaction it always rolls back (so a row inserted then updated is found by the
 * update), except the PostgreSQL setval, which no rollback undoes: it is only shown.
 */
import type { Db } from '../db.js';
import { UpdateserverError } from '../../errors.js';
import type { ServiceChanges } from './report.js';
import type { LoggedChange } from './log.js';
import { applyStatement, currentRowQuery, decide, schemaProblem, type CurrentRow, type LiveTable } from './replay-sql.js';
import { loggedTables } from './log.js';
import { ident } from '../connection.js';

export interface ReplayResult {
  service: string;
  database: string;
  /** Every statement sent that changes data, in order (a dry run: would send). */
  statements: string[];
  applied: number;
  skipped: string[];
  /** Tables left out with --skip. */
  leftOut: string[];
  /** Tables whose changes this replay took (applied or found already so). */
  tables: string[];
}

export class ReplayRefused extends UpdateserverError {}

async function currentRow(db: Db, c: LoggedChange, lock: boolean): Promise<CurrentRow> {
  const [r] = await db.query<Record<string, unknown>>(currentRowQuery(db.engine, c, lock));
  if (!r) return { present: false };
  if (db.engine === 'postgres') return { present: true, sameAsOld: r.same_old === true, sameAsNew: r.same_new === true };
  return { present: true, sameAsOld: c.old !== null && r.old_now === c.old, sameAsNew: c.new !== null && r.new_now === c.new };
}

/**
 * PostgreSQL: rows inserted with their own keys do not move a serial's sequence; without this the
 * application's next insert would collide with a replayed row. (MySQL moves AUTO_INCREMENT by itself.)
 */
async function advanceSequences(db: Db, table: string, columns: string[], run: (sql: string) => Promise<void>): Promise<void> {
  for (const col of columns) {
    const [s] = await db.query<{ seq: string | null }>('SELECT pg_get_serial_sequence($1, $2) AS seq', [ident('postgres', table), col]);
    if (!s?.seq) continue;
    const [m] = await db.query<{ behind: boolean }>(`SELECT (SELECT MAX(${ident('postgres', col)}) FROM ${ident('postgres', table)}) > (SELECT last_value FROM ${s.seq}) AS behind`);
    if (m?.behind) await run(`SELECT setval('${s.seq.replace(/'/g, "''")}', (SELECT MAX(${ident('postgres', col)}) FROM ${ident('postgres', table)}))`);
  }
}

export async function replayChanges(db: Db, svc: ServiceChanges, opts: { dryRun: boolean; skip: string[] }): Promise<ReplayResult> {
  const all = svc.changes ?? [];
  const leftOut = [...new Set(all.map((c) => c.table))].filter((t) => opts.skip.includes(t));
  const changes = all.filter((c) => !opts.skip.includes(c.table));
  const live = new Map<string, LiveTable>((await loggedTables(db)).map((t) => [t.name, { columns: t.columns, pk: t.pk }]));
  const problems = [...new Set(changes.map((c) => c.table))].flatMap((t) => schemaProblem(t, changes.filter((c) => c.table === t), live.get(t), svc.servingDatabase) ?? []);
  if (problems.length > 0) {
    throw new ReplayRefused(`${svc.service}: nothing was replayed: ${problems.join('; ')}`, {
      hint: `replay the other tables with --skip ${[...new Set(problems.map((p) => /^table (\S+)/.exec(p)?.[1]))].join(',')} (their changes stay in the report), or bring the schema of ${svc.servingDatabase} level first`,
    });
  }
  const result: ReplayResult = { service: svc.service, database: svc.servingDatabase, statements: [], applied: 0, skipped: [], leftOut, tables: [...new Set(changes.map((c) => c.table))] };
  const run = async (sql: string) => {
    result.statements.push(sql);
    await db.query(sql);
  };
  const runSequence = async (sql: string) => {
    result.statements.push(sql);
    if (!opts.dryRun) await db.query(sql);
  };
  const body = async () => {
    for (const c of changes) {
      const d = decide(c, await currentRow(db, c, true));
      if ('conflict' in d) throw new ReplayRefused(`${svc.service}: nothing was replayed (the transaction was rolled back): conflict at change ${c.seq}, ${d.conflict}`, {
        hint: `settle that row by hand in ${svc.servingDatabase} (the report has the row as the slot left wrote it), then replay again; or leave the table out with --skip ${c.table}`,
      });
      if ('skip' in d) { result.skipped.push(d.skip); continue; }
      const sql = applyStatement(db.engine, c);
      if (sql === undefined) { result.skipped.push(`table ${c.table}, row ${c.pk}: an update that changed no value`); continue; }
      await run(sql);
      result.applied++;
    }
    if (db.engine === 'postgres') {
      for (const t of new Set(changes.filter((c) => c.op === 'I').map((c) => c.table))) await advanceSequences(db, t, live.get(t)!.columns, runSequence);
    }
  };
  const DRY = Symbol('dry run');
  try {
    await db.tx(async () => { await body(); if (opts.dryRun) throw DRY; });
  } catch (err) {
    if (err !== DRY) throw err;
  }
  return result;
}
