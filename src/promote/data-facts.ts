/*
 * The data side of the read phase: which database the idle slot's snapshot comes from, what
 * migration version it has and which migrations the copy will need. Read-only.
 */
import { userInfo } from 'node:os';
import { connectionOf, type DatabaseConnection, type SlotName, type Stage } from '../config/model.js';
import { NO_DATA } from '../release/name.js';
import { UpdateserverError, describeError } from '../errors.js';
import { openDb } from '../data/db.js';
import { describeConnection } from '../data/connection.js';
import { loadMigrations } from '../data/migrations/files.js';
import { migrationStatus, readVersionRows, statusOf, type VersionRow } from '../data/migrations/runner.js';
import { databaseBytes } from '../data/size.js';
import { pendingMigration } from '../data/migrations/steps.js';
import { copiedLogDrop } from '../data/changes/log.js';
import type { DataFacts, KeptData } from '../plan/build.js';
import { DEFAULT_SLOT, idleSlot } from '../config/slot.js';

/** A database that is not there yet: a stage (or slot) never promoted with its data step. */
const isMissing = (err: unknown) => /does not exist|Unknown database/i.test(describeError(err));

export async function readDataFacts(stage: Stage, service: string, live: SlotName, from: Stage | undefined, fromLive: SlotName | undefined): Promise<DataFacts | undefined> {
  const db = stage.services[service]!.database;
  if (!db || db.strategy === 'none') return undefined;
  let source;
  let sourceSlot: DataFacts['sourceSlot'];
  if (db.strategy === 'copy-self') {
    source = connectionOf(db, live);
    sourceSlot = { stage: stage.name, slot: live };
  } else if (db.strategy === 'copy' && from) {
    const fromDb = from.services[service]?.database;
    if (!fromDb) {
      throw new UpdateserverError(`${service} in ${stage.name} copies its data from ${from.name}, but ${from.file} gives ${service} no database`, {
        hint: `add services.${service}.database to ${from.file}, or use strategy copy-self, shared or none in ${stage.file}`,
      });
    }
    source = connectionOf(fromDb, fromLive ?? DEFAULT_SLOT);
    sourceSlot = { stage: from.name, slot: fromLive ?? DEFAULT_SLOT };
  }
  const migrations = await loadMigrations(db.migrations);
  // The version the idle slot's database will start from: the snapshot's, or (shared, first stage) its
  // own. A first stage's idle slot keeps its own database, which may be older than the live one's.
  const target = connectionOf(db, db.strategy === 'shared' ? DEFAULT_SLOT : idleSlot(live));
  let sourceVersion: number | undefined;
  let sourceBytes: number | undefined;
  // What the copy will need: the status accounts for a baseline (an empty database starts with it).
  let read: { rows: VersionRow[] | undefined; missing: boolean } = { rows: undefined, missing: false };
  let dropLog: string[] | undefined;
  try {
    const conn = await openDb(source ?? target);
    try {
      read = { rows: await readVersionRows(conn), missing: false };
      if (source) {
        sourceBytes = await databaseBytes(conn);
        dropLog = await copiedLogDrop(conn);
      }
    } finally {
      await conn.close();
    }
  } catch (err) {
    // A stage promoted for the first time has no live database yet: the idle one is created empty
    // and migrated from scratch. Any other unreadable source stops the run.
    const missing = isMissing(err);
    if (source && missing && db.strategy === 'copy' && from) {
      // The previous stage was never promoted with its data: say what to do, not only what failed.
      throw new UpdateserverError(`${from.name} has no live ${service} database yet (${describeConnection(source)} does not exist), so ${stage.name} has nothing to copy`, {
        cause: err, hint: `promote ${from.name} first: updateserver ${from.name}`,
      });
    }
    if (source && !(db.strategy === 'copy-self' && missing)) throw new UpdateserverError(`cannot read ${describeConnection(source)}: ${describeError(err)}`, { cause: err });
    // copy-self without a live database: the idle slot's own database is what gets migrated.
    read = source ? await readTarget(target) : { rows: undefined, missing };
    source = undefined;
    sourceSlot = undefined;
  }
  const status = statusOf(read.rows ?? [], migrations);
  sourceVersion = status.current;
  return {
    source, sourceVersion, pending: status.pending.map((m) => pendingMigration(db.engine, m)),
    // The plan says every statement the migrate step sends: whether it creates the database and the table.
    versionTable: read.rows !== undefined, ...(read.missing ? { createDatabase: true } : {}), appliedBy: `${userInfo().username}@updateserver`,
    ...(source && sourceSlot ? { sourceSlot } : {}), ...(sourceBytes === undefined ? {} : { sourceBytes }), ...(source && dropLog ? { dropLog } : {}),
  };
}

