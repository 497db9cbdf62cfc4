/*
 * A rollout step held for a person (issue 20, part 4; docs/decisions/0016): the share set by the step
 * stays, the run keeps the stage's lock and records the pause (its id, deadline and the counters at its
 * start) in the state backend, then polls that backend for an answer: `updateserver continue <stage>`
 * ends the pause and the rollout goes on; `updateserver abort <stage>`, or the deadline passing, fails the
 * step like a failed gate (all traffic back on the old slot at once, the new slot drained and stopped,
 * the release marked bad). Polling the shared state is what lets any operator answer, from any machine
 * and from the console, with the local state directory or PostgreSQL alike.
 */
import { describeError, UpdateserverError } from '../errors.js';
import type { ApplyContext } from '../apply/context.js';
import type { Action } from '../plan/plan.js';
import { read, recordProgress, windowBetween, type Reading } from './gate.js';
import { describeFigures, figuresOf } from './gates.js';

/** How often the paused run looks for an answer: an operator waits at most this long for it to act. */
export const PAUSE_POLL_MS = 250;

/** A pause that ended the rollout: aborted by someone, or its deadline passed. */
export class PauseEnded extends UpdateserverError {
  constructor(readonly service: string, readonly step: number, readonly reason: 'abort' | 'deadline', message: string, readonly user?: string) {
    super(message, { hint: 'all traffic went back to the old slot, whose release still runs; the new release is marked bad. Promote again (--force for the same release)' });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function figuresSince(ctx: ApplyContext, a: Extract<Action, { kind: 'pause' }>, start: Reading): Promise<string> {
  try {
    const now = await read(ctx, a);
    return describeFigures(figuresOf(windowBetween(start, now, 'old'), windowBetween(start, now, 'new'), a.gates.latencyFloorMs));
  } catch (err) {
    return `figures not readable: ${describeError(err)}`;
  }
}

export async function runPause(ctx: ApplyContext, a: Extract<Action, { kind: 'pause' }>): Promise<void> {
  const control = ctx.rollouts;
  if (!control) throw new Error('internal: a rollout pause needs the stage\'s state backend');
  const started = Date.now();
  const deadline = new Date(started + a.deadlineMs);
  const id = `${a.stage}:${a.service}:${a.step}:${started}:${process.pid}`;
  const start = await read(ctx, a);
  await recordProgress(ctx, a, 'paused', id, start, deadline);
  const where = `rollout of ${a.service} paused at step ${a.step} (${a.weight}%)`;
  ctx.logger.warn(`${where}: run updateserver continue ${a.stage} to go on, or updateserver abort ${a.stage}; it aborts by itself at ${deadline.toISOString()} (pauseDeadlineMs ${a.deadlineMs})`,
    { event: 'rollout-pause', service: a.service, step: a.step, weight: a.weight, id, deadline: deadline.toISOString() });
  let lastError = '';
  for (;;) {
    let request;
    try {
      request = await control.readRequest(a.stage);
      lastError = '';
    } catch (err) {
      // A state backend that blinks does not end the pause; the deadline still does.
      const said = describeError(err);
      if (said !== lastError) ctx.logger.warn(`reading the answer to the pause: ${said} (still waiting)`);
      lastError = said;
    }
    if (request && request.id === id && !request.answered) {
      // Answered first, acted on after: whoever asked learns that the run took it.
      await control.request({ ...request, answered: new Date().toISOString() }).catch((err: unknown) => ctx.logger.warn(`acknowledging ${request.action}: ${describeError(err)}`));
      const figures = await figuresSince(ctx, a, start);
      if (request.action === 'continue') {
        ctx.logger.info(`${where}: continued by ${request.user} (${request.via}) after ${Date.now() - started} ms; during the pause: ${figures}`, { event: 'rollout-continue', service: a.service, step: a.step, user: request.user });
        return;
      }
      const message = `rollout of ${a.service} stopped at step ${a.step} (${a.weight}%): aborted by ${request.user} (${request.via === 'console' ? 'the console' : `updateserver abort ${a.stage}`}) during the pause; during the pause: ${figures}`;
      ctx.logger.error(message, { event: 'rollout-abort', service: a.service, step: a.step, gate: 'pause', user: request.user });
      throw new PauseEnded(a.service, a.step, 'abort', message, request.user);
    }
    if (Date.now() >= deadline.getTime()) {
      const figures = await figuresSince(ctx, a, start);
      const message = `rollout of ${a.service} stopped at step ${a.step} (${a.weight}%): the pause deadline passed (${a.deadlineMs} ms, pauseDeadlineMs) with no continue; during the pause: ${figures}`;
      ctx.logger.error(message, { event: 'rollout-abort', service: a.service, step: a.step, gate: 'pauseDeadline' });
      throw new PauseEnded(a.service, a.step, 'deadline', message);
    }
    await sleep(Math.min(PAUSE_POLL_MS, Math.max(0, deadline.getTime() - Date.now())));
  }
}
