/*
 * What a run does when a step fails, as plan data: the dry run shows it, apply runs it, and a recording
 * of a failed run can be compared with it. Built from the plan's own steps: each start's undo stops
 * the new slot again; each switch is undone by pointing the load balancer back at the slots live
 * before; a write freeze is always ended.
 */
import type { Stage } from '../config/model.js';
import { backendName, weightKey } from '../config/slot.js';
import type { Action, FailurePath, Phase, PhaseName, Plan, PlanItem } from './plan.js';

/** The undo of a start: stop the slot it started. */
function stopNew(plan: Pick<Plan, 'phases'>): Phase {
  const start = plan.phases.find((p) => p.name === 'start')?.items ?? [];
  const items: PlanItem[] = start.map((item) => ({
    target: item.target,
    actions: item.actions.flatMap((a): Action[] => (a.kind === 'exec' && a.undo ? [{ kind: 'exec', host: a.host, command: a.undo.command, title: a.undo.title }] : [])),
  })).filter((i) => i.actions.length > 0);
  return { name: 'stop-new', title: 'Stop the new slot again', items };
}

/** Load balancers that take part in the switch. */
const switched = (plan: Pick<Plan, 'phases'>) => plan.phases.find((p) => p.name === 'switch')?.items.map((i) => i.target) ?? [];

/** Points a load balancer's map back at the slots live before the run, reads it back and rewrites the map file. */
export function revertAction(stage: Pick<Stage, 'loadBalancers'>, plan: Pick<Plan, 'services'>, lb: string): Extract<Action, { kind: 'revert-map' }> {
  return {
    kind: 'revert-map', loadBalancer: lb, file: stage.loadBalancers[lb]!.mapFile,
    // A rollout's weight 0 comes first: that one command puts all of the service's new requests back on the old slot.
    entries: Object.fromEntries([
      ...plan.services.filter((s) => s.rollout).map((s) => [weightKey(s.service), '0']),
      ...plan.services.map((s) => [s.service, backendName(s.service, s.live)]),
    ]),
    title: 'switch back to the previous slots',
  };
}

/** Lets the requests the new slot received finish before it is stopped (at most the longest drainTimeoutMs). */
export function drainNewAction(stage: Pick<Stage, 'services'>, plan: Pick<Plan, 'services'>, lb: string): Extract<Action, { kind: 'drain-new' }> {
  return {
    kind: 'drain-new', loadBalancer: lb, backends: plan.services.map((s) => backendName(s.service, s.target)),
    deadlineMs: Math.max(0, ...plan.services.map((s) => stage.services[s.service]?.drainTimeoutMs ?? 0)),
    title: 'wait for the requests the new slot received to finish',
  };
}

export function failurePaths(stage: Pick<Stage, 'loadBalancers' | 'services'>, plan: Pick<Plan, 'phases' | 'services'>): FailurePath[] {
  const unfreeze: Phase = { name: 'unfreeze', title: 'End the write freeze', items: plan.phases.find((p) => p.name === 'unfreeze')?.items ?? [] };
  const lbs = switched(plan);
  // A progressive rollout's steps move traffic like the switch: a failed gate is undone like a failed post check.
  const rolls = plan.phases.some((p) => p.name === 'rollout' && p.items.length > 0);
  const revert: Phase = { name: 'revert', title: 'Switch every load balancer back to the previous slots', items: lbs.map((lb) => ({ target: lb, actions: [revertAction(stage, plan, lb)] })) };
  const drain: Phase = { name: 'drain-new', title: 'Let the new slot\'s requests finish', items: lbs.map((lb) => ({ target: lb, actions: [drainNewAction(stage, plan, lb)] })) };
  const path = (on: PhaseName[], title: string, phases: Phase[]): FailurePath => ({ on, title, phases: phases.filter((p) => p.items.length > 0) });
  return [
    path(['freeze', 'copy'], 'nothing started, live traffic untouched', [unfreeze]),
    path(['data', 'start', 'check'], 'live traffic untouched; the new slot is stopped again', [stopNew(plan), unfreeze]),
    // Only the load balancers whose switch began are switched back (the others never moved).
    path(['switch'], 'the load balancers switched so far go back, so that all agree; the new slot is stopped', [revert, drain, stopNew(plan), unfreeze]),
    path([...(rolls ? ['rollout' as const] : []), 'post', 'watch'], 'automatic rollback: every load balancer goes back to the old slot, which still runs', [revert, drain, stopNew(plan), unfreeze]),
  ];
}

/** The failure path that runs when a step of `phase` fails (none after the watch: the new slot serves). */
export function failurePathOf(paths: readonly FailurePath[], phase: PhaseName): FailurePath | undefined {
  return paths.find((p) => p.on.includes(phase));
}
