/*
 * Runs started from the console: the same functions the CLI calls (promote, flip, rollback), in this
 * process, each with its own run log; their steps are kept for the run's page and sent live to every
 * open page of it (server-sent events).
 */
import { randomBytes } from 'node:crypto';
import type { Project } from '../config/model.js';
import { describeError } from '../errors.js';
import { createLogger } from '../log.js';
import { promote } from '../promote/promote.js';
import { flip } from '../promote/flip.js';
import { renderPlan } from '../plan/render.js';
import { runLogFile } from '../state/run-logs.js';
import type { StepEvent } from '../apply/context.js';
import type { PhaseTiming } from '../apply/apply.js';
import { readReport, type ChangeReport } from '../data/changes/report.js';
import { onLogEvent, onStepEvent, rolloutSteps, teeLogger, type RolloutStepView } from './rollout-view.js';

export type ConsoleAction = 'promote' | 'flip' | 'rollback';

export type RunEvent = ({ type: 'step' } & StepEvent) | ({ type: 'rollout' } & RolloutStepView) | { type: 'end'; ok: boolean; summary: string; report?: boolean };

export interface RunRecord {
  id: string; stage: string; action: ConsoleAction; dryRun: boolean; user: string; startedAt: string;
  services: string[];
  events: StepEvent[];
  planText?: string;
  /** Set when the run has ended. */
  summary?: string;
  ok?: boolean;
  timings?: PhaseTiming[];
  /** The rollout's steps (weights, state, the gate figures the run logs), when the plan has a rollout. */
  rollout?: RolloutStepView[];
  /** The written-data report this run left (a rollback, a flip, an automatic rollback), rows included. */
  report?: ChangeReport;
  listeners: Set<(e: RunEvent) => void>;
}

export class Runs {
  private readonly byId = new Map<string, RunRecord>();
  /** The phase times of the latest console run per stage, for /metrics. */
  readonly lastTimings = new Map<string, PhaseTiming[]>();
  constructor(private readonly project: Project) {}

  get(id: string): RunRecord | undefined { return this.byId.get(id); }

  start(request: { stage: string; action: ConsoleAction; dryRun: boolean; user: string; services: string[] }): RunRecord {
    const id = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
    const rec: RunRecord = { id, ...request, startedAt: new Date().toISOString(), events: [], listeners: new Set() };
    this.byId.set(id, rec);
    void this.execute(rec);
    return rec;
  }

  private emit(rec: RunRecord, e: RunEvent): void {
    if (e.type === 'step') {
      rec.events.push(e);
      const moved = rec.rollout && onStepEvent(rec.rollout, e);
      if (moved) this.emit(rec, { type: 'rollout', ...moved });
    }
    for (const l of rec.listeners) l(e);
  }

  private async execute(rec: RunRecord): Promise<void> {
    const runLogger = createLogger({ ...(rec.dryRun ? {} : { file: runLogFile(this.project.stateDir, rec.stage, rec.action, rec.id.slice(0, 24)) }), consoleLevel: 'warn' });
    // The gate figures the run logs are the ones the page shows.
    const logger = teeLogger(runLogger, (fields) => {
      const moved = rec.rollout && onLogEvent(rec.rollout, fields);
      if (moved) this.emit(rec, { type: 'rollout', ...moved });
    });
    const options = {
      project: this.project, stage: rec.stage, logger, dryRun: rec.dryRun, user: rec.user, runId: rec.id,
      ...(rec.services.length > 0 ? { services: rec.services } : {}),
      progress: (plan: Parameters<typeof renderPlan>[0]) => {
        rec.planText = renderPlan(plan);
        const steps = rolloutSteps(plan);
        if (steps.length > 0) rec.rollout = steps;
        return (e: StepEvent) => this.emit(rec, { type: 'step', ...e });
      },
    };
    try {
      const result = rec.action === 'promote' ? await promote(options) : await flip({ ...options, rollback: rec.action === 'rollback' });
      rec.planText ??= renderPlan(result.plan);
      rec.ok = true;
      if (result.apply) {
        rec.timings = result.apply.timings;
        this.lastTimings.set(rec.stage, result.apply.timings);
      }
      rec.summary = result.applied
        ? `done in ${result.durationMs} ms: ${result.plan.services.map((s) => `${s.service} serves ${s.release} from slot ${s.target}`).join(', ')}`
        : rec.dryRun ? 'dry run: nothing was changed' : `nothing to do: ${result.skipped ?? ''}`;
    } catch (err) {
      rec.ok = false;
      rec.summary = `failed: ${describeError(err)}`;
    } finally {
      await logger.close();
    }
    // A rollback, a flip or an automatic rollback left its report under this run's id (src/promote/left-writes.ts).
    if (!rec.dryRun) rec.report = await readReport(this.project.stateDir, rec.stage, rec.id).catch(() => undefined);
    this.emit(rec, endEvent(rec));
  }
}

export const endEvent = (rec: RunRecord): RunEvent => ({ type: 'end', ok: rec.ok === true, summary: rec.summary ?? '', ...(rec.report ? { report: true } : {}) });

/** What a page opened late is sent first: every step so far, the rollout's latest state, and the end if it came. */
export function replayEvents(rec: RunRecord): RunEvent[] {
  return [
    ...rec.events.map((e): RunEvent => ({ type: 'step', ...e })),
    ...(rec.rollout ?? []).map((r): RunEvent => ({ type: 'rollout', ...r })),
    ...(rec.summary !== undefined ? [endEvent(rec)] : []),
  ];
}
