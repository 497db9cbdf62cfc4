/*
 * Runs a plan. Until the switch, every failure leaves live traffic exactly where it was: the idle
 * slots that were started are stopped again and the error is reported with its host. The switch
 * itself is all-or-nothing across load balancers: if one fails, the ones already switched are put
 * back. After the switch the old slot keeps running until the post-switch checks and the watch window
 * have passed; a failure there switches traffic straight back to it (automatic rollback). Only then is
 * the old slot drained and stopped; problems from there on are warnings: the new release serves.
 */
import { describeError, UpdateserverError } from '../errors.js';
import { eachLimited } from '../transport/runner.js';
import type { CheckReport } from '../health/checks.js';
import type { DataRecord } from '../state/store.js';
import type { SnapshotResult } from '../data/snapshot.js';
import type { Balancer } from '../lb/balancer.js';
import type { Action, FailurePath, Phase, Plan, PlanItem } from '../plan/plan.js';
import { drainNewAction, failurePathOf, failurePaths } from '../plan/failure.js';
import { runAction, waitForNewSlot } from './actions.js';
import type { LeftBehind } from '../promote/left-writes.js';
import type { ApplyContext } from './context.js';
import { runFinally } from '../hooks/run.js';
import { backendOfMapEntry, slotOfMapEntry } from '../config/slot.js';
import { policyOf } from './policy.js';

export interface PhaseTiming { phase: string; ms: number }
export interface ApplyResult {
  timings: PhaseTiming[]; warnings: string[]; transfers: Array<{ host: string; bytesSent: number }>; reports: CheckReport[]; data: Record<string, DataRecord>; snapshots: SnapshotResult[];
  /** The report step's: what users wrote to the slot traffic left (a flip or rollback). */
  left?: LeftBehind;
}

export class PromotionFailed extends UpdateserverError {
  /**
   * @param liveUntouched the slot that was live before the run serves the traffic (never switched, or switched back)
   * @param rolledBack traffic had moved to the new slot and was switched back
   */
  constructor(readonly phase: string, cause: unknown, readonly liveUntouched: boolean, readonly rolledBack = false) {
    super(`${phase} failed: ${describeError(cause)}${rolledBack ? '\ntraffic was switched back to the previous slot (automatic rollback)' : ''}`, {
      cause,
      hint: !liveUntouched
        ? 'the load balancers may disagree: check `updateserver status` and fix them by hand before the next run'
        : rolledBack ? 'the previous release serves again; the new one is marked bad. Fix it and promote again'
          // The cause's own advice (a failed migration says where to fix it, per strategy) beats a generic one.
          : `live traffic was not touched; ${cause instanceof UpdateserverError && cause.hint ? cause.hint : 'fix the cause above and run again'}`,
    });
  }
}

/**
 * Fault-injection hook for the crash tests (test/integration/kill-points.test.ts), never for operators:
 * UPDATESERVER_KILL_AT=<phase>:<n> makes the process SIGKILL itself right after the journal records the
 * end of the n-th step (1-based, in completion order) of that phase; <phase>:<n>:begin right after it
 * records the step's begin, before the step runs. It is how a test reaches one exact step boundary
 * every time instead of racing a timer. Inert unless the variable is set.
 */
const KILL_AT = parseKillAt(process.env.UPDATESERVER_KILL_AT);
const killCounts = new Map<string, number>();

export function parseKillAt(value: string | undefined): { phase: string; n: number; at: 'begin' | 'end' } | undefined {
  if (!value) return undefined;
  const m = /^([a-z-]+):(\d+)(?::(begin|end))?$/.exec(value);
  if (!m) throw new Error(`UPDATESERVER_KILL_AT=${value}: expected <phase>:<n>[:begin|:end]`);
  return { phase: m[1]!, n: Number(m[2]), at: (m[3] as 'begin' | 'end' | undefined) ?? 'end' };
}

