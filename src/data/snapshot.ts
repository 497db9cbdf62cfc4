/*
 * The data step: a consistent snapshot of a source database restored into the idle slot's database,
 * then checked table by table against the source's row counts.
 *   PostgreSQL: the source's snapshot is exported from a REPEATABLE READ transaction; pg_dump reads
 *     exactly that snapshot and the row counts are taken in it, so the check is exact under writes.
 *   MySQL/MariaDB: mysqldump --single-transaction reads one consistent snapshot; the row counts come
 *     from a consistent-snapshot transaction opened just before, so a source that is written to during
 *     the copy can differ slightly: reported as a warning, an error when the source is frozen.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseConnection } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { describeConnection } from './connection.js';
import type { Logger } from '../log.js';
import { runLocal } from '../transport/local.js';
import { openDb, type Db } from './db.js';
import { pipeCommands } from './pipe.js';
import { mysqlArgv, mysqldumpArgv, pgDumpArgv, pgRestoreArgv, toolEnv } from './tools.js';

export interface SnapshotResult {
  engine: string;
  source: string;
  target: string;
  tables: number;
  rows: number;
  ms: number;
  warnings: string[];
}


/** Quotes an identifier; names are validated to [a-z0-9_] anyway. */
export function ident(engine: DatabaseConnection['engine'], name: string): string {
  return engine === 'postgres' ? `"${name.replace(/"/g, '""')}"` : `\`${name.replace(/`/g, '``')}\``;
}

async function countRows(db: Db, engine: DatabaseConnection['engine']): Promise<Map<string, number>> {
  const tables = engine === 'postgres'
    ? await db.query<{ t: string }>(`SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1`)
    : await db.query<{ t: string }>(`SELECT CONCAT('\`', REPLACE(TABLE_NAME, '\`', '\`\`'), '\`') AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1`);
  const counts = new Map<string, number>();
  for (const { t } of tables) {
    const [row] = await db.query<{ n: string | number }>(`SELECT COUNT(*) AS n FROM ${t}`);
    counts.set(t, Number(row?.n ?? 0));
  }
  return counts;
}

/** Drops and recreates the target database. Refuses to touch the source. */
async function recreate(dst: DatabaseConnection, src: DatabaseConnection): Promise<void> {
  if (dst.host === src.host && dst.port === src.port && dst.database === src.database) {
    throw new UpdateserverError(`refusing to copy ${describeConnection(src)} onto itself`);
  }
  const admin = await openDb(dst, { database: dst.engine === 'postgres' ? 'postgres' : '' });
  try {
    const name = ident(dst.engine, dst.database);
    if (dst.engine === 'postgres') {
      // The idle slot is stopped before the data step; WITH (FORCE) ends stray sessions of that database only.
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.exec(`CREATE DATABASE ${name}`);
    } else {
      await admin.exec(`DROP DATABASE IF EXISTS ${name}`);
      await admin.exec(`CREATE DATABASE ${name}`);
    }
  } finally {
    await admin.close();
  }
}

function compare(source: Map<string, number>, target: Map<string, number>): string[] {
  const diffs: string[] = [];
  for (const [t, n] of source) {
    const m = target.get(t);
    if (m !== n) diffs.push(`${t}: source ${n} rows, copy ${m ?? 'missing'}`);
  }
  for (const t of target.keys()) if (!source.has(t)) diffs.push(`${t}: not in the source`);
  return diffs;
}

export async function copyDatabase(src: DatabaseConnection, dst: DatabaseConnection, opts: { jobs: number; frozen: boolean; logger: Logger }): Promise<SnapshotResult> {
  const started = Date.now();
  if (src.engine !== dst.engine) throw new UpdateserverError(`cannot copy ${src.engine} data into ${dst.engine}`);
  await recreate(dst, src);
  const source = await openDb(src);
  const warnings: string[] = [];
  let counts: Map<string, number>;
  try {
    if (src.engine === 'postgres') {
      await source.exec('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const [snap] = await source.query<{ s: string }>('SELECT pg_export_snapshot() AS s');
      counts = await countRows(source, 'postgres');
      if (opts.jobs > 1) {
        const dir = await mkdtemp(join(tmpdir(), 'updateserver-dump-'));
        try {
          const dumpDir = join(dir, 'dump');
          const dump = await runLocal(pgDumpArgv(src, { snapshot: snap?.s, jobs: opts.jobs, dir: dumpDir }), { env: toolEnv(src) });
          if (dump.code !== 0) throw new UpdateserverError(`pg_dump of ${describeConnection(src)} failed: ${dump.stderr.trim()}`);
          const restore = await runLocal(pgRestoreArgv(dst, { jobs: opts.jobs, dir: dumpDir }), { env: toolEnv(dst) });
          if (restore.code !== 0) throw new UpdateserverError(`pg_restore into ${describeConnection(dst)} failed: ${restore.stderr.trim()}`);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      } else {
        await pipeCommands({ argv: pgDumpArgv(src, { snapshot: snap?.s, jobs: 1 }), env: toolEnv(src) },
          { argv: pgRestoreArgv(dst, { jobs: 1 }), env: toolEnv(dst) }, `copying ${describeConnection(src)} into ${describeConnection(dst)}`);
      }
      await source.exec('COMMIT');
    } else {
      await source.exec('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      counts = await countRows(source, 'mysql');
      await source.exec('COMMIT');
      await pipeCommands({ argv: mysqldumpArgv(src), env: toolEnv(src) }, { argv: mysqlArgv(dst), env: toolEnv(dst) },
        `copying ${describeConnection(src)} into ${describeConnection(dst)}`);
    }
  } finally {
    await source.close();
  }
  const target = await openDb(dst);
  let diffs: string[];
  try {
    diffs = compare(counts, await countRows(target, dst.engine));
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
  return { engine: src.engine, source: describeConnection(src), target: describeConnection(dst), tables: counts.size, rows, ms: Date.now() - started, warnings };
}
