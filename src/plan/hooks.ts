/*
 * The profile's hooks as plan actions (issue 19, docs/decisions/0014-hooks-and-release-mail.md). A hook
 * declared by the stage is shared by every service of the run and runs once per service, with that
 * service's facts; a service's own run after the stage's. `on: local` runs once on this machine,
 * `hosts` on each host of the service, `one-host` on its first host. Everything a hook receives is in
 * the plan: the dry run prints the exact line, and a real run runs that line.
 */
import { userInfo } from 'node:os';
import type { HookPoint, SlotName, Stage } from '../config/model.js';
import { quote } from '../commands/shell.js';
import type { Action, Phase, PlanItem, ServicePlan } from './plan.js';

type HookAction = Extract<Action, { kind: 'hook' }>;

/** Facts known only when the hook runs, by point: the dry run shows their names. */
export const RUNTIME_ENV = ['UPDATESERVER_RUN_ID'] as const;
export const RESULT_ENV = ['UPDATESERVER_RESULT', 'UPDATESERVER_ERROR'] as const;

/** The variables of a stage and host as the hook's environment names them. */
export const varEnvName = (name: string) => `UPDATESERVER_VAR_${name}`;

/**
 * The run's facts for one service, as environment variables. The slots keep their meaning on every
 * path: OLD_SLOT was live before the run, NEW_SLOT received the release (after a rollback the old slot
 * serves again).
 */
export function hookEnv(stage: Stage, sp: ServicePlan, point: HookPoint, action: string, host: string | undefined): Record<string, string> {
  const service = stage.services[sp.service]!;
  const vars = host ? stage.hosts[host]?.vars ?? stage.vars ?? {} : stage.vars ?? {};
  const db = (slot: SlotName) => service.database?.names[slot] ?? '';
  return {
    UPDATESERVER_HOOK: point,
    UPDATESERVER_ACTION: action,
    UPDATESERVER_STAGE: stage.name,
    UPDATESERVER_SERVICE: sp.service,
    UPDATESERVER_RELEASE: sp.release,
    UPDATESERVER_PREVIOUS_RELEASE: sp.liveRelease ?? '',
    UPDATESERVER_OLD_SLOT: sp.live,
    UPDATESERVER_NEW_SLOT: sp.target,
    UPDATESERVER_SLOT_DIR: service.slots[sp.target].dir,
    UPDATESERVER_OLD_SLOT_DIR: service.slots[sp.live].dir,
    UPDATESERVER_DATABASE: db(sp.target),
    UPDATESERVER_OLD_DATABASE: db(sp.live),
    UPDATESERVER_HOST: host ?? '',
    UPDATESERVER_USER: userInfo().username,
    // A dry run shows hooks and runs none: a hook that runs is never in a dry run.
    UPDATESERVER_DRY_RUN: '0',
    ...Object.fromEntries(Object.entries(vars).map(([k, v]) => [varEnvName(k), v])),
  };
}

/**
 * The line that runs: the environment, then the user's command under bash, ended by `timeout` at the
 * hook's timeout (TERM, then KILL 5 s later). `runtime`: values of the names in `action.runtime`.
 */
export function hookLine(env: Record<string, string>, run: string, timeoutMs: number, runtime?: Record<string, string>): string {
  const assignments = Object.entries({ ...(runtime ?? {}), ...env }).map(([k, v]) => `${k}=${quote(v)}`);
  return `env ${assignments.join(' ')} timeout -k 5 ${(timeoutMs / 1000).toFixed(3)} bash -c ${quote(run)}`;
}

/** The line as it runs, with the facts known then put in front (the env command's first assignments). */
export function hookLineAtRun(action: HookAction, runtime: Record<string, string>): string {
  return hookLine(action.env, action.run, action.timeoutMs, Object.fromEntries(action.runtime.map((k) => [k, runtime[k] ?? ''])));
}

/** What a failure of a hook at this point does (a critical after-switch hook rolls back). */
export function failureOf(point: HookPoint, critical: boolean): HookAction['failure'] {
  if (point === 'after-switch') return critical ? 'rollback' : 'warn';
  return ['before-copy', 'after-copy', 'before-start', 'after-start', 'before-switch'].includes(point) ? 'stop' : 'warn';
}

/** The phase of the hooks at one point, for the services of the plan: one item per host (or `local`), hooks in declared order. */
export function hookPhase(stage: Stage, services: readonly ServicePlan[], point: HookPoint, action: string): Phase {
  const byTarget = new Map<string, HookAction[]>();
  for (const sp of services) {
    for (const hook of stage.services[sp.service]?.hooks?.[point] ?? []) {
      const hosts = hook.on === 'local' ? [undefined] : hook.on === 'one-host' ? sp.hosts.slice(0, 1) : sp.hosts;
      for (const host of hosts) {
        const env = hookEnv(stage, sp, point, action, host);
        const runtime = [...RUNTIME_ENV, ...(point === 'failed' || point === 'finished' ? RESULT_ENV : [])];
        const a: HookAction = {
          kind: 'hook', point, service: sp.service, ...(host ? { host } : {}), run: hook.run, env, runtime,
          line: hookLine(env, hook.run, hook.timeoutMs, Object.fromEntries(runtime.map((k) => [k, `<${k.slice('UPDATESERVER_'.length).toLowerCase().replace('_', ' ')}>`]))),
          timeoutMs: hook.timeoutMs, failure: failureOf(point, hook.critical),
          title: `${point} hook of ${hook.from === 'stage' ? `${stage.name} for ${sp.service}` : sp.service} ${host ? `on ${host}` : 'on this machine'}: ${hook.run}`,
        };
        const key = host ?? 'local';
        byTarget.set(key, [...(byTarget.get(key) ?? []), a]);
      }
    }
  }
  const items: PlanItem[] = [...byTarget].map(([target, actions]) => ({ target, actions }));
  return { name: point, title: `Run the ${point} hooks`, items };
}

/** The plan's `finally`: failed (when the run failed), then finished; empty phases are left out. */
export function finallyPhases(stage: Stage, services: readonly ServicePlan[], action: string): Phase[] {
  return (['failed', 'finished'] as const).map((p) => hookPhase(stage, services, p, action)).filter((p) => p.items.length > 0);
}