function killPoint(phaseName: string, state: 'begin' | 'end'): void {
  if (!KILL_AT || KILL_AT.phase !== phaseName || KILL_AT.at !== state) return;
  const key = `${phaseName}:${state}`;
  const n = (killCounts.get(key) ?? 0) + 1;
  killCounts.set(key, n);
  if (n === KILL_AT.n) process.kill(process.pid, 'SIGKILL');
}

/** Runs one action, journalled before and after; progress listeners hear the same three moments. */
async function step(ctx: ApplyContext, phaseName: string, target: string, action: Action): Promise<void> {
  await (await stepEndingLater(ctx, phaseName, target, action)).ended;
}

/**
 * step() that resolves once the action has run, with the promise that its end entry is durable. Only
 * an ordered journal (the local file: an entry is durable with all before it) lets the caller go on to
 * the host's next step without waiting for it: that step's begin entry, awaited before it runs, makes
 * the end durable too. The caller awaits the promise after the host's last step. With the crash tests'
 * kill points set, the end is awaited here, so a kill point means what it says.
 */
async function stepEndingLater(ctx: ApplyContext, phaseName: string, target: string, action: Action): Promise<{ ended: Promise<void> }> {
  ctx.logger.debug(action.title, { host: target, action });
  await ctx.journal?.step(phaseName, target, action.title, 'begin');
  ctx.onStep?.({ phase: phaseName, target, title: action.title, state: 'begin' });
  if (ctx.journal) killPoint(phaseName, 'begin');
  try {
    await runAction(ctx, action);
  } catch (err) {
    // Recording the failure must not hide it.
    await ctx.journal?.step(phaseName, target, action.title, 'fail', describeError(err)).catch((e: unknown) => ctx.logger.warn(`journal: ${describeError(e)}`));
    ctx.onStep?.({ phase: phaseName, target, title: action.title, state: 'fail', error: describeError(err) });
    throw err;
  }
  const ended = ctx.journal?.step(phaseName, target, action.title, 'end') ?? Promise.resolve();
  if (!ctx.journal?.ordered || KILL_AT) await ended;
  // Heard by whoever awaits it; this keeps a failed write from being an unhandled rejection meanwhile.
  ended.catch(() => {});
  ctx.onStep?.({ phase: phaseName, target, title: action.title, state: 'end' });
  if (ctx.journal) killPoint(phaseName, 'end');
  // Wrapped: an async function returning the promise itself would wait for it.
  return { ended };
}

async function runItems(ctx: ApplyContext, phaseName: string, items: readonly PlanItem[]): Promise<void> {
  const settled = await eachLimited(items, ctx.stage.parallel, async (item) => {
    // Each end entry is durable once the next step's begin is; the last one is awaited here.
    const ends: Array<Promise<void>> = [];
    for (const action of item.actions) ends.push((await stepEndingLater(ctx, phaseName, item.target, action)).ended);
    await Promise.all(ends);
  });
  const failures = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length === 0) return;
  for (const f of failures.slice(1)) ctx.logger.error(describeError(f.reason));
  throw failures[0]!.reason;
}

/** The plan's phases of these names, in the plan's order (start, check and stop-old come once per tier). */
function phasesNamed(plan: Plan, names: ReadonlyArray<Phase['name']>): Phase[] {
  return plan.phases.filter((p) => names.includes(p.name));
}

function phase(plan: Plan, name: Phase['name']): Phase {
  return plan.phases.find((x) => x.name === name) ?? { name, title: name, items: [] };
}

export async function applyPlan(ctx: ApplyContext, plan: Plan): Promise<ApplyResult> {
  const timings: PhaseTiming[] = [];
  const started = Date.now();
  try {
    const result = await runPhases(ctx, plan, timings);
    await runFinally(ctx, plan.finally, undefined, false);
    return result;
  } catch (err) {
    // The failed and finished hooks (issue 19) never change the result nor hide the error.
    await runFinally(ctx, plan.finally, err, err instanceof PromotionFailed && err.rolledBack);
    throw err;
  } finally {
    // The run's JSON log keeps what the summary line prints, failed runs included (the phases that ran).
    ctx.logger.debug(`phase times: ${timings.map((t) => `${t.phase} ${t.ms} ms`).join(', ') || 'none'}`, { event: 'phase-times', timings, totalMs: Date.now() - started });
  }
}

