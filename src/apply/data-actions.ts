import { userInfo } from 'node:os';
import { copyDatabase } from '../data/snapshot.js';
import { openDb } from '../data/db.js';
import { describeConnection } from '../data/connection.js';
import { ident } from '../data/snapshot.js';
import { loadMigrations } from '../data/migrations/files.js';
import { migrate, migrationStatus } from '../data/migrations/runner.js';
import { adminDatabase } from '../data/migrations/sql.js';
import { markWrites } from '../data/writes.js';
import { describeError, UpdateserverError } from '../errors.js';
import type { Action } from '../plan/plan.js';
import type { ApplyContext } from './context.js';

export async function runDataCopy(ctx: ApplyContext, action: Extract<Action, { kind: 'data-copy' }>): Promise<void> {
  const result = await copyDatabase(action.source, action.target, { jobs: action.jobs, frozen: action.frozen, fastPath: action.fastPath, protect: [action.live], logger: ctx.logger, ...(action.dropLog ? { dropLog: action.dropLog } : {}) });
  ctx.warnings.push(...result.warnings);
  (ctx.snapshots ??= []).push(result);
  ctx.logger.info(`${action.service}: copied ${result.tables} table(s), ${result.rows} row(s) from ${result.source} into ${result.target} in ${result.ms} ms by ${result.method} (${result.why}); row counts match`, { snapshot: result });
  // The migrate action that follows completes the record with the version.
  (ctx.data ??= {})[action.service] = {
    database: action.target.database, version: null,
    ...(action.from ? { snapshot: { ...action.from, database: action.source.database, tables: result.tables, rows: result.rows } } : {}),
  };
}

/** Creates the database when it does not exist (a first stage), then applies pending migrations. */
export async function runMigrate(ctx: ApplyContext, action: Extract<Action, { kind: 'migrate' }>): Promise<void> {
  const c = action.connection;
  // A plan made before its statements were plan text (appliedBy marks it) decides here whether to create the database.
  const planned = action.appliedBy !== undefined;
  if (!planned || action.createDatabase) {
    const admin = await openDb(c, { database: adminDatabase(c) });
    try {
      if (action.createDatabase) {
        await admin.exec(action.createDatabase);
        ctx.logger.info(`${action.service}: created ${describeConnection(c)}`);
      } else {
        const exists = c.engine === 'postgres'
          ? (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [c.database])).length > 0
          : (await admin.query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [c.database])).length > 0;
        if (!exists) {
          await admin.exec(`CREATE DATABASE ${ident(c.engine, c.database)}`);
          ctx.logger.info(`${action.service}: created ${describeConnection(c)}`);
        }
      }
    } finally {
      await admin.close();
    }
  }
  const migrations = await loadMigrations(action.migrations);
  const db = await openDb(c);
  try {
    const result = await migrate(db, migrations, { appliedBy: action.appliedBy ?? `${userInfo().username}@updateserver`, logger: ctx.logger,
      ...(planned ? { planned: { versionTable: action.versionTable === undefined, pending: action.pending } } : {}), stage: action.stage, service: action.service,
      // A shared database has one name for both slots; `migrate status` shows it as slot a.
      slot: action.shared ? 'a' : action.slot, ...(action.copiedFrom ? { copiedFrom: action.copiedFrom } : {}) });
    const version = (await migrationStatus(db, migrations)).current ?? null;
    ctx.logger.info(`${action.service}: ${describeConnection(c)} migrated (${result.applied.length} version(s) applied), data version ${version ?? 'none'}`);
    const copied = ctx.data?.[action.service];
    (ctx.data ??= {})[action.service] = { ...(copied?.database === c.database ? copied : { database: c.database }), version };
    // The write counter before the slot takes traffic: a later rollback or flip away from this slot says
    // how much was written to it meanwhile (those writes stay behind). Not for shared: nothing stays behind.
    if (!action.shared) {
      try {
        ctx.data[action.service]!.writes = await markWrites(db);
      } catch (err) {
        ctx.logger.warn(`${action.service}: could not read the write counter of ${describeConnection(c)}: ${describeError(err)}; a rollback will not say how much was written to it`);
      }
    }
  } finally {
    await db.close();
  }
}

/** Statements on one database (refresh.after on a refreshed copy): one session, one transaction when asked. */
export async function runSql(ctx: ApplyContext, action: Extract<Action, { kind: 'sql' }>): Promise<void> {
  if (action.statements.length === 0) return;
  const db = await openDb(action.connection);
  try {
    const all = async () => { for (const sql of action.statements) await db.exec(sql); };
    if (action.transaction) await db.tx(all); else await all();
  } catch (err) {
    throw new UpdateserverError(`${action.service}: ${action.title} failed on ${describeConnection(action.connection)}: ${describeError(err)}`, {
      cause: err, ...(action.hint ? { hint: action.hint } : {}),
    });
  } finally {
    await db.close();
  }
  ctx.logger.info(`${action.service}: ran ${action.statements.length} statement(s) on ${describeConnection(action.connection)}`);
}
