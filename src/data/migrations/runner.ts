/*
 * Applies migrations the way seed 000 describes: find the last version; if its status is not ok,
 * stop and let a person resolve it; else for each new version insert a "begin" row, run it, and set
 * "error" (with the message in comments) or "ok". PostgreSQL runs each version and its "ok" in one
 * transaction, so a failure changes nothing but the row that says so; MySQL's DDL commits by itself,
 * so its error says the database may be half-changed. An advisory lock serialises concurrent runs.
 */
import { UpdateserverError, describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Db } from '../db.js';
import type { Migration } from './files.js';
import { createTable, insertBegin, lastId, lock, selectRows, setStatus, tableExists, unlock } from './sql.js';

export interface VersionRow {
  id: number;
  version: number;
  updated: string;
  status: 'begin' | 'ok' | 'error';
  comments: string | null;
  checksum: string;
  applied_by: string;
  duration_ms: number | null;
}

export interface MigrationStatus {
  current: number | undefined;
  last: VersionRow | undefined;
  applied: VersionRow[];
  pending: Migration[];
  changed: Array<{ version: number; was: string; now: string }>;
  blocked?: { version: number; status: string; comments: string };
}

export class MigrationBlocked extends UpdateserverError {}

async function rows(db: Db): Promise<VersionRow[]> {
  if ((await db.query(tableExists(db.engine))).length === 0) return [];
  return (await db.query<VersionRow>(selectRows())).map((r) => ({ ...r, id: Number(r.id), version: Number(r.version) }));
}

export function statusOf(all: VersionRow[], migrations: readonly Migration[]): MigrationStatus {
  const ok = all.filter((r) => r.status === 'ok');
  const current = ok.length === 0 ? undefined : Math.max(...ok.map((r) => r.version));
  const last = all[all.length - 1];
  const byVersion = new Map(ok.map((r) => [r.version, r]));
  const changed = migrations.filter((m) => !m.baseline && byVersion.has(m.version) && byVersion.get(m.version)!.checksum !== '' && byVersion.get(m.version)!.checksum !== m.checksum)
    .map((m) => ({ version: m.version, was: byVersion.get(m.version)!.checksum, now: m.checksum }));
  const baseline = migrations.find((m) => m.baseline);
  const pending = current === undefined && baseline
    ? [baseline, ...migrations.filter((m) => !m.baseline && m.version > baseline.version)]
    : migrations.filter((m) => !m.baseline && (current === undefined || m.version > current));
  return {
    current, last, applied: all, pending, changed,
    ...(last && last.status !== 'ok' ? { blocked: { version: last.version, status: last.status, comments: last.comments ?? '' } } : {}),
  };
}

export async function migrationStatus(db: Db, migrations: readonly Migration[]): Promise<MigrationStatus> {
  return statusOf(await rows(db), migrations);
}

export async function migrate(db: Db, migrations: readonly Migration[], opts: { appliedBy: string; logger: Logger; dryRun?: boolean; where?: string }): Promise<{ applied: Array<{ version: number; durationMs: number }>; sql: string[] }> {
  const where = opts.where ?? 'the database';
  await db.query(lock(db.engine));
  try {
    await db.exec(createTable(db.engine));
    const status = await migrationStatus(db, migrations);
    if (status.blocked) {
      throw new MigrationBlocked(`${where}: migration ${status.blocked.version} has status "${status.blocked.status}"${status.blocked.comments ? `: ${status.blocked.comments}` : ''}; nothing more is applied until a person resolves it`, {
        hint: `repair the database by hand, then mark it done: updateserver migrate resolve <stage> <service> ${status.blocked.version}`,
      });
    }
    if (status.changed.length > 0) {
      throw new MigrationBlocked(`${where}: applied migration${status.changed.length > 1 ? 's' : ''} ${status.changed.map((c) => c.version).join(', ')} changed since they ran (checksum differs)`, {
        hint: 'never edit an applied migration: put the change in a new version',
      });
    }
    const applied: Array<{ version: number; durationMs: number }> = [];
    if (opts.dryRun) return { applied, sql: status.pending.map((m) => m.sql) };
    for (const m of status.pending) {
      await db.query(insertBegin(db.engine), [m.version, m.baseline ? `baseline ${m.name}` : m.name, m.checksum, opts.appliedBy]);
      const [{ id } = { id: 0 }] = await db.query<{ id: number }>(lastId());
      const t0 = Date.now();
      try {
        if (db.engine === 'postgres') {
          await db.exec('BEGIN');
          try {
            await db.exec(m.sql);
            await db.query(setStatus(db.engine), ['ok', m.baseline ? `baseline ${m.name}` : m.name, Date.now() - t0, id]);
            await db.exec('COMMIT');
          } catch (err) {
            await db.exec('ROLLBACK').catch(() => {});
            throw err;
          }
        } else {
          await db.exec(m.sql);
          await db.query(setStatus(db.engine), ['ok', m.name, Date.now() - t0, id]);
        }
      } catch (err) {
        const message = describeError(err);
        await db.query(setStatus(db.engine), ['error', message.slice(0, 2000), Date.now() - t0, id]).catch(() => {});
        throw new UpdateserverError(`${where}: migration ${m.version} (${m.name}) failed: ${message}${db.engine === 'mysql' ? '\nMySQL applies DDL at once: the database may be half-changed' : ' (rolled back: the schema is as before)'}`, {
          hint: db.engine === 'mysql' ? `check the database, repair it, then: updateserver migrate resolve <stage> <service> ${m.version}` : 'fix the migration and promote again',
        });
      }
      applied.push({ version: m.version, durationMs: Date.now() - t0 });
      opts.logger.info(`${where}: migration ${m.version} ${m.name} ok in ${Date.now() - t0} ms`);
    }
    return { applied, sql: [] };
  } finally {
    await db.query(unlock(db.engine)).catch((err: unknown) => opts.logger.warn(`${where}: could not release the migration lock: ${describeError(err)}`));
  }
}

/** After a manual repair: the last row, which must be that version and not ok, becomes ok. */
export async function resolveMigration(db: Db, version: number, opts: { appliedBy: string; comment?: string }): Promise<void> {
  const all = await rows(db);
  const last = all[all.length - 1];
  if (!last || last.version !== version || last.status === 'ok') {
    throw new UpdateserverError(`nothing to resolve: the last migration row is ${last ? `version ${last.version}, status ${last.status}` : 'absent'}, not version ${version} in begin or error`);
  }
  await db.query(setStatus(db.engine), ['ok', `resolved by hand by ${opts.appliedBy}${opts.comment ? `: ${opts.comment}` : ''} (was ${last.status}: ${last.comments ?? ''})`.slice(0, 2000), last.duration_ms ?? 0, last.id]);
}