async function runPhases(ctx: ApplyContext, plan: Plan, timings: PhaseTiming[]): Promise<ApplyResult> {
  const paths = plan.onFailure ?? failurePaths(ctx.stage, plan);
  // The phases run in the plan's order, the order the dry run printed; what a failure means is the phase's policy.
  for (const [i, p] of plan.phases.entries()) {
    if (p.items.length === 0) continue;
    const policy = policyOf(p, i, plan.phases);
    const t0 = Date.now();
    ctx.logger.info(`${p.title}...`);
    try {
      if (policy === 'switch') await switchAll(ctx, plan, p, failurePathOf(paths, p.name));
      else await runItems(ctx, p.name, p.items);
    } catch (err) {
      switch (policy) {
        case 'switch': throw err;
        case 'stop':
          // Before the switch: the failure path stops what was started and ends the freeze; live is untouched.
          await runFailurePath(ctx, plan, failurePathOf(paths, p.name));
          throw new PromotionFailed(p.title.toLowerCase(), err, true);
        case 'fail':
          await runFailurePath(ctx, plan, failurePathOf(paths, p.name));
          throw err;
        case 'rollback': {
          // The old slot still runs: traffic goes straight back to it.
          const t1 = Date.now();
          const restored = await runFailurePath(ctx, plan, failurePathOf(paths, p.name));
          ctx.logger.warn(`automatic rollback ${restored ? 'done' : 'INCOMPLETE'} in ${Date.now() - t1} ms`);
          timings.push({ phase: 'rollback', ms: Date.now() - t1 });
          throw new PromotionFailed(p.title.toLowerCase(), err, restored, true);
        }
        case 'warn': {
          const msg = `${p.title}: ${describeError(err)} (traffic is already on the new slot)`;
          ctx.warnings.push(msg);
          ctx.logger.warn(msg);
        }
      }
    }
    timings.push({ phase: p.name, ms: Date.now() - t0 });
  }
  return { timings, warnings: ctx.warnings, transfers: ctx.transfers ?? [], reports: ctx.reports, data: ctx.data ?? {}, snapshots: ctx.snapshots ?? [], ...(ctx.left ? { left: ctx.left } : {}) };
}

/**
 * Runs a failure path of the plan, phase by phase. Nothing in it throws: each failure is logged and
 * the path goes on (clean-up never hides the original error). `only`: the load balancers to revert and
 * drain (after a failed switch, those whose switch began). Returns whether every revert was confirmed.
 */
async function runFailurePath(ctx: ApplyContext, plan: Plan, path: FailurePath | undefined, only?: ReadonlySet<string>): Promise<boolean> {
  let restored = true;
  for (const p of path?.phases ?? []) {
    const items = p.name === 'revert' || p.name === 'drain-new' ? p.items.filter((i) => !only || only.has(i.target)) : p.items;
    const settled = await eachLimited(items, p.name === 'stop-new' ? ctx.stage.parallel : Math.max(1, items.length), async (item) => {
      for (const action of item.actions) {
        try {
          if (action.kind === 'revert-map') restored = (await revertMap(ctx, plan, action)) && restored;
          else await runAction(ctx, action);
        } catch (err) {
          if (p.name === 'unfreeze') ctx.logger.error(`could not end the write freeze on ${item.target}: ${describeError(err)}; run: updateserver maintenance ${plan.stage} off`);
          else if (p.name === 'stop-new') ctx.logger.warn(`could not stop the new slot on ${item.target}: ${describeError(err)}`);
          else ctx.logger.warn(`${p.title.toLowerCase()} on ${item.target}: ${describeError(err)}`);
        }
      }
    });
    settled.forEach((r, i) => { if (r.status === 'rejected') ctx.logger.warn(`${p.title.toLowerCase()} on ${items[i]?.target}: ${describeError(r.reason)}`); });
    if (p.name === 'stop-new' && items.length > 0) ctx.logger.info('stopped the new slot again');
  }
  return restored;
}

