/*
 * The report step of a flip or rollback, and of the automatic rollback's failure path: what users wrote
 * to the slot traffic left (src/promote/left-writes.ts). Never fails the run: traffic has already
 * moved, and a failure to read becomes a line of the report. What it found is kept for the run's
 * record (history, --json, the webhook).
 */
import { leftBehind } from '../promote/left-writes.js';
import type { Action } from '../plan/plan.js';
import type { ApplyContext } from './context.js';

export async function runReportChanges(ctx: ApplyContext, action: Extract<Action, { kind: 'report-changes' }>): Promise<void> {
  const facts = ctx.report;
  if (!facts) {
    ctx.logger.warn(`${action.title}: not run (this run keeps no state directory)`);
    return;
  }
  const left = await leftBehind(ctx.stage, action, facts.recorded, { stateDir: facts.stateDir, runId: ctx.runId ?? facts.now().toISOString(), now: facts.now(), outputs: ctx.outputs ?? [] });
  for (const line of left.lines) {
    ctx.logger.warn(line);
    ctx.warnings.push(line);
  }
  ctx.left = left;
}
