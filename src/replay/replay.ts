/*
 * `updateserver replay <stage> --run <id>`: applies what a rollback (or flip) left behind, as its
 * report recorded it (src/data/changes/report.ts), to the database that serves now. Only when the
 * operator asks; under the stage's lock; one transaction per service; refused as a whole on a schema
 * difference or a conflict (src/data/changes/replay.ts). Every statement goes into the history.
 */
import { userInfo } from 'node:os';
import { loadProfile } from '../config/load.js';
import { connectionOf, type Project } from '../config/model.js';
import { UpdateserverError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { openDb } from '../data/db.js';
import { readReport } from '../data/changes/report.js';
import { replayChanges, type ReplayResult } from '../data/changes/replay.js';
import { openState } from '../state/backend.js';
import { lockStage } from '../promote/lock.js';
import type { HistoryEntry } from '../state/store.js';

export interface ReplayOptions {
  project: Project;
  stage: string;
  runId: string;
  logger: Logger;
  dryRun?: boolean;
  services?: string[];
  /** Tables left out (their changes stay in the report). */
  skip?: string[];
  waitMs?: number;
}

export interface ReplayOutcome { stage: string; runId: string; dryRun: boolean; services: ReplayResult[] }

export async function replay(options: ReplayOptions): Promise<ReplayOutcome> {
  const { project, logger } = options;
  const stage = await loadProfile(project, options.stage);
  const report = await readReport(project.stateDir, stage.name, options.runId);
  const state = openState(project, stage);
  const lock = await lockStage(state, stage.name, { ...options, dryRun: options.dryRun === true });
  const started = Date.now();
  const results: ReplayResult[] = [];
  let failure: unknown;
  try {
    const recorded = await state.store.read(stage.name);
    // Replaying twice is not a no-op (a row inserted then updated would conflict with itself), so the
    // tables an earlier replay of this run applied are left out: a second replay takes only what the
    // first left out with --skip, and one with nothing left is refused.
    const done = alreadyReplayed(await state.store.history(stage.name, 10_000), options.runId);
    const skipOf = (service: string) => [...new Set([...(options.skip ?? []), ...(done.get(service) ?? [])])];
    const wanted = report.services.filter((s) => (options.services?.length ? options.services.includes(s.service) : true) && (s.changes?.length ?? 0) > 0);
    if (wanted.length === 0) throw new UpdateserverError(`the report of run ${options.runId} has no change to replay${options.services?.length ? ` for ${options.services.join(', ')}` : ''}`);
    const left = wanted.filter((s) => (s.changes ?? []).some((c) => !skipOf(s.service).includes(c.table)));
    if (left.length === 0) {
      throw new UpdateserverError(`run ${options.runId} was already replayed: every table of its report${options.services?.length ? ` for ${options.services.join(', ')}` : ''} was applied by an earlier replay or is left out with --skip`, {
        hint: `\`updateserver history ${stage.name} --json\` shows the earlier replay and its statements`,
      });
    }
    for (const s of wanted) {
      const again = (done.get(s.service) ?? []).filter((t) => (s.changes ?? []).some((c) => c.table === t));
      if (again.length > 0) logger.info(`${s.service}: left out, already replayed from run ${options.runId}: ${again.join(', ')}`);
    }
    try {
        for (const svc of left) {
        const db = stage.services[svc.service]?.database;
        if (!db) throw new UpdateserverError(`${svc.service} has no database in ${stage.file} any more`);
        // The report names the slot that served when it was written: replaying into another would be wrong.
        const live = recorded?.services[svc.service]?.live;
        if (live !== svc.servingSlot) {
          throw new UpdateserverError(`${svc.service}: the report of run ${options.runId} was made for slot ${svc.servingSlot} (${svc.servingDatabase}), but slot ${live ?? 'unknown'} serves now`, {
            hint: 'replay only into the database that served right after that rollback; traffic has moved since',
          });
        }
        const conn = connectionOf(db, svc.servingSlot);
        const open = await openDb(conn);
        try {
          const result = await replayChanges(open, svc, { dryRun: options.dryRun === true, skip: skipOf(svc.service) });
          results.push(result);
          logger.info(`${svc.service}: ${options.dryRun ? 'would replay' : 'replayed'} ${result.applied} change(s) into ${conn.database}${result.skipped.length ? `, ${result.skipped.length} skipped (already so)` : ''}${result.leftOut.length ? `; left out: ${result.leftOut.join(', ')}` : ''}`);
        } finally {
          await open.close();
        }
      }
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      if (!options.dryRun) {
        await state.store.appendHistory({
          at: new Date().toISOString(), stage: stage.name, action: 'replay', result: failure ? 'failed' : 'ok', user: userInfo().username,
          services: Object.fromEntries(wanted.map((s) => [s.service, { from: s.slot, to: s.servingSlot, release: '' }])), durationMs: Date.now() - started,
          ...(failure ? { message: describeError(failure) } : {}),
          replay: { run: options.runId, skip: options.skip ?? [], statements: Object.fromEntries(results.map((r) => [r.service, r.statements])), tables: Object.fromEntries(results.map((r) => [r.service, r.tables])) },
        }).catch((e: unknown) => logger.warn(`could not record the replay in the history: ${describeError(e)}`));
      }
    }
    return { stage: stage.name, runId: options.runId, dryRun: options.dryRun === true, services: results };
  } finally {
    await lock?.release().catch((err: unknown) => logger.warn(`could not release the lock: ${describeError(err)}`));
    await state.close().catch((err: unknown) => logger.warn(`closing the state store: ${describeError(err)}`));
  }
}

/**
 * Per service, the tables earlier successful replays of a run applied (from the history). An entry
 * written before `tables` was recorded counts every table of its statements' service as applied,
 * except those it left out.
 */
export function alreadyReplayed(history: readonly HistoryEntry[], runId: string): Map<string, string[]> {
  const done = new Map<string, string[]>();
  for (const e of history) {
    if (e.action !== 'replay' || e.result !== 'ok' || e.replay?.run !== runId) continue;
    for (const [service, tables] of Object.entries(e.replay.tables ?? {})) done.set(service, [...new Set([...(done.get(service) ?? []), ...tables])]);
  }
  return done;
}
