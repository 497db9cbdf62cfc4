/*
 * The data side of the read phase: which database the idle slot's snapshot comes from, what
 * migration version it has and which migrations the copy will need. Read-only.
 */
import { connectionOf, type SlotName, type Stage } from '../config/model.js';
import { UpdateserverError, describeError } from '../errors.js';
import { openDb } from '../data/db.js';
import { describeConnection } from '../data/connection.js';
import { loadMigrations } from '../data/migrations/files.js';
import { migrationStatus, statusOf } from '../data/migrations/runner.js';
import { databaseBytes } from '../data/size.js';
import type { DataFacts } from '../plan/build.js';

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
    source = connectionOf(fromDb, fromLive ?? 'a');
    sourceSlot = { stage: from.name, slot: fromLive ?? 'a' };
  }
  const migrations = await loadMigrations(db.migrations);
  // The version the idle slot's database will start from: the snapshot's, or (shared, first stage) its own.
  const probe = source ?? connectionOf(db, db.strategy === 'shared' ? 'a' : live);
  let sourceVersion: number | undefined;
  let sourceBytes: number | undefined;
  // What the copy will need: the status accounts for a baseline (an empty database starts with it).
  let pending = statusOf([], migrations).pending;
  try {
    const conn = await openDb(probe);
    try {
      const status = await migrationStatus(conn, migrations);
      sourceVersion = status.current;
      pending = status.pending;
      if (source) sourceBytes = await databaseBytes(conn);
    } finally {
      await conn.close();
    }
  } catch (err) {
    // A stage promoted for the first time has no live database yet: the idle one is created empty
    // and migrated from scratch. Any other unreadable source stops the run.
    const missing = /does not exist|Unknown database/i.test(describeError(err));
    if (source && !(db.strategy === 'copy-self' && missing)) throw new UpdateserverError(`cannot read ${describeConnection(source)}: ${describeError(err)}`, { cause: err });
    source = undefined;
    sourceSlot = undefined;
  }
  return {
    source, sourceVersion, pending: pending.map((m) => ({ version: m.version, name: m.name })),
    ...(source && sourceSlot ? { sourceSlot } : {}), ...(sourceBytes === undefined ? {} : { sourceBytes }),
  };
}
