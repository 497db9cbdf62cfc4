/*
 * Runs a plan. Until the switch, every failure leaves live traffic exactly where it was: the idle
 * slots that were started are stopped again and the error is reported with its host. The switch
 * itself is all-or-nothing across load balancers: if one fails, the ones already switched are put
 * back. After the switch, problems with the old slot are warnings: the new release already serves.
 */
import { describeError, UpdateserverError } from '../errors.js';
import { eachLimited } from '../transport/runner.js';
import type { Phase, Plan, PlanItem } from '../plan/plan.js';
import { runAction } from './actions.js';
import type { ApplyContext } from './context.js';

export interface PhaseTiming { phase: string; ms: number }
export interface ApplyResult { timings: PhaseTiming[]; warnings: string[]; transfers: Array<{ host: string; bytesSent: number }> }

export class PromotionFailed extends UpdateserverError {
  constructor(readonly phase: string, cause: unknown, readonly liveUntouched: boolean) {
    super(`${phase} failed: ${describeError(cause)}`, {
      cause,
      hint: liveUntouched ? 'live traffic was not touched; fix the cause above and run again' : undefined,
    });
  }
}

async function runItems(ctx: ApplyContext, items: readonly PlanItem[]): Promise<void> {
  const settled = await eachLimited(items, ctx.stage.parallel, async (item) => {
    for (const action of item.actions) {
      ctx.logger.debug(action.title, { host: item.target, action });
      await runAction(ctx, action);
    }
  });
  const failures = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length === 0) return;
  for (const f of failures.slice(1)) ctx.logger.error(describeError(f.reason));
  throw failures[0]!.reason;
}

function phase(plan: Plan, name: Phase['name']): Phase {
  const p = plan.phases.find((x) => x.name === name);
  if (!p) throw new Error(`internal: plan has no ${name} phase`);
  return p;
}

export async function applyPlan(ctx: ApplyContext, plan: Plan): Promise<ApplyResult> {
  const timings: PhaseTiming[] = [];
  const warnings = ctx.warnings;
  const timed = async (name: string, fn: () => Promise<void>) => {
    const t0 = Date.now();
    ctx.logger.info(`${name}...`);
    await fn();
    timings.push({ phase: name, ms: Date.now() - t0 });
  };

  // Before the switch: any failure stops the idle slots again and leaves live alone.
  for (const name of ['copy', 'start', 'check'] as const) {
    try {
      await timed(phase(plan, name).title, () => runItems(ctx, phase(plan, name).items));
    } catch (err) {
      if (name !== 'copy') await stopIdle(ctx, plan);
      throw new PromotionFailed(phase(plan, name).title.toLowerCase(), err, true);
    }
  }

  await timed(phase(plan, 'switch').title, () => switchAll(ctx, plan));

  for (const name of ['drain', 'stop-old', 'purge'] as const) {
    try {
      await timed(phase(plan, name).title, () => runItems(ctx, phase(plan, name).items));
    } catch (err) {
      const msg = `${phase(plan, name).title}: ${describeError(err)} (traffic is already on the new slot)`;
      warnings.push(msg);
      ctx.logger.warn(msg);
    }
  }
  return { timings, warnings, transfers: ctx.transfers ?? [] };
}

/** The start phase's stop/start pairs, reused to stop what was started. Failures here are only logged. */
async function stopIdle(ctx: ApplyContext, plan: Plan): Promise<void> {
  const stops = phase(plan, 'start').items.map((item) => ({ target: item.target, actions: item.actions.filter((a) => a.title.startsWith('stop idle')) }));
  const settled = await eachLimited(stops, ctx.stage.parallel, async (item) => {
    for (const a of item.actions) await runAction(ctx, a);
  });
  settled.forEach((r, i) => {
    if (r.status === 'rejected') ctx.logger.warn(`could not stop the idle slot on ${stops[i]?.target}: ${describeError(r.reason)}`);
  });
  ctx.logger.info('stopped the idle slot again; live traffic was not touched');
}

/**
 * Switches load balancers one after another. When one fails, those already switched get their
 * previous map entries back, so all load balancers keep agreeing on the live slot.
 */
async function switchAll(ctx: ApplyContext, plan: Plan): Promise<void> {
  const items = phase(plan, 'switch').items;
  const done: string[] = [];
  for (const item of items) {
    try {
      for (const action of item.actions) await runAction(ctx, action);
      done.push(item.target);
    } catch (err) {
      const reverted = await revert(ctx, plan, [...done, item.target]);
      await stopIdle(ctx, plan);
      throw new PromotionFailed(`switching traffic on ${item.target}`, err, reverted);
    }
  }
}

async function revert(ctx: ApplyContext, plan: Plan, lbNames: readonly string[]): Promise<boolean> {
  let ok = true;
  for (const name of lbNames) {
    const lb = ctx.stage.loadBalancers[name]!;
    const balancer = ctx.balancers[name]!;
    try {
      for (const s of plan.services) await balancer.setMap(lb.mapFile, s.service, `${s.service}_${s.live}`);
      await balancer.persistMap(lb.mapFile);
      ctx.logger.warn(`${name}: switched back to the previous slots`);
    } catch (err) {
      ok = false;
      ctx.logger.error(`${name}: could not switch back: ${describeError(err)}; check it by hand (updateserver status ${plan.stage})`);
    }
  }
  return ok;
}
