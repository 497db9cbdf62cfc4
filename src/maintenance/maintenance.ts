/*
 * `updateserver maintenance <stage> on|read-only|off`: maintenance and read-only modes, switched at the
 * load balancers without a reload: map entries "<service>.maintenance" and "<service>.readonly" that
 * the rendered frontends test (lb-templates/haproxy.cfg). A verb like the others (run/run.ts): it
 * reads each load balancer's map, plans the entries to set with their undo, and the run pipeline
 * locks, journals and applies it. Every load balancer of the stage changes, or none does: they are
 * changed one after another, and a failure puts back those changed so far (the plan's failure path).
 */
import { loadProfile } from '../config/load.js';
import type { Stage } from '../config/model.js';
import { hostsUsed, selectServices } from '../promote/stage-link.js';
import { maintenanceKey, readonlyKey } from '../config/slot.js';
import { readLiveSlots } from '../observe/live.js';
import { PLAN_VERSION, type Action, type Plan, type PlanItem } from '../plan/plan.js';
import { runVerb, type Observed, type RunRequest } from '../run/run.js';

export type MaintenanceMode = 'on' | 'off' | 'read-only';

export interface MaintenanceResult { stage: string; services: string[]; mode: MaintenanceMode; loadBalancers: string[]; plan: Plan; applied: boolean }

export interface MaintenanceOptions extends RunRequest {
  stage: string; mode: MaintenanceMode; services?: string[];
  /** Change the entries even while another command holds the stage's lock (an emergency: a run that hangs, a lock taken by hand). */
  force?: boolean;
}

/** The map entries a mode sets for one service. */
export function maintenanceEntries(service: string, mode: MaintenanceMode): Record<string, string> {
  return {
    [maintenanceKey(service)]: mode === 'on' ? 'on' : 'off',
    [readonlyKey(service)]: mode === 'read-only' ? 'on' : 'off',
  };
}

/** What the read phase saw: each load balancer's current value of the entries the mode sets, and the live slots. */
export interface MaintenanceFacts { before: Record<string, Record<string, string>>; live: Record<string, 'a' | 'b'> }

/** An entry the map does not hold reads as off: the frontends test for "on". */
const OFF = 'off';

export function planMaintenance(stage: Stage, services: readonly string[], mode: MaintenanceMode, facts: MaintenanceFacts, now: Date): Plan {
  const wanted: Record<string, string> = Object.assign({}, ...services.map((s) => maintenanceEntries(s, mode)));
  const lbs = Object.keys(stage.loadBalancers);
  const items: PlanItem[] = lbs.map((lb) => {
    const file = stage.loadBalancers[lb]!.mapFile;
    const actions: Action[] = [
      { kind: 'set-map', loadBalancer: lb, file, entries: wanted, title: `${services.join(', ')}: maintenance ${mode}` },
      { kind: 'verify-map', loadBalancer: lb, file, expected: wanted, title: 'read the map back' },
      { kind: 'persist-map', loadBalancer: lb, file, title: `rewrite ${file} so a reload keeps the mode` },
    ];
    return { target: lb, actions };
  });
  const revert: PlanItem[] = lbs.map((lb) => ({
    target: lb,
    actions: [{
      kind: 'revert-map', loadBalancer: lb, file: stage.loadBalancers[lb]!.mapFile,
      entries: Object.fromEntries(Object.keys(wanted).map((k) => [k, facts.before[lb]?.[k] ?? OFF])), title: 'put the entries back as they were',
    }],
  }));
  return {
    version: PLAN_VERSION, action: 'maintenance', stage: stage.name, from: stage.name, createdAt: now.toISOString(),
    services: [], liveAfter: facts.live,
    phases: [{ name: 'switch', title: `Set maintenance ${mode} on every load balancer`, policy: 'switch', items }],
    onFailure: [{ on: ['switch'], title: 'the load balancers changed so far go back to what they said before, so that all agree', phases: [{ name: 'revert', title: 'Put the entries back', items: revert }] }],
  };
}

export async function setMaintenance(options: MaintenanceOptions): Promise<MaintenanceResult> {
  const stage = await loadProfile(options.project, options.stage);
  const services = selectServices(stage, options.services);
  const now = options.now ?? (() => new Date());
  const result = await runVerb<MaintenanceFacts>(options, {
    // Only remote load balancers need a host connection.
    name: 'maintenance', stage, hosts: hostsUsed(stage, []), ...(options.force ? { lockFree: true } : {}),
    observe: (run) => observeMaintenance(stage, services, options.mode, run),
    plan: (facts) => ({ plan: planMaintenance(stage, services, options.mode, facts, now()) }),
  });
  for (const lb of result.applied ? result.plan.phases[0]!.items : []) options.logger.info(`${lb.target}: ${services.join(', ')} maintenance ${options.mode}`);
  return { stage: stage.name, services, mode: options.mode, loadBalancers: Object.keys(stage.loadBalancers), plan: result.plan, applied: result.applied };
}

async function observeMaintenance(stage: Stage, services: readonly string[], mode: MaintenanceMode, run: Observed): Promise<MaintenanceFacts> {
  const keys = Object.keys(Object.assign({}, ...services.map((s) => maintenanceEntries(s, mode))));
  const before: MaintenanceFacts['before'] = {};
  for (const balancer of run.target.balancers) {
    const map = await balancer.readMap(stage.loadBalancers[balancer.name]!.mapFile);
    before[balancer.name] = Object.fromEntries(keys.map((k) => [k, map.get(k) ?? OFF]));
  }
  return { before, live: await readLiveSlots(stage, run.target.balancers, run.recorded) };
}
