/*
 * Runs one step's gate: reads every load balancer's `show stat` when the step begins, then once a
 * second; a window that already has enough requests and fails a gate ends the step at once (users see
 * the failure now, no point in waiting for the hold's end); at the hold's end it passes or fails; with
 * too few requests it waits up to the deadline and is then judged as onTooFew says.
 */
import { describeError, UpdateserverError } from '../errors.js';
import type { RolloutProgress } from '../state/rollout-control.js';
import type { ApplyContext } from '../apply/context.js';
import type { Action } from '../plan/plan.js';
import { countersOf, describeFigures, judge, sumWindows, windowOf, type BackendCounters, type GateFigures, type Verdict } from './gates.js';

export class GateFailed extends UpdateserverError {
  constructor(readonly service: string, readonly step: number, readonly gate: string, message: string, readonly figures: unknown) {
    super(message, { hint: 'all traffic went back to the old slot, whose release still runs; the new release is marked bad. Fix it and promote again' });
  }
}

export type Reading = Map<string, { old: BackendCounters; new: BackendCounters }>;

/** Every load balancer's counters of the two backends, as the gates and the pause read them. */
export async function read(ctx: ApplyContext, a: Pick<Extract<Action, { kind: 'gate' }>, 'loadBalancers' | 'oldBackend' | 'newBackend'>): Promise<Reading> {
  const out: Reading = new Map();
  await Promise.all(a.loadBalancers.map(async (name) => {
    const rows = await ctx.balancers[name]!.stat();
    out.set(name, { old: countersOf(rows, a.oldBackend), new: countersOf(rows, a.newBackend) });
  }));
  return out;
}

export function windowBetween(a: Reading, b: Reading, side: 'old' | 'new'): BackendCounters {
  return sumWindows([...b].map(([lb, now]) => windowOf(a.get(lb)?.[side] ?? now[side], now[side])));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runGate(ctx: ApplyContext, a: Extract<Action, { kind: 'gate' }>): Promise<Verdict> {
  const started = Date.now();
  const start = await read(ctx, a);
  // Where the rollout stands, for `updateserver status` in another process: its window starts here.
  const id = `${a.service}:${a.step}:${started}:${process.pid}`;
  const since = new Date(started).toISOString();
  await recordProgress(ctx, a, 'hold', id, start, undefined, { since });
  const tick = Math.max(100, Math.min(1000, a.holdMs));
  for (;;) {
    const elapsed = Date.now() - started;
    const final = elapsed >= a.deadlineMs;
    await sleep(Math.max(0, Math.min(tick, (elapsed < a.holdMs ? a.holdMs : a.deadlineMs) - elapsed)));
    const now = await read(ctx, a);
    const held = Date.now() - started >= a.holdMs;
    const verdict = judge(a.gates, windowBetween(start, now, 'old'), windowBetween(start, now, 'new'), final || Date.now() - started >= a.deadlineMs);
    const figures = describeFigures(verdict.figures);
    // The latest figures go with the progress: status, the console and /metrics show them from any process.
    await recordProgress(ctx, a, 'hold', id, start, undefined, { since, figures: verdict.figures });
    ctx.logger.debug(`${a.service} step ${a.step} (${a.weight}%) after ${Date.now() - started} ms: ${verdict.result}; ${figures}`, { event: 'rollout-gate', service: a.service, step: a.step, weight: a.weight, result: verdict.result, figures: verdict.figures });
    if (verdict.result === 'fail') {
      const message = `rollout of ${a.service} stopped at step ${a.step} (${a.weight}%): gate ${verdict.gate} failed: ${verdict.message}`;
      ctx.logger.error(message, { event: 'rollout-abort', service: a.service, step: a.step, gate: verdict.gate, figures: verdict.figures });
      throw new GateFailed(a.service, a.step, verdict.gate, message, verdict.figures);
    }
    if (verdict.result === 'pass' && held) {
      ctx.logger.info(`${a.service} step ${a.step} (${a.weight}%) passed after ${Date.now() - started} ms: ${figures}${verdict.note ? `; ${verdict.note}` : ''}`, { event: 'rollout-step', service: a.service, step: a.step, weight: a.weight, figures: verdict.figures });
      return verdict;
    }
  }
}

/** Writes where the rollout stands to the state backend; a failure to record is a warning, never the rollout's failure. */
export async function recordProgress(ctx: ApplyContext, a: Pick<Extract<Action, { kind: 'gate' }>, 'service' | 'step' | 'weight' | 'loadBalancers' | 'oldBackend' | 'newBackend' | 'gates' | 'steps'>, state: 'hold' | 'paused', id: string, start: Reading, deadline?: Date, extra: { since?: string; figures?: GateFigures } = {}): Promise<void> {
  if (!ctx.rollouts) return;
  const progress: RolloutProgress = {
    stage: ctx.stage.name, service: a.service, step: a.step, steps: a.steps ?? ctx.stage.services[a.service]?.rollout?.steps.length ?? a.step, weight: a.weight, state, id,
    since: extra.since ?? new Date().toISOString(), ...(extra.figures ? { figures: extra.figures } : {}), ...(deadline ? { deadline: deadline.toISOString() } : {}), pid: process.pid,
    oldBackend: a.oldBackend, newBackend: a.newBackend, loadBalancers: [...a.loadBalancers], gates: a.gates, start: Object.fromEntries(start),
  };
  try {
    await ctx.rollouts.writeProgress(progress);
  } catch (err) {
    if (state === 'paused') throw err;
    ctx.logger.warn(`recording the rollout's progress for status: ${describeError(err)}`);
  }
}