/**
 * Switches load balancers one after another. When one fails, those already switched (and the one
 * that failed) get their previous map entries back, so all load balancers keep agreeing on the live slot.
 */
async function switchAll(ctx: ApplyContext, plan: Plan, switchPhase: Phase, onFailure: FailurePath | undefined): Promise<void> {
  const begun = new Set<string>();
  for (const item of switchPhase.items) {
    begun.add(item.target);
    try {
      for (const action of item.actions) await step(ctx, switchPhase.name, item.target, action);
    } catch (err) {
      const reverted = await runFailurePath(ctx, plan, onFailure, begun);
      throw new PromotionFailed(`${switchPhase.name === 'switch' ? 'switching traffic' : switchPhase.title.toLowerCase()} on ${item.target}`, err, reverted);
    }
  }
}

/**
 * After traffic went back to the old slots: lets the requests the new slots received in the meantime
 * finish before the new slot is stopped (up to drainTimeoutMs), as the drain does for the old slot after a
 * good switch. Without it, a request that reached the new slot in those milliseconds (a write) was cut
 * off by the stop and failed. Failures here are only logged: the stop follows anyway.
 */
export async function drainNew(ctx: ApplyContext, plan: Plan, lbNames: readonly string[]): Promise<void> {
  await Promise.all(lbNames.map((name) => waitForNewSlot(ctx, drainNewAction(ctx.stage, plan, name))));
}

/** Points one load balancer's map back at the slots that were live before the run; true when it reads back so. */
async function revertMap(ctx: ApplyContext, plan: Plan, action: Extract<Action, { kind: 'revert-map' }>): Promise<boolean> {
  const name = action.loadBalancer;
  const balancer = ctx.balancers[name]!;
  let refused: unknown;
  try {
    for (const [key, value] of Object.entries(action.entries)) await balancer.setMap(action.file, key, value);
  } catch (err) {
    refused = err;
  }
  // Read back, as after a switch: the load balancer whose switch failed may refuse this too and yet never
  // have moved, and a command lost on its way can look like one that worked.
  const wrong = await notAsBefore(balancer, action, plan);
  if (wrong === undefined) {
    // Operators (and the fault tests) read these words: a promotion's revert names slots.
    const what = plan.services.length > 0 ? ['switched back to the previous slots', 'on the previous slots (it had not switched; switching it back said'] : ['put back as it was', 'as it was (it had not changed; putting it back said'];
    ctx.logger.warn(refused === undefined ? `${name}: ${what[0]}` : `${name}: ${what[1]}: ${describeError(refused)})`);
    return true;
  }
  ctx.logger.error(`${name}: could not switch back: ${refused === undefined ? wrong : describeError(refused)}; check it by hand (updateserver status ${plan.stage})`);
  return false;
}

/**
 * Undefined when a load balancer's runtime map holds what the revert puts back: for a service, its
 * slot live before the run (no entry is the default slot); for any other entry (maintenance, the write
 * freeze), its value then (no entry reads as off). Otherwise what is wrong. The map file is rewritten
 * from the runtime map either way: the file must say what is in force, so that a reload does not bring
 * back a state nobody sees in `show map`.
 */
