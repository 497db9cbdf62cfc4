/*
 * What a run does when a step fails, as plan data: the dry run shows it, apply runs it, and a recording
 * of a failed run can be compared with it. Built from the plan's own steps: each start's undo stops
 * the new slot again; each switch is undone by pointing the load balancer back at the slots live
 * before; a write freeze is always ended.
 */
import type { Stage } from '../config/model.js';
import { backendName, weightKey } from '../config/slot.js';
import { compareManifest } from '../commands/files-manifest.js';
import type { Action, FailurePath, Phase, PhaseName, Plan, PlanItem } from './plan.js';
import { reportAction, reportPhase } from './report.js';

const HOOK_PHASES: ReadonlySet<PhaseName> = new Set(['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch', 'after-switch']);

/** The undo of a start: stop the slot it started. */
function stopNew(plan: Pick<Plan, 'phases'>): Phase {
  // Every tier's start phase, the last tier first: clients stop before the servers they use.
  return { name: 'stop-new', title: 'Stop the new slot again', items: undoItems(plan.phases.filter((p) => p.name === 'start').reverse()) };
}

/** The undo of each step of these phases, host by host (one item per host, in the phases' order). */
function undoItems(phases: readonly Phase[]): PlanItem[] {
  const byHost = new Map<string, Action[]>();
  for (const item of phases.flatMap((p) => p.items)) {
    const undo = item.actions.flatMap((a): Action[] => (a.kind === 'exec' && a.undo ? [{ kind: 'exec', host: a.host, command: a.undo.command, title: a.undo.title }] : []));
    if (undo.length > 0) byHost.set(item.target, [...(byHost.get(item.target) ?? []), ...undo]);
  }
  return [...byHost].map(([target, actions]) => ({ target, actions }));
}

/** The undo of moving each host's current link: back at the release that was live. */
function currentBack(plan: Pick<Plan, 'phases'>): Phase {
  return { name: 'current-back', title: 'Point each host\'s current link back at the previous release', items: undoItems(plan.phases.filter((p) => p.name === 'current')) };
}

/**
 * After an automatic rollback, once the new slot is stopped: each host lists the files added, changed
 * and removed in the new slot's `files:` data since the switch (the run's report, issue 21 item 4).
 */
function filesLeft(stage: Pick<Stage, 'services'>, plan: Pick<Plan, 'services'>): Phase {
  const items: PlanItem[] = [];
  for (const s of plan.services) {
    const service = stage.services[s.service];
    if (!service?.files) continue;
    for (const host of s.hosts) {
      items.push({ target: host, actions: [{
        kind: 'exec', host, command: compareManifest(service, s.target), output: { kind: 'files-left', service: s.service, slot: s.target },
        title: `list the files added, changed and removed in ${s.service}/${s.target} on ${host} since the switch`,
      }] });
    }
  }
  return { name: 'files-left', title: 'List what was written to the new slot\'s files', items };
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

export function failurePaths(stage: Pick<Stage, 'loadBalancers' | 'services'>, plan: Pick<Plan, 'phases' | 'services'> & Partial<Pick<Plan, 'action'>>): FailurePath[] {
  const unfreeze: Phase = { name: 'unfreeze', title: 'End the write freeze', items: plan.phases.find((p) => p.name === 'unfreeze')?.items ?? [] };
  const lbs = switched(plan);
  // A progressive rollout's steps move traffic like the switch: a failed gate is undone like a failed post check.
  const rolls = plan.phases.some((p) => p.name === 'rollout' && p.items.length > 0);
  const revert: Phase = { name: 'revert', title: 'Switch every load balancer back to the previous slots', items: lbs.map((lb) => ({ target: lb, actions: [revertAction(stage, plan, lb)] })) };
  const drain: Phase = { name: 'drain-new', title: 'Let the new slot\'s requests finish', items: lbs.map((lb) => ({ target: lb, actions: [drainNewAction(stage, plan, lb)] })) };
  // A hook point (issue 19) is named only when the plan runs hooks there.
  const present = (n: PhaseName) => !HOOK_PHASES.has(n) || plan.phases.some((p) => p.name === n);
  // A promotion's: what users wrote to the new slot meanwhile stays there (its files listed just before), and is reported.
  const report = plan.action === undefined || plan.action === 'promote' ? [reportPhase(reportAction(stage, plan.services, true, 'automatic rollback'))] : [];
  const path = (on: PhaseName[], title: string, phases: Phase[]): FailurePath => ({ on: on.filter(present), title, phases: phases.filter((p) => p.items.length > 0) });
  return [
    path(['before-copy', 'freeze', 'copy', 'after-copy'], 'nothing started, live traffic untouched', [unfreeze]),
    path(['data', 'before-start', 'start', 'after-start', 'check', 'before-switch'], 'live traffic untouched; the new slot is stopped again', [stopNew(plan), unfreeze]),
    // Only the load balancers whose switch began are switched back (the others never moved).
    path(['switch'], 'the load balancers switched so far go back, so that all agree; the new slot is stopped', [revert, drain, stopNew(plan), unfreeze]),
    // Before the switch the current link has not moved: a failed rollout step has nothing to point back.
    ...(rolls ? [path(['rollout'], 'automatic rollback: every load balancer goes back to the old slot, which still runs', [revert, drain, stopNew(plan), unfreeze, filesLeft(stage, plan), ...report])] : []),
    path([...(plan.phases.some((p) => p.name === 'current' && p.items.length > 0) ? ['current' as const] : []), 'after-switch', 'post', 'watch'], 'automatic rollback: every load balancer goes back to the old slot, which still runs', [revert, currentBack(plan), drain, stopNew(plan), unfreeze, filesLeft(stage, plan), ...report]),
  ];
}

/** The failure path that runs when a step of `phase` fails (none after the watch: the new slot serves). */
export function failurePathOf(paths: readonly FailurePath[], phase: PhaseName): FailurePath | undefined {
  return paths.find((p) => p.on.includes(phase));
}
