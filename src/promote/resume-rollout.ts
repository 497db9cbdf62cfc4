/*
 * `--resume` after a run killed in the middle of a progressive rollout (issue 20): the split the run
 * left is still in force and its new slot still serves its share, so going on means going on from the
 * step the run had reached, not cleaning up and starting again from step 1. The interrupted run's own
 * plan (from its journal) is applied again without what it had done: the phases before the rollout,
 * and for each service the steps before the last one that began (that step is set and judged again,
 * from its start: its window is gone with the process). The failure paths stay the original plan's,
 * so a failed gate or an abort still stops the new slot that run started.
 */
import type { Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { failurePaths } from '../plan/failure.js';
import type { Plan, PlanItem } from '../plan/plan.js';
import type { Interrupted } from '../state/journal.js';

/** Phases past the rollout: once one began, traffic had moved as a whole and the clean-up decides. */
const PAST_ROLLOUT = ['switch', 'current', 'after-switch', 'post', 'watch', 'unfreeze', 'drain', 'stop-old', 'purge', 'after-drain'];

const stepOf = (title: string): number | undefined => {
  const m = /^step (\d+):/.exec(title);
  return m ? Number(m[1]) : undefined;
};

/** Per service (the rollout item's target), the last step whose action began. */
export function stepsReached(i: Interrupted): Map<string, number> {
  const reached = new Map<string, number>();
  for (const s of i.steps) {
    const n = s.phase === 'rollout' ? stepOf(s.title) : undefined;
    if (n !== undefined) reached.set(s.target, Math.max(n, reached.get(s.target) ?? 0));
  }
  return reached;
}

/**
 * The plan that goes on from where the interrupted promotion's rollout was, or undefined when it
 * cannot go on that way (not a promotion, no rollout begun, a step had failed, or it was past the rollout).
 */
export function resumedRolloutPlan(i: Interrupted, stage: Pick<Stage, 'loadBalancers' | 'services'>): Plan | undefined {
  const plan = i.start.plan;
  if (plan.action !== 'promote' || !i.phases.has('rollout')) return undefined;
  if (PAST_ROLLOUT.some((p) => i.phases.has(p)) || i.steps.some((s) => s.state === 'fail')) return undefined;
  const reached = stepsReached(i);
  const at = plan.phases.findIndex((p) => p.name === 'rollout');
  const trim = (item: PlanItem): PlanItem => {
    const k = reached.get(item.target);
    if (k === undefined) return item;
    const from = item.actions.findIndex((a) => stepOf(a.title) === k);
    // The new slot's servers are marked up again (harmless, and a reload may have reset them), then step k on.
    return { ...item, actions: [...item.actions.slice(0, from).filter((a) => a.kind === 'server-health'), ...item.actions.slice(from)] };
  };
  return {
    ...plan,
    onFailure: plan.onFailure ?? failurePaths(stage, plan),
    phases: plan.phases.map((p, n) => (n < at ? { ...p, items: [] } : n === at ? { ...p, items: p.items.map(trim) } : p)),
  };
}

/** One line for the log and the journal: where the resumed run goes on. */
export function describeResume(i: Interrupted): string {
  return `going on with the interrupted rollout from ${[...stepsReached(i)].map(([s, k]) => `step ${k} of ${s}`).join(', ')}`;
}

/** The release the fresh read phase found must be the one the interrupted run was rolling out. */
export function checkSameRelease(interrupted: Plan, fresh: Plan): void {
  // A first stage names its release by the time it is staged: there the slot and the services must agree
  // (the code's hash, recorded as passed, is the source's either way); a later stage's release has one name.
  const named = interrupted.from !== 'source';
  const key = (p: Plan) => p.services.map((s) => `${s.service} ${named ? `${s.release} ` : ''}-> slot ${s.target}`).sort().join(', ');
  if (key(interrupted) !== key(fresh)) {
    throw new UpdateserverError(`--resume: the interrupted run was rolling out ${key(interrupted)}, but now the release to promote is ${key(fresh)}; nothing was changed`, {
      hint: 'run with --abandon (all traffic back on the old slot, the new slot stopped), then promote again',
    });
  }
}
