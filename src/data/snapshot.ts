/*
 * The data step: a consistent snapshot of a source database restored into the idle slot's database,
 * then checked table by table against the source's row counts. The source is only ever read: every
 * session on it is read-only (PostgreSQL: default_transaction_read_only, also for pg_dump).
 *   PostgreSQL, same server, source without other sessions: CREATE DATABASE ... TEMPLATE (template.ts);
 *     the row counts are taken just before, while nobody else is connected.
 *   PostgreSQL otherwise: the source's snapshot is exported from a REPEATABLE READ transaction;
 *     pg_dump reads exactly that snapshot and the row counts are taken in it, so the check is exact
 *     under writes.
 *   MySQL/MariaDB: mysqldump --single-transaction reads one consistent snapshot; the row counts come
 *     from a consistent-snapshot transaction opened just before, so a source that is written to during
 *     the copy can differ slightly: reported as a warning, an error when the source is frozen.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseConnection } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { describeConnection, ident, sameDatabase } from './connection.js';
import type { Logger } from '../log.js';
import { runLocal } from '../transport/local.js';
import { openDb } from './db.js';
import { pipeCommands } from './pipe.js';
import { compareCounts, countRows } from './row-counts.js';
import { PG_DROP_CHANGE_LOG, dropChangeLog } from './changes/log.js';
import { copyByTemplate, dropDatabaseSql, templateRefusal, type FastPath } from './template.js';
import { mysqlArgv, mysqldumpArgv, pgDumpArgv, pgRestoreArgv, toolEnv } from './tools.js';

export { ident } from './connection.js';

export interface SnapshotResult {
  engine: string;
  source: string;
  target: string;
  /** How the copy was made, and why that way. */
  method: 'template' | 'pg_dump' | 'mysqldump';
  why: string;
  tables: number;
  rows: number;
  ms: number;
  warnings: string[];
}

export interface CopyOptions {
  jobs: number;
  /** The source gets no writes during the copy (copy-self's freeze, a refresh's nobody-writes): counts must match exactly. */
  frozen: boolean;
  logger: Logger;
  /** PostgreSQL's CREATE DATABASE ... TEMPLATE fast path (template.ts); off when not given. */
  fastPath?: FastPath;
  /** Databases the copy must never replace, whatever the plan says: the live slot's. */
  protect?: readonly DatabaseConnection[];
  /** The plan's statements that remove the change log the copy brought (copiedLogDrop); built here when absent. */
  dropLog?: readonly string[];
}

/**
 * The last guard before a DROP DATABASE: never the source, never a protected (live) database. The
 * live database belongs to the same stage as the target, so its name alone identifies it.
 */
export function refuseUnsafeTarget(src: DatabaseConnection, dst: DatabaseConnection, protect: readonly DatabaseConnection[]): void {
  if (sameDatabase(src, dst)) throw new UpdateserverError(`refusing to copy ${describeConnection(src)} onto itself`);
  const live = protect.find((p) => p.engine === dst.engine && p.database === dst.database);
  if (live) {
    throw new UpdateserverError(`refusing to replace ${describeConnection(dst)}: it is the live slot's database`, {
      hint: 'only the idle slot\'s database is ever replaced; check the database names of the profile and the recorded live slot (updateserver status)',
    });
  }
}

/** The admin database a target is dropped and created from. */
const adminDatabase = (dst: DatabaseConnection): string => (dst.engine === 'postgres' ? 'postgres' : '');

/** What recreate sends, in order, on a session to adminDatabase(dst). */
export function recreateStatements(dst: DatabaseConnection): string[] {
  const name = ident(dst.engine, dst.database);
  return [dst.engine === 'postgres' ? dropDatabaseSql(dst.database) : `DROP DATABASE IF EXISTS ${name}`, `CREATE DATABASE ${name}`];
}

/** Drops and recreates the (empty) target database. */
async function recreate(dst: DatabaseConnection): Promise<void> {
  const admin = await openDb(dst, { database: adminDatabase(dst) });
  try {
    for (const sql of recreateStatements(dst)) await admin.exec(sql);
  } finally {
    await admin.close();
  }
}

/**
 * Every change a copy by dump makes, in the order it makes them, in the words of a recording of the
 * run's database sessions and local programs (test/lab/recorder.ts): the statements on the target
 * server, then the programs. Reads (row counts, the exported snapshot) change nothing and are not
 * listed; `snapshot` and `dir` stand for what only the run knows (the exported snapshot's id, the
 * temporary dump directory).
 */
export function dumpCopyEffects(src: DatabaseConnection, dst: DatabaseConnection, jobs: number, at: { snapshot: string; dir: string }, dropLog?: readonly string[]): Array<{ target: string; effect: string }> {
  const admin = describeConnection({ ...dst, database: adminDatabase(dst) });
  const out = recreateStatements(dst).map((sql) => ({ target: admin, effect: `sql ${sql}` }));
  const argv = src.engine === 'postgres'
    ? (jobs > 1 ? [pgDumpArgv(src, { snapshot: at.snapshot, jobs, dir: `${at.dir}/dump` }), pgRestoreArgv(dst, { jobs, dir: `${at.dir}/dump` })] : [pgDumpArgv(src, { snapshot: at.snapshot, jobs: 1 }), pgRestoreArgv(dst, { jobs: 1 })])
    : [mysqldumpArgv(src), mysqlArgv(dst)];
  // Then the source's change log is removed from the copy: the plan's statements (PostgreSQL fixed; MySQL
  // each trigger the source had when the plan was made); without them, MySQL drops what it finds then.
  const drop = (dropLog ?? (dst.engine === 'postgres' ? PG_DROP_CHANGE_LOG : [])).map((sql) => ({ target: describeConnection(dst), effect: `sql ${sql}` }));
  return [...out, ...argv.map((a) => ({ target: 'local', effect: `run ${a.join(' ')}` })), ...drop];
}

