/*
 * What a run leaves in the state store: the live slot and releases after a switch, releases that
 * failed their checks marked bad, the record of what passed the stage (the pipeline guard reads it
 * when the next stage is promoted), and one history line per run.
 */
import { userInfo } from 'node:os';
import type { Stage } from '../config/model.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Plan } from '../plan/plan.js';
import type { DataRecord, ReleaseRecord, StageState, StateStore } from '../state/store.js';
import type { Action } from '../plan/plan.js';
import { loadMigrations } from '../data/migrations/files.js';
import { describeConnection } from '../data/connection.js';
import { PromotionFailed } from '../apply/apply.js';
import type { ChangeReport } from '../data/changes/report.js';

/**
 * Records the slots after a switch; `markLeftBad` marks the releases traffic left as bad (a rollback);
 * `data` is what the data step left in each service's new slot database.
 */
export async function recordSwitch(store: StateStore, stage: Stage, plan: Plan, previous: StageState | undefined, at: Date, opts: { markLeftBad?: string | undefined; data?: Record<string, DataRecord> } = {}): Promise<void> {
  const { markLeftBad } = opts;
  const state: StageState = { stage: stage.name, services: { ...(previous?.services ?? {}) } };
  for (const s of plan.services) {
    const before = state.services[s.service];
    state.services[s.service] = {
      ...before,
      live: s.target,
      releases: { ...(before?.releases ?? {}), [s.target]: s.release, ...(s.liveRelease ? { [s.live]: s.liveRelease } : {}) },
      updated: at.toISOString(),
      ...(markLeftBad && s.liveRelease ? { bad: { ...(before?.bad ?? {}), [s.liveRelease]: markLeftBad } } : {}),
      ...(opts.data?.[s.service] ? { data: { ...(before?.data ?? {}), [s.target]: opts.data[s.service] } } : {}),
    };
  }
  for (const [svc, slot] of Object.entries(plan.liveAfter)) {
    if (!state.services[svc]) state.services[svc] = { live: slot, releases: {}, updated: at.toISOString() };
  }
  await store.write(state);
}

/**
 * One history line. `passed`: what passed the stage (the pipeline guard); `data`: the data version of
 * each service's slot that traffic went to, when known.
 */
export async function appendRun(store: StateStore, plan: Plan, result: 'ok' | 'failed' | 'rolled back', durationMs: number, at: Date, message?: string,
  extra: { passed?: Record<string, ReleaseRecord> | undefined; data?: Record<string, DataRecord | undefined> | undefined; user?: string | undefined; changes?: ChangeReport | undefined } = {}): Promise<void> {
  const { passed, data, changes } = extra;
  await store.appendHistory({
    at: at.toISOString(), stage: plan.stage, action: plan.action, result, user: extra.user ?? userInfo().username,
    services: Object.fromEntries(plan.services.map((s) => [s.service, { from: s.live, to: s.target, release: s.release, ...(data?.[s.service] ? { data: data[s.service] } : {}) }])),
    durationMs, ...(message === undefined ? {} : { message }), ...(passed === undefined ? {} : { passed }), ...(changes === undefined ? {} : { changes }),
  });
}

/**
 * What passed the stage in a run that switched traffic for good: per service, the release's code hash
 * (read by `codeHashOf`, from the relay cache or a host), the checksums of the migrations its
 * database was brought to and where its data snapshot came from.
 */
export async function passedRecords(stage: Stage, plan: Plan, codeHashOf: (service: string, release: string) => Promise<string>, at: Date): Promise<Record<string, ReleaseRecord>> {
  const out: Record<string, ReleaseRecord> = {};
  for (const s of plan.services) {
    const db = stage.services[s.service]?.database;
    const copy = plan.phases.flatMap((p) => p.items.flatMap((i) => i.actions)).find((a): a is Extract<Action, { kind: 'data-copy' }> => a.kind === 'data-copy' && a.service === s.service);
    const migrations = db && db.strategy !== 'none' ? await loadMigrations(db.migrations) : undefined;
    out[s.service] = {
      result: 'passed', codeHash: await codeHashOf(s.service, s.release), at: at.toISOString(),
      ...(migrations ? { migrations: Object.fromEntries(migrations.filter((m) => !m.baseline).map((m) => [String(m.version), m.checksum])) } : {}),
      ...(copy ? { dataSource: describeConnection(copy.source) } : {}),
    };
  }
  return out;
}

/** Adds the releases that passed to the stage's record (kept beside the slots, per release). */
export async function recordPassed(store: StateStore, stageName: string, passed: Record<string, ReleaseRecord>, plan: Plan): Promise<void> {
  const state = await store.read(stageName);
  if (!state) return;
  for (const s of plan.services) {
    const record = passed[s.service];
    const svc = state.services[s.service];
    if (record && svc) svc.passed = { ...(svc.passed ?? {}), [s.release]: record };
  }
  await store.write(state);
}

/**
 * A release that failed its health checks (before the switch, or after it: rolled back) is marked bad for the stage, so that a manual flip does not
 * send traffic to it without --force. Recording never hides the run's own error: failures here are logged.
 */
export async function recordFailure(store: StateStore, stage: Stage, plan: Plan, previous: StageState | undefined, err: unknown, durationMs: number, at: Date, logger: Logger, user?: string, changes?: ChangeReport): Promise<void> {
  try {
    const checkFailed = err instanceof PromotionFailed && (err.rolledBack || err.phase.startsWith('health-check'));
    if (checkFailed) {
      const state: StageState = { stage: stage.name, services: { ...(previous?.services ?? {}) } };
      for (const s of plan.services) {
        const before = state.services[s.service] ?? { live: s.live, releases: {}, updated: at.toISOString() };
        state.services[s.service] = { ...before, releases: { ...before.releases, [s.target]: s.release }, bad: { ...(before.bad ?? {}), [s.release]: describeError(err) } };
      }
      await store.write(state);
    }
    await appendRun(store, plan, err instanceof PromotionFailed && err.rolledBack ? 'rolled back' : 'failed', durationMs, at, describeError(err), { user, changes });
  } catch (recordErr) {
    logger.warn(`could not record the failed run: ${describeError(recordErr)}`);
  }
}
