/*
 * After traffic leaves a slot (rollback, flip, automatic rollback after the post checks or the watch):
 * the slot left behind keeps in its own database what users wrote to it since it went live, and the
 * slot now serving does not have it. With a change log (installed on every copy, src/data/changes/),
 * the report says exactly which rows, per table, and is written where `updateserver replay` finds it.
 * A slot promoted before the change log existed falls back to the cheap write counter (src/data/writes.ts).
 * Never a failed run: traffic has already moved; a failure to read becomes a line of the report.
 * Files (`files:` data, issue 18): the files added, changed and removed in the slot left since its
 * switch, listed by the hosts as steps of the plan (their output in `outputs`), go into the same report.
 */
import { connectionOf, type SlotName, type Stage } from '../config/model.js';
import { describeConnection } from '../data/connection.js';
import { openDb } from '../data/db.js';
import { writesSince } from '../data/writes.js';
import { hasChangeLog, markReported, readChanges } from '../data/changes/log.js';
import { countsOf, reportLines, summarize, withoutRows, writeReport, type ChangeCounts, type ChangeReport, type ServiceChanges } from '../data/changes/report.js';
import { describeError } from '../errors.js';
import { filesCounts, filesLeftLines, filesLeftOf, type FilesLeft, type FilesOutput } from '../data/files-left.js';
import type { Plan } from '../plan/plan.js';
import type { Logger } from '../log.js';
import type { StageState } from '../state/store.js';

export interface LeftBehind {
  /** For the terminal and the run's warnings. */
  lines: string[];
  /** The report without its rows (history, --json); undefined when no service has a database left behind. */
  report: ChangeReport | undefined;
  /** The webhook's counts. */
  counts: ChangeCounts | undefined;
  file?: string;
}

export interface LeftOptions {
  stateDir: string;
  runId: string;
  /** An automatic rollback: the new slot (the plan's target) is the one left; otherwise the plan's live slot. */
  newSlotLeft?: boolean;
  now?: Date;
  /** What the plan's files-left steps printed (src/data/files-left.ts). */
  outputs?: readonly FilesOutput[];
}

export async function leftBehind(stage: Stage, plan: Plan, recorded: StageState | undefined, opts: LeftOptions): Promise<LeftBehind> {
  const services: ServiceChanges[] = [];
  const lines: string[] = [];
  const marks: Array<{ conn: ReturnType<typeof connectionOf>; upTo: string }> = [];
  for (const s of plan.services) {
    const db = stage.services[s.service]?.database;
    if (!db || db.strategy === 'none' || db.strategy === 'shared') continue;
    const left: SlotName = opts.newSlotLeft ? s.target : s.live;
    const serving: SlotName = opts.newSlotLeft ? s.live : s.target;
    const conn = connectionOf(db, left);
    const entry: ServiceChanges = { service: s.service, engine: db.engine, slot: left, database: conn.database, servingSlot: serving, servingDatabase: connectionOf(db, serving).database, tables: [], untracked: [] };
    try {
      const open = await openDb(conn);
      try {
        if (await hasChangeLog(open)) {
          const { changes, untracked } = await readChanges(open);
          entry.tables = summarize(changes);
          entry.untracked = untracked;
          entry.changes = changes;
          if (changes.length > 0) marks.push({ conn, upTo: changes[changes.length - 1]!.seq });
        } else {
          const mark = recorded?.services[s.service]?.data?.[left]?.writes;
          entry.unknown = `it has no change log (promoted before updateserver installed one), so the rows are unknown; ${mark ? await writesSince(open, mark) : 'no write counter was recorded either'}`;
        }
      } finally {
        await open.close();
      }
    } catch (err) {
      entry.unknown = `could not read what was written: ${describeConnection(conn)}: ${describeError(err)}`;
    }
    services.push(entry);
  }
  const files = filesLeftOf(stage, plan, opts.outputs ?? [], opts.newSlotLeft === true);
  if (services.length === 0 && files.length === 0) return { lines, report: undefined, counts: undefined };
  const report: ChangeReport = { stage: stage.name, runId: opts.runId, action: opts.newSlotLeft ? 'automatic rollback' : plan.action, at: (opts.now ?? new Date()).toISOString(), services, ...(files.length > 0 ? { files } : {}) };
  let file: string | undefined;
  try {
    file = await writeReport(opts.stateDir, report);
  } catch (err) {
    lines.push(`could not write the rollback data report under ${opts.stateDir}: ${describeError(err)}`);
  }
  // Only once the rows are safe in the file: the next report of each database (should traffic come back
  // to it and leave again) starts after them.
  for (const m of file ? marks : []) {
    try {
      const open = await openDb(m.conn);
      try { await markReported(open, m.upTo, opts.runId); } finally { await open.close(); }
    } catch (err) {
      lines.push(`could not mark the change log of ${describeConnection(m.conn)} as reported (a later report of it repeats these rows): ${describeError(err)}`);
    }
  }
  const filesWritten = files.some((f) => f.added.length + f.changed.length + f.removed.length > 0);
  lines.unshift(...reportLines(report, file), ...filesLeftLines(files), ...(file && filesWritten ? [`the files' paths and sizes are in ${file} (files are reported, not replayed: copy what you need from the slot left)`] : []));
  return { lines, report: withoutRows(report), counts: withFileCounts(countsOf(report), files), ...(file ? { file } : {}) };
}

/** The webhook's counts with each service's files beside its rows (a service with files only gets zero rows). */
function withFileCounts(counts: ChangeCounts, files: readonly FilesLeft[]): ChangeCounts {
  for (const [service, c] of Object.entries(filesCounts(files))) {
    counts[service] = { ...(counts[service] ?? { inserted: 0, updated: 0, deleted: 0, tables: {} }), files: c };
  }
  return counts;
}

/** The automatic rollback's report: logged as warnings (the run's error follows); never throws. */
export async function reportAutomaticRollback(stage: Stage, plan: Plan, recorded: StageState | undefined, runId: string, stateDir: string, logger: Logger, outputs: readonly FilesOutput[] = []): Promise<LeftBehind | undefined> {
  try {
    const left = await leftBehind(stage, plan, recorded, { stateDir, runId, newSlotLeft: true, outputs });
    for (const line of left.lines) logger.warn(line);
    return left;
  } catch (err) {
    logger.warn(`could not report what was written to the slot left by the automatic rollback: ${describeError(err)}`);
    return undefined;
  }
}
