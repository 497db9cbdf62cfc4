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
    const wanted = report.services.filter((s) => (options.services?.length ? options.services.includes(s.service) : true) && (s.changes?.length ?? 0) > 0);
    if (wanted.length === 0) throw new UpdateserverError(`the report of run ${options.runId} has no change to replay${options.services?.length ? ` for ${options.services.join(', ')}` : ''}`);
    try {
      for (const svc of wanted) {
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
          const result = await replayChanges(open, svc, { dryRun: options.dryRun === true, skip: options.skip ?? [] });
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
          replay: { run: options.runId, skip: options.skip ?? [], statements: Object.fromEntries(results.map((r) => [r.service, r.statements])) },
        }).catch((e: unknown) => logger.warn(`could not record the replay in the history: ${describeError(e)}`));
      }
    }
    return { stage: stage.name, runId: options.runId, dryRun: options.dryRun === true, services: results };
  } finally {
    await lock?.release().catch((err: unknown) => logger.warn(`could not release the lock: ${describeError(err)}`));
    await state.close().catch((err: unknown) => logger.warn(`closing the state store: ${describeError(err)}`));
  }
}
