/*
 * Where the hooks' phases go in a plan (issue 19). Before the switch: around the copy and the start,
 * and last before it (before-switch); after it: after-switch (the old slot still runs: a critical hook
 * failing rolls back), after-drain (the old slot no longer has traffic, before it stops). The rollback
 * command's plan runs after-rollback once traffic is back; an automatic rollback runs it at the end of
 * its failure path (plan/failure.ts). failed and finished are the plan's `finally`.
 */
import type { HookPoint, Stage } from '../config/model.js';
import type { FailurePath, Phase, PhaseName, Plan } from './plan.js';
import { finallyPhases, hookPhase } from './hooks.js';

/** Each hook point's phase goes right before (b) or after (a) the phase named. */
const PLACES: ReadonlyArray<[HookPoint, 'before' | 'after', PhaseName]> = [
  ['before-copy', 'before', 'copy'], ['after-copy', 'after', 'copy'],
  ['before-start', 'before', 'start'], ['after-start', 'after', 'start'],
  ['before-switch', 'before', 'switch'], ['after-switch', 'after', 'switch'],
  ['after-rollback', 'after', 'watch'],
  ['after-drain', 'after', 'drain'],
];

export function withHooks(stage: Stage, plan: Omit<Plan, 'onFailure'>, flip: boolean, failures: (p: Pick<Plan, 'phases' | 'services'>) => FailurePath[]): Plan {
  let phases: Phase[] = [...plan.phases];
  for (const [point, where, anchor] of PLACES) {
    // A flip copies nothing; only the rollback command's plan is itself a rollback.
    if (flip && (point === 'before-copy' || point === 'after-copy')) continue;
    if (point === 'after-rollback' && plan.action !== 'rollback') continue;
    const p = hookPhase(stage, plan.services, point, plan.action);
    if (p.items.length === 0) continue;
    const i = phases.findIndex((x) => x.name === anchor);
    phases = [...phases.slice(0, where === 'before' ? i : i + 1), p, ...phases.slice(where === 'before' ? i : i + 1)];
  }
  const onFailure = failures({ phases, services: plan.services });
  // An automatic rollback (or the switch put back) ends with the after-rollback hooks, whose failure is a
  // warning. Not for the rollback command's own plan: going back from a rollback is not a rollback.
  const afterRollback = hookPhase(stage, plan.services, 'after-rollback', plan.action);
  const withRollbackHooks = onFailure.map((f) => (afterRollback.items.length > 0 && plan.action !== 'rollback' && f.phases.some((p) => p.name === 'revert') ? { ...f, phases: [...f.phases, afterRollback] } : f));
  const fin = finallyPhases(stage, plan.services, plan.action);
  return { ...plan, phases, onFailure: withRollbackHooks, ...(fin.length > 0 ? { finally: fin } : {}) };
}
