/*
 * Applies migrations the way seed 000 describes: find the last version; if its status is not ok,
 * stop and let a person resolve it; else for each new version insert a "begin" row, run it, and set
 * "error" (with the message in comments) or "ok". PostgreSQL runs each version together with its "ok"
 * in one transaction, so a failure changes nothing but the row that says so; MySQL commits DDL
 * statement by statement, so its error says the database may be half-changed and how far it got.
 * An advisory lock serialises runs on one database; it is released in `finally`, and a failed unlock
 * is only logged so that it never hides the error that got us there.
 */
import { UpdateserverError, describeError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { DatabaseError, type Db } from '../db.js';
import type { Migration } from './files.js';
import type { SlotName } from '../../config/slot.js';
import {
  createTable, currentDatabase, lastInsertId, lock, selectRows, setResolved,
  tableExists, tryLock, unlock, type VersionStatus,
} from './sql.js';
import { beginValues, pendingMigration, type PendingMigration } from './steps.js';

export interface VersionRow {
  id: number;
  version: number;
  updated: Date;
  status: VersionStatus;
  comments: string;
  checksum: string;
  applied_by: string;
  duration_ms: number | null;
  baseline: boolean;
}

export interface MigrationStatus {
  /** Highest version with status ok; undefined for a database without one. */
  current: number | undefined;
  last?: VersionRow;
  /** Every row of the version table, oldest first. */
  applied: VersionRow[];
  /** What migrate() would apply, in order: the baseline first on a database without a version. */
  pending: Migration[];
  /** Applied versions whose file has changed since. */
  changed: Array<{ version: number; was: string; now: string }>;
  /** Versions below current that never ran (added after a higher one): migrate() refuses them. */
  outOfOrder: Migration[];
  /** The last row is not ok: nothing runs until a person resolves it. */
  blocked?: { version: number; status: VersionStatus; comments: string };
}

export interface MigrateOptions {
  /** Who runs it, for the applied_by column: user@host. */
  appliedBy: string;
  logger: Logger;
  /** Return the SQL that would run; change nothing (no version table either, no lock). */
  dryRun?: boolean;
  /** How long to wait for another run's lock; default 10 minutes. */
  lockTimeoutMs?: number;
  /** For the resolve command in messages; "<stage>" and "<service>" otherwise. */
  stage?: string;
  service?: string;
  /** The slot whose database this is, for the resolve command in messages. */
  slot?: SlotName;
  /**
   * Set when this database was just copied from another one and is copied afresh at every promotion
   * (copy, copy-self): a failure is then fixed in the migration file or in the source, never by repairing
   * and resolving this copy, which the next copy replaces.
   */
  copiedFrom?: { stage: string; slot: SlotName; database: string };
  /**
   * What the plan said this run sends (a promotion's migrate step): the version table created or not,
   * and each pending migration with its statements. Under the lock the database must still need exactly
   * these; then exactly these statements run. Without it (the migrate command) they are built here.
   */
  planned?: { versionTable: boolean; pending: readonly PendingMigration[] };
}

/** The database is not what the plan was made from (someone migrated it meanwhile): nothing was applied. */
export class MigrationPlanStale extends UpdateserverError {}

export interface MigrateResult {
  applied: Array<{ version: number; name: string; baseline: boolean; durationMs: number }>;
  /** Dry run: the version table (if missing) and each pending migration's SQL, in order. Else []. */
  sql: string[];
}

/** The database's version table says no: a version not ok, a changed file, a version out of order. */
export class MigrationBlocked extends UpdateserverError {
  constructor(readonly version: number, message: string, hint: string) {
    super(message, { hint });
  }
}

/** A migration failed; its row says error. */
export class MigrationFailed extends UpdateserverError {
  constructor(readonly version: number, readonly halfChanged: boolean, message: string, options: { cause?: unknown; hint: string }) {
    super(message, options);
  }
}

export const DEFAULT_LOCK_TIMEOUT_MS = 10 * 60_000;
const MAX_COMMENTS = 4000;

const resolveCommand = (o: { stage?: string | undefined; service?: string | undefined; slot?: SlotName | undefined }, version: number) =>
  `updateserver migrate resolve ${o.stage ?? '<stage>'} ${o.service ?? '<service>'} ${version}${o.slot ? ` --slot ${o.slot}` : ''}`;
const truthy = (v: unknown) => v === true || Number(v) === 1;
const reasonOf = (err: unknown) => (err instanceof DatabaseError ? err.reason : describeError(err));

/** The version table's rows, oldest first; undefined when the database has no version table. */
export async function readVersionRows(db: Db): Promise<VersionRow[] | undefined> {
  return readRows(db);
}

async function readRows(db: Db): Promise<VersionRow[] | undefined> {
  if ((await db.query(tableExists(db.engine))).length === 0) return undefined;
  const raw = await db.query<Record<string, unknown>>(selectRows());
  return raw.map((r) => ({
    id: Number(r.id),
    version: Number(r.version),
    updated: r.updated instanceof Date ? r.updated : new Date(String(r.updated)),
    status: String(r.status) as VersionStatus,
    comments: r.comments == null ? '' : String(r.comments),
    checksum: r.checksum == null ? '' : String(r.checksum),
    applied_by: r.applied_by == null ? '' : String(r.applied_by),
    duration_ms: r.duration_ms == null ? null : Number(r.duration_ms),
    baseline: truthy(r.baseline),
  }));
}

/** The status of a database from its rows and the migration files. Pure. */
export function statusOf(rows: readonly VersionRow[], migrations: readonly Migration[]): MigrationStatus {
  const ok = rows.filter((r) => r.status === 'ok');
  const current = ok.length === 0 ? undefined : Math.max(...ok.map((r) => r.version));
  const last = rows[rows.length - 1];
  const versions = migrations.filter((m) => !m.baseline).sort((a, b) => a.version - b.version);
  const baseline = migrations.find((m) => m.baseline);
  // A baseline row stands for every version up to its own: their files may be gone or kept.
  const absorbed = Math.max(-1, ...ok.filter((r) => r.baseline).map((r) => r.version));
  const okVersion = new Map(ok.filter((r) => !r.baseline).map((r) => [r.version, r]));
  const changed = versions.flatMap((m) => {
    const row = okVersion.get(m.version);
    return row && row.checksum !== '' && row.checksum !== m.checksum ? [{ version: m.version, was: row.checksum, now: m.checksum }] : [];
  });
  const pending = current === undefined
    ? (baseline ? [baseline, ...versions.filter((m) => m.version > baseline.version)] : versions)
    : versions.filter((m) => m.version > current);
  const outOfOrder = current === undefined ? [] : versions.filter((m) => m.version < current && m.version > absorbed && !okVersion.has(m.version));
  return {
    current,
    ...(last ? { last } : {}),
    applied: [...rows],
    pending,
    changed,
    outOfOrder,
    ...(last && last.status !== 'ok' ? { blocked: { version: last.version, status: last.status, comments: last.comments } } : {}),
  };
}

export async function migrationStatus(db: Db, migrations: readonly Migration[]): Promise<MigrationStatus> {
  return statusOf((await readRows(db)) ?? [], migrations);
}

/** Refuses what seed 000 and the checksums forbid; same refusals in a dry run as in a real one. */
function refuse(db: Db, status: MigrationStatus, opts: MigrateOptions): void {
  const where = db.label;
  if (status.blocked) {
    const { version, status: st, comments } = status.blocked;
    const why = st === 'begin' ? 'a run stopped while applying it (killed, or its connection was lost), so nobody knows how far it got' : `it failed${comments ? `: ${comments}` : ''}`;
    const from = opts.copiedFrom;
    if (from) {
      // The row came with the copy: the database to repair is the source, which the next copy reads again.
      const there = { stage: from.stage, service: opts.service, slot: from.slot };
      throw new MigrationBlocked(version,
        `${where}: migration ${version} has status "${st}" in the copy of ${from.database} (${from.stage}, slot ${from.slot}): ${why}. The row came with the copy; nothing more is applied until a person repairs ${from.database} by hand and runs: ${resolveCommand(there, version)}`,
        `repair ${from.database} (${from.stage}, slot ${from.slot}) by hand, mark it done there: ${resolveCommand(there, version)} -m "what you did", then run again: the next promotion copies it afresh`);
    }
    throw new MigrationBlocked(version,
      `${where}: migration ${version} has status "${st}"${st === 'begin' && comments ? ` (${comments})` : ''}: ${why}. Nothing more is applied until a person repairs the database by hand and runs: ${resolveCommand(opts, version)}`,
      `look at the database: finish or undo what version ${version} does, then mark it done: ${resolveCommand(opts, version)} -m "what you did"`);
  }
  if (status.changed.length > 0) {
    const first = status.changed[0]!;
    throw new MigrationBlocked(first.version,
      `${where}: applied migration${status.changed.length > 1 ? 's' : ''} ${status.changed.map((c) => c.version).join(', ')} changed since ${status.changed.length > 1 ? 'they' : 'it'} ran (checksum ${first.was.slice(0, 12)}… in the database, ${first.now.slice(0, 12)}… in the file)`,
      'never edit an applied migration: restore the file as it was and put the change in a new version');
  }
  if (status.outOfOrder.length > 0) {
    const first = status.outOfOrder[0]!;
    throw new MigrationBlocked(first.version,
      `${where}: migration${status.outOfOrder.length > 1 ? 's' : ''} ${status.outOfOrder.map((m) => m.version).join(', ')} ${status.outOfOrder.length > 1 ? 'are' : 'is'} below the database's version ${status.current} but never ran (${first.file})`,
      `give ${status.outOfOrder.length > 1 ? 'them versions' : 'it a version'} above ${status.current}`);
  }
}

async function acquireLock(db: Db, database: string, opts: MigrateOptions): Promise<void> {
  const [free] = await db.query<{ got: unknown }>(tryLock(db.engine, database));
  if (truthy(free?.got)) return;
  const timeoutMs = opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  opts.logger.info(`${db.label}: another migration of this database is running; waiting for its lock (at most ${Math.round(timeoutMs / 1000)} s)`);
  const timedOut = () => new UpdateserverError(`${db.label}: another migration of this database still held the lock after ${Math.round(timeoutMs / 1000)} s`, {
    hint: 'see who runs it: the session holding the advisory lock; run again when it is done',
  });
  if (db.engine === 'postgres') {
    try {
      await db.exec(lock(db.engine, database, timeoutMs));
    } catch (err) {
      if (err instanceof DatabaseError && err.code === '55P03') throw timedOut();
      throw err;
    }
    return;
  }
  const [got] = await db.query<{ got: unknown }>(lock(db.engine, database, timeoutMs));
  if (!truthy(got?.got)) throw timedOut();
}

async function releaseLock(db: Db, database: string, logger: Logger): Promise<void> {
  try {
    const [r] = await db.query<{ released: unknown }>(unlock(db.engine, database));
    if (!truthy(r?.released)) logger.warn(`${db.label}: the migration lock was not held any more when released`);
  } catch (err) {
    // Closing the session releases it anyway; the error that brought us here matters more.
    logger.warn(`${db.label}: could not release the migration lock: ${describeError(err)}`);
  }
}

async function lockName(db: Db): Promise<string> {
  if (db.engine === 'postgres') return '';
  const [r] = await db.query<{ name: unknown }>(currentDatabase());
  return r?.name == null ? '' : String(r.name);
}

export async function migrate(db: Db, migrations: readonly Migration[], opts: MigrateOptions): Promise<MigrateResult> {
  if (opts.dryRun) {
    const rows = await readRows(db);
    const status = statusOf(rows ?? [], migrations);
    refuse(db, status, opts);
    return {
      applied: [],
      sql: [
        ...(rows === undefined ? [createTable(db.engine)] : []),
        ...status.pending.map((m) => `-- ${m.baseline ? 'baseline' : 'version'} ${m.version} ${m.name} (${m.file})\n${m.sql}`),
      ],
    };
  }
  const database = await lockName(db);
  await acquireLock(db, database, opts);
  try {
    const rows = await readRows(db);
    const status = statusOf(rows ?? [], migrations);
    refuse(db, status, opts);
    const steps = status.pending.map((m) => pendingMigration(db.engine, m));
    if (opts.planned) refuseUnplanned(db, opts.planned, rows !== undefined, steps);
    // A database without the table cannot have a row that refuses: creating it after the checks is the same.
    if (rows === undefined) await db.exec(createTable(db.engine));
    const applied: MigrateResult['applied'] = [];
    for (const m of opts.planned?.pending ?? steps) applied.push(await applyOne(db, m, opts));
    return { applied, sql: [] };
  } finally {
    await releaseLock(db, database, opts.logger);
  }
}

/** What the database needs now must be what the plan said: else the plan's statements are not the ones to run. */
function refuseUnplanned(db: Db, planned: NonNullable<MigrateOptions['planned']>, hasTable: boolean, now: readonly PendingMigration[]): void {
  const words = (list: readonly PendingMigration[]) => (list.length === 0 ? 'none' : list.map((m) => `${m.baseline ? 'B' : 'V'}${m.version}`).join(', '));
  const same = planned.pending.length === now.length && planned.pending.every((m, i) => m.version === now[i]!.version && m.baseline === now[i]!.baseline && (m.checksum === undefined || m.checksum === now[i]!.checksum));
  if (same && planned.versionTable === hasTable) return;
  throw new MigrationPlanStale(`${db.label}: the database changed since the plan was made: the plan applies ${words(planned.pending)}${planned.versionTable ? '' : ' (and creates the version table)'}, the database now needs ${words(now)}${hasTable ? '' : ' (and has no version table)'}; nothing was applied`, {
    hint: 'someone migrated it meanwhile: run again, and the new plan says what remains',
  });
}

/** One statement of a migration, as planned. MySQL: sent alone (never re-cut), and an error says which statement and line it was. */
async function runStatement(db: Db, m: PendingMigration, i: number): Promise<void> {
  const sql = m.statements[i]!;
  if (db.engine === 'postgres') { await db.exec(sql); return; }
  try {
    await db.query(sql);
  } catch (err) {
    const n = m.statements.length;
    const line = m.lines?.[i] ?? 1;
    if (!(err instanceof DatabaseError) || (n === 1 && line === 1)) throw err;
    throw new DatabaseError(err.where, `${err.reason} (statement ${i + 1} of ${n}, line ${line})`, {
      cause: err, ...(err.code === undefined ? {} : { code: err.code }), ...(err.hint === undefined ? {} : { hint: err.hint }), at: { line, statement: i + 1, statements: n },
    });
  }
}

async function applyOne(db: Db, m: PendingMigration, opts: MigrateOptions): Promise<MigrateResult['applied'][number]> {
  const fallback = pendingMigration(db.engine, { version: m.version, name: m.name, sql: '', checksum: m.checksum ?? '', file: m.file, baseline: m.baseline });
  const rows = m.rows ?? fallback.rows!;
  const label = m.label ?? fallback.label!;
  const inserted = await db.query<{ id: unknown }>(rows.begin, beginValues(m, opts.appliedBy));
  const [row] = db.engine === 'postgres' ? inserted : await db.query<{ id: unknown }>(lastInsertId());
  const id = Number(row?.id);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const all = async () => { for (let i = 0; i < m.statements.length; i++) await runStatement(db, m, i); };
  try {
    if (db.engine === 'postgres') {
      await db.tx(async () => {
        await all();
        await db.query(rows.ok, [label, elapsed(), id]);
      });
    } else {
      await all();
      await db.query(rows.ok, [label, elapsed(), id]);
    }
  } catch (err) {
    const durationMs = elapsed();
    const reason = reasonOf(err);
    // Outside the rolled-back transaction, so that the row says what happened.
    await db.query(rows.error, [`${label}: ${reason}`.slice(0, MAX_COMMENTS), durationMs, id]).catch((e: unknown) => {
      opts.logger.error(`${db.label}: could not record the failure of migration ${m.version} (its row stays "begin"): ${describeError(e)}`);
    });
    throw failure(db, m, err, reason, opts);
  }
  const durationMs = elapsed();
  opts.logger.info(`${db.label}: migration ${m.version} ${label} ok in ${durationMs} ms`);
  return { version: m.version, name: m.name, baseline: m.baseline, durationMs };
}

/**
 * The way out depends on whether the next run uses this very database. A copy (copy, copy-self) is made
 * afresh from its source at the next promotion, which wipes the error row and any resolution: fix the
 * file (or the source's data) and run again. A kept database (shared, the first stage) is the one the
 * next run migrates: seed 000's rule holds, nothing runs until a person repairs it and resolves.
 */
function failure(db: Db, m: PendingMigration, err: unknown, reason: string, opts: MigrateOptions): MigrationFailed {
  const head = `${db.label}: migration ${m.version} (${m.name}) failed: ${reason}`;
  const from = opts.copiedFrom;
  const again = `run again: updateserver ${opts.stage ?? '<stage>'}`;
  const copied = from
    ? `fix ${m.file} (or, if ${from.stage}'s data makes it fail, fix that data in ${from.stage}), then ${again}. This database is a copy of ${from.database} (${from.stage}, slot ${from.slot}) that the next promotion makes afresh, so there is nothing to repair or resolve in it`
    : undefined;
  if (db.engine === 'postgres') {
    return new MigrationFailed(m.version, false, `${head} (rolled back: the schema is as before)`, {
      cause: err,
      hint: copied ?? `fix ${m.file}, apply the fixed version to this database by hand and mark it done: ${resolveCommand(opts, m.version)}. The database is kept (not copied afresh), so the next run refuses to go on until then`,
    });
  }
  const at = err instanceof DatabaseError ? err.at : undefined;
  const progress = at?.statement === undefined ? 'some of its statements may have run'
    : at.statement === 1 ? `the failed statement was the first of ${at.statements ?? '?'}`
      : `statements 1-${at.statement - 1} of ${at.statements ?? '?'} ran and stay applied; statement ${at.statement} (line ${at.line}) failed`;
  return new MigrationFailed(m.version, true, `${head}\nMySQL commits each statement (DDL cannot be rolled back): the database may be half-changed (${progress})`, {
    cause: err,
    hint: copied ?? `compare the database with ${m.file}, finish or undo version ${m.version} by hand, then mark it done: ${resolveCommand(opts, m.version)}. The database is kept (not copied afresh), so the next run refuses to go on until then`,
  });
}

/** After a repair by hand: the last row, which must be that version and begin or error, becomes ok. */
export async function resolveMigration(db: Db, version: number, opts: {
  appliedBy: string;
  comment?: string;
  /** The migration file's checksum now, when it was fixed before the repair; default: the row's. */
  checksum?: string;
  logger?: Logger;
}): Promise<VersionRow> {
  const database = await lockName(db);
  const [free] = await db.query<{ got: unknown }>(tryLock(db.engine, database));
  if (!truthy(free?.got)) {
    throw new UpdateserverError(`${db.label}: a migration of this database is running right now (it holds the lock); its row says "begin" until it ends`, { hint: 'wait for it to end, then look at the version table again' });
  }
  try {
    const rows = (await readRows(db)) ?? [];
    const last = rows[rows.length - 1];
    if (!last || last.version !== version || last.status === 'ok') {
      throw new UpdateserverError(`${db.label}: nothing to resolve: the last row of the version table is ${last ? `version ${last.version}, status ${last.status}` : 'absent'}, not version ${version} in begin or error`);
    }
    const comments = `resolved by hand by ${opts.appliedBy}${opts.comment ? `: ${opts.comment}` : ''} (was ${last.status}${last.comments ? `: ${last.comments}` : ''})`.slice(0, MAX_COMMENTS);
    const checksum = opts.checksum ?? last.checksum;
    await db.query(setResolved(db.engine), [comments, checksum, last.id]);
    return { ...last, status: 'ok', comments, checksum };
  } finally {
    await releaseLock(db, database, opts.logger ?? silentLogger);
  }
}