/** The idle slot's own database, when nothing is copied into it: its rows, or that it does not exist yet. */
async function readTarget(conn: DatabaseConnection): Promise<{ rows: VersionRow[] | undefined; missing: boolean }> {
  try {
    const open = await openDb(conn);
    try { return { rows: await readVersionRows(open), missing: false }; } finally { await open.close(); }
  } catch (err) {
    return { rows: undefined, missing: isMissing(err) };
  }
}

/**
 * --code-only: the idle slot's database stays as it is. It must exist (a slot's first promotion needs
 * its data step); its version and the migrations it lacks go into the plan so nobody is surprised.
 */
export async function readKeptData(stage: Stage, service: string, live: SlotName): Promise<KeptData | undefined> {
  const db = stage.services[service]!.database;
  if (!db || db.strategy === 'none') return undefined;
  const idle = idleSlot(live);
  const conn = connectionOf(db, idle);
  const migrations = await loadMigrations(db.migrations);
  let status;
  try {
    const open = await openDb(conn);
    try { status = await migrationStatus(open, migrations); } finally { await open.close(); }
  } catch (err) {
    if (isMissing(err)) {
      throw new UpdateserverError(`--code-only: slot ${idle} of ${service} in ${stage.name} has no database yet (${describeConnection(conn)} does not exist), so there is no data to keep`, {
        cause: err, hint: `the first promotion into a slot needs its data step: run \`updateserver ${stage.name}\` without --code-only`,
      });
    }
    throw new UpdateserverError(`cannot read ${describeConnection(conn)}: ${describeError(err)}`, { cause: err });
  }
  if (status.blocked) {
    // Seed 000: the new code would start on this very database, which a failed migration left as it is.
    const { version, status: st } = status.blocked;
    const resolve = `updateserver migrate resolve ${stage.name} ${service} ${version} --slot ${idle}`;
    throw new UpdateserverError(`--code-only: slot ${idle}'s database ${describeConnection(conn)} has migration ${version} in status "${st}" (a failed or interrupted migration); --code-only keeps this database, so nothing runs until it is repaired`, {
      // A first stage's `copy` has nothing to copy from: its slots keep their databases.
      hint: db.strategy === 'copy-self' || (db.strategy === 'copy' && stage.from !== undefined)
        ? `promote without --code-only (the data step replaces this database with a fresh copy), or repair it by hand and mark it done: ${resolve}`
        : `repair it by hand (finish or undo version ${version}), then mark it done: ${resolve}`,
    });
  }
  return { database: conn.database, version: status.current, notApplied: status.pending.filter((m) => !m.baseline).map((m) => m.version) };
}

/**
 * {data} of a release name: the migration version the slot's database has when the release starts
 * (after the copy and its pending migrations, or as kept with --code-only); "nodata" without a database.
 */
export function dataVersion(facts: { data?: DataFacts; kept?: KeptData }): string {
  if (facts.kept) return String(facts.kept.version ?? 0);
  if (!facts.data) return NO_DATA;
  return String(Math.max(facts.data.sourceVersion ?? 0, ...facts.data.pending.map((m) => m.version)));
}
