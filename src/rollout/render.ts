/* How the dry run words a rollout's gates: every threshold, so the operator reads what will judge each step. */
import type { Action } from '../plan/plan.js';
import type { RolloutGates } from './profile.js';

export function describeGates(g: RolloutGates): string {
  return `5xx <= ${g.max5xxRate * 100}%, errors <= ${g.maxErrorRate * 100}%, response time <= ${g.maxLatencyRatio}x the old slot's (floor ${g.latencyFloorMs} ms), ` +
    `at least ${g.minRequests} request(s) on the new slot (else ${g.onTooFew === 'pass' ? 'passed' : 'failed'} at the deadline)`;
}

export function describeGate(a: Extract<Action, { kind: 'gate' }>): string {
  return [
    `hold ${a.holdMs} ms at ${a.weight}%; read show stat on ${a.loadBalancers.join(', ')} at the start and every second: ${a.newBackend} against ${a.oldBackend}`,
    `gates: ${describeGates(a.gates)}; with too few requests wait up to ${a.deadlineMs} ms in all`,
    'a failed gate: weight 0 at once (all traffic back on the old slot), then the failure path below',
  ].join('\n');
}

export function describePause(a: Extract<Action, { kind: 'pause' }>): string {
  return [
    `wait for a person, holding the lock: updateserver continue ${a.stage} goes on, updateserver abort ${a.stage} aborts (the CLI or the console, from any machine sharing the state)`,
    `deadline ${a.deadlineMs} ms: then the rollout aborts (weight 0 at once, the failure path below); updateserver status ${a.stage} shows the step, the shares and the gate figures meanwhile`,
  ].join('\n');
}
