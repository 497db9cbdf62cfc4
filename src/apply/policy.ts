/*
 * What a failure in a phase means, when the plan does not say (promotion plans, and plans journalled
 * before phases carried a policy): decided by the phase's name, the same way for every run.
 */
import type { Phase, PhasePolicy } from '../plan/plan.js';

const BY_NAME: Partial<Record<Phase['name'], PhasePolicy>> = {
  pull: 'stop', copy: 'stop',
  // Hook points (plan/hook-phases.ts): a hook's own failure word decides whether it throws at all;
  // one that throws before the switch stops, after it (critical) rolls back, after the drain warns.
  'before-copy': 'stop', 'after-copy': 'stop', 'before-start': 'stop', 'after-start': 'stop', 'before-switch': 'stop',
  'after-switch': 'rollback', 'after-rollback': 'warn', 'after-drain': 'warn',
  // The current link (issue 18) moves right after the switch; the old slot still runs until post and watch pass.
  current: 'rollback', freeze: 'stop', data: 'stop', start: 'stop', check: 'stop',
  rollout: 'rollback', switch: 'switch',
  post: 'rollback', watch: 'rollback',
  unfreeze: 'warn', drain: 'warn', 'stop-old': 'warn', purge: 'warn', report: 'warn',
};

/**
 * A phase's policy: its own, else its name's. A phase unknown by name (added by a newer planner) takes
 * the policy of where it stands: before the switch nothing live was touched (stop), after the checks
 * that guard the switch the new slot serves (warn).
 */
export function policyOf(phase: Phase, index: number, phases: readonly Phase[]): PhasePolicy {
  if (phase.policy) return phase.policy;
  const byName = BY_NAME[phase.name];
  if (byName) return byName;
  const switchAt = phases.findIndex((p) => p.name === 'switch');
  const lastGuard = Math.max(switchAt, ...phases.map((p, i) => (p.name === 'post' || p.name === 'watch' ? i : -1)));
  if (switchAt < 0 || index < switchAt) return 'stop';
  return index > lastGuard ? 'warn' : 'rollback';
}