/** pg_dump | pg_restore from one exported snapshot; the row counts are taken in that snapshot. */
async function dumpPostgres(src: DatabaseConnection, dst: DatabaseConnection, jobs: number): Promise<Map<string, number>> {
  const source = await openDb(src, { readOnly: true });
  try {
    await source.exec('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const [snap] = await source.query<{ s: string }>('SELECT pg_export_snapshot() AS s');
    const counts = await countRows(source, 'postgres');
    const what = `copying ${describeConnection(src)} into ${describeConnection(dst)}`;
    if (jobs > 1) {
      // pg_restore runs jobs in parallel only from a file: a directory dump, read back once it is complete.
      const dir = await mkdtemp(join(tmpdir(), 'updateserver-dump-'));
      try {
        const dumpDir = join(dir, 'dump');
        const dump = await runLocal(pgDumpArgv(src, { snapshot: snap?.s, jobs, dir: dumpDir }), { env: toolEnv(src, { readOnly: true }) });
        if (dump.code !== 0) throw new UpdateserverError(`pg_dump of ${describeConnection(src)} failed: ${dump.stderr.trim()}`);
        const restore = await runLocal(pgRestoreArgv(dst, { jobs, dir: dumpDir }), { env: toolEnv(dst) });
        if (restore.code !== 0) throw new UpdateserverError(`pg_restore into ${describeConnection(dst)} failed: ${restore.stderr.trim()}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } else {
      await pipeCommands({ argv: pgDumpArgv(src, { snapshot: snap?.s, jobs: 1 }), env: toolEnv(src, { readOnly: true }) },
        { argv: pgRestoreArgv(dst, { jobs: 1 }), env: toolEnv(dst) }, what);
    }
    await source.exec('COMMIT');
    return counts;
  } finally {
    await source.close();
  }
}

async function dumpMysql(src: DatabaseConnection, dst: DatabaseConnection): Promise<Map<string, number>> {
  const source = await openDb(src, { readOnly: true });
  let counts: Map<string, number>;
  try {
    await source.exec('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    counts = await countRows(source, 'mysql');
    await source.exec('COMMIT');
  } finally {
    await source.close();
  }
  await pipeCommands({ argv: mysqldumpArgv(src), env: toolEnv(src) }, { argv: mysqlArgv(dst), env: toolEnv(dst) },
    `copying ${describeConnection(src)} into ${describeConnection(dst)}`);
  return counts;
}

export async function copyDatabase(src: DatabaseConnection, dst: DatabaseConnection, opts: CopyOptions): Promise<SnapshotResult> {
  const started = Date.now();
  if (src.engine !== dst.engine) throw new UpdateserverError(`cannot copy ${src.engine} data into ${dst.engine}`);
  refuseUnsafeTarget(src, dst, opts.protect ?? []);
  let method: SnapshotResult['method'];
  let why: string;
  let counts: Map<string, number>;
  if (src.engine === 'postgres') {
    const mode = opts.fastPath ?? 'off';
    const refusal = templateRefusal(src, dst, mode);
    const outcome = refusal === undefined && mode !== 'off' ? await copyByTemplate(src, dst, mode, opts.logger) : { copied: false as const, why: refusal ?? '' };
    if (outcome.copied) {
      method = 'template';
      counts = outcome.counts;
    } else {
      method = 'pg_dump';
      await recreate(dst);
      counts = await dumpPostgres(src, dst, opts.jobs);
    }
    why = outcome.why;
  } else {
    method = 'mysqldump';
    why = 'the only way for MySQL/MariaDB';
    await recreate(dst);
    counts = await dumpMysql(src, dst);
  }
  opts.logger.info(`snapshot of ${describeConnection(src)} by ${method === 'template' ? 'CREATE DATABASE ... TEMPLATE' : method}: ${why}`);
  const warnings: string[] = [];
  const target = await openDb(dst);
  let diffs: string[];
  try {
    diffs = compareCounts(counts, await countRows(target, dst.engine));
    // The source's change log (what was written to it while live, issue 21) is not the copy's: removed
    // with its triggers, so the migrations run without them and a refreshed slot never reports it.
    await dropChangeLog(target, opts.dropLog);
  } finally {
    await target.close();
  }
  if (diffs.length > 0) {
    const exact = src.engine === 'postgres' || opts.frozen;
    const msg = `row counts of ${describeConnection(dst)} differ from the source: ${diffs.slice(0, 10).join('; ')}`;
    if (exact) throw new UpdateserverError(msg, { hint: 'the copy is incomplete: nothing was switched; look at the restore output above' });
    warnings.push(`${msg} (the source was written to during the copy)`);
    opts.logger.warn(warnings[0]!);
  }
  const rows = [...counts.values()].reduce((a, b) => a + b, 0);
  return { engine: src.engine, source: describeConnection(src), target: describeConnection(dst), method, why, tables: counts.size, rows, ms: Date.now() - started, warnings };
}