async function notAsBefore(balancer: Balancer, action: Extract<Action, { kind: 'revert-map' }>, plan: Plan): Promise<string | undefined> {
  try {
    const map = await balancer.readMap(action.file);
    await balancer.persistMap(action.file);
    const services = new Map(plan.services.map((s) => [s.service, s.live]));
    const wrong = Object.entries(action.entries).filter(([key, value]) => (services.has(key)
      ? slotOfMapEntry(key, map.get(key)) !== services.get(key)
      : (map.get(key) ?? 'off') !== value));
    if (wrong.length > 0) return `its map still says ${wrong.map(([key]) => `${key} -> ${services.has(key) ? backendOfMapEntry(key, map.get(key)) : map.get(key) ?? 'off'}`).join(', ')}`;
    return undefined;
  } catch (err) {
    return describeError(err);
  }
}

/**
 * Cleans up after a run that died, from its plan and how far its journal got, never touching the slot
 * that was live before it unless traffic had already moved:
 *   - drain or later began: the new slot had passed its checks and serves; the old one is stopped.
 *   - the switch began: every load balancer goes back to the previous slot, the new slot is stopped.
 *   - earlier: the new slot is stopped if it was started.
 * A write freeze is always ended. Returns what was done, for the operator.
 */
export async function recoverPlan(ctx: ApplyContext, plan: Plan, phasesBegun: ReadonlySet<string>): Promise<{ switched: boolean; summary: string }> {
  const done: string[] = [];
  let switched = false;
  const paths = plan.onFailure ?? failurePaths(ctx.stage, plan);
  // Verbs that move no slot: their own failure path (maintenance: every load balancer back as it was, so
  // that all agree again), else nothing to undo.
  if (plan.action === 'maintenance' || plan.action === 'purge' || plan.action === 'refresh') {
    const begun = plan.phases.find((p) => phasesBegun.has(p.name));
    if (begun) await runFailurePath(ctx, plan, failurePathOf(paths, begun.name));
    const said = { maintenance: 'the maintenance entries were put back as they were on every load balancer; run the maintenance command again',
      purge: 'some old releases may be left: run purge again', refresh: 'the refreshed slot\'s database may be incomplete: run refresh again before sending traffic to it' };
    return { switched: false, summary: begun ? said[plan.action] : 'nothing had changed' };
  }
  // The failure path without its end of the freeze, which runs last whatever the case, and without the
  // after-rollback hooks: recovery runs no hook (docs/decisions/0014-hooks-and-release-mail.md).
  const withoutUnfreeze = (p: FailurePath | undefined): FailurePath | undefined => p && { ...p, phases: p.phases.filter((x) => x.name !== 'unfreeze' && x.name !== 'after-rollback') };
  if (['unfreeze', 'drain', 'stop-old', 'purge'].some((p) => phasesBegun.has(p))) {
    switched = true;
    for (const p of phasesNamed(plan, ['stop-old'])) await runItems(ctx, 'stop-old', p.items).catch((err) => ctx.logger.warn(`stopping the old slot: ${describeError(err)}`));
    done.push('the new slot had passed its checks and keeps the traffic; the old slot was stopped');
  } else if (['rollout', 'switch', 'current', 'post', 'watch'].some((p) => phasesBegun.has(p))) {
    const restored = await runFailurePath(ctx, plan, withoutUnfreeze(failurePathOf(paths, 'post')));
    done.push(restored ? 'traffic was put back on the previous slot and the new slot stopped' : 'COULD NOT put every load balancer back: check `updateserver status`');
  } else if (['data', 'start', 'check'].some((p) => phasesBegun.has(p))) {
    await runFailurePath(ctx, plan, withoutUnfreeze(failurePathOf(paths, 'start')));
    done.push('traffic had not moved; the new slot was stopped');
  } else {
    done.push('traffic had not moved; nothing had started');
  }
  if (phasesBegun.has('freeze')) {
    await runFailurePath(ctx, plan, { on: [], title: 'end the write freeze', phases: [{ name: 'unfreeze', title: 'End the write freeze', items: phase(plan, 'unfreeze').items }] });
    done.push('the write freeze was ended');
  }
  return { switched, summary: done.join('; ') };
}
