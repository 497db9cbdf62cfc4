/*
 * The rollout phase of a promotion (docs/decisions/0016-progressive-rollouts.md): for each service
 * with a rollout, its new slot's servers marked up, then per step the share set through the map on every
 * load balancer (`<service>.rollout` names the new backend, `<service>.weight` the percentage), the map
 * file rewritten so a reload keeps the share, and the step held and judged. The switch that follows is
 * the last step (100%); it also sets the weight back to 0.
 */
import type { Stage } from '../config/model.js';
import { backendName, rolloutKey, weightKey } from '../config/slot.js';
import { DEFAULT_PAUSE_DEADLINE_MS, type Rollout } from '../rollout/profile.js';
import { persistMap } from './build.js';
import type { Action, Phase, PlanItem, ServicePlan } from './plan.js';

export const ROLLOUT_TITLE = 'Send a growing share of requests to the new slot, each step judged by HAProxy\'s counters';

export function rolloutPhase(stage: Stage, services: readonly ServicePlan[]): Phase {
  const lbs = Object.values(stage.loadBalancers);
  const items: PlanItem[] = services.flatMap((s) => {
    const r = s.rollout;
    if (!r) return [];
    const oldBackend = backendName(s.service, s.live);
    const newBackend = backendName(s.service, s.target);
    const actions: Action[] = lbs.map((lb) => ({
      kind: 'server-health', loadBalancer: lb.name, backend: newBackend, servers: s.hosts, health: 'up',
      title: `mark ${newBackend}'s servers up on ${lb.name} (they just passed their checks)`,
    }));
    r.steps.forEach((step, i) => {
      for (const lb of lbs) {
        actions.push({
          kind: 'set-map', loadBalancer: lb.name, file: lb.mapFile,
          entries: { [rolloutKey(s.service)]: newBackend, [weightKey(s.service)]: String(step.weight) },
          title: `step ${i + 1}: send ${step.weight}% of ${s.service}'s requests to ${newBackend} on ${lb.name}`,
        }, persistMap(lb.mapFile, lb.name));
      }
      actions.push({
        kind: 'gate', service: s.service, step: i + 1, steps: r.steps.length, weight: step.weight, holdMs: step.holdMs,
        deadlineMs: step.holdMs + (r.gates.tooFewWaitMs ?? step.holdMs),
        loadBalancers: lbs.map((lb) => lb.name), oldBackend, newBackend, gates: { ...r.gates },
        title: `step ${i + 1}: hold ${step.weight}% for ${step.holdMs} ms, then judge ${newBackend} against ${oldBackend}`,
      });
      if (step.pause) {
        const deadlineMs = step.pauseDeadlineMs ?? DEFAULT_PAUSE_DEADLINE_MS;
        actions.push({
          kind: 'pause', stage: stage.name, service: s.service, step: i + 1, steps: r.steps.length, weight: step.weight, deadlineMs,
          loadBalancers: lbs.map((lb) => lb.name), oldBackend, newBackend, gates: { ...r.gates },
          title: `step ${i + 1}: pause at ${step.weight}% until updateserver continue ${stage.name} (or abort ${stage.name}), at most ${deadlineMs} ms`,
        });
      }
    });
    return [{ target: s.service, actions }];
  });
  return { name: 'rollout', title: ROLLOUT_TITLE, items, policy: 'rollback' };
}

/** Map entries that end a rollout's split (weight 0: every request goes where `<service>` points). */
export function rolloutOff(services: ReadonlyArray<Pick<ServicePlan, 'service' | 'rollout'>>): Record<string, string> {
  return Object.fromEntries(services.filter((s) => s.rollout).map((s) => [weightKey(s.service), '0']));
}

/** The plan's rollout of each service, for buildPlan's input. */
export type Rollouts = Readonly<Record<string, Rollout>>;
