/*
 * `updateserver purge <stage>`: keep the newest N complete releases of each service on each host (the
 * profile's keepReleases unless --keep says otherwise), never removing a release a slot points at.
 * A verb like the others (run/run.ts): it reads what each host holds, plans one removal per host and
 * service, and the run pipeline applies it.
 *
 * It runs under the stage's lock, like a promotion, so it never removes what a promotion is copying or
 * about to point a slot at. Incomplete releases (no completion marker: a copy in progress, or the
 * remains of a run that died) are never removed here: the next promotion of the stage reuses or
 * removes them under its own lock, after it has settled any interrupted run.
 */
import { loadProfile } from '../config/load.js';
import type { Stage } from '../config/model.js';
import { removeReleases } from '../commands/release.js';
import { readHostSlots } from '../observe/slots.js';
import { releasesToPurge } from '../plan/build.js';
import { PLAN_VERSION, type Plan, type PlanItem } from '../plan/plan.js';
import { selectServices } from '../promote/stage-link.js';
import { allLimited } from '../transport/runner.js';
import { DEFAULT_SLOT } from '../config/slot.js';
import { runVerb, type Observed, type RunRequest } from '../run/run.js';

type PerHost = Array<{ service: string; host: string; releases: string[] }>;

export interface PurgeResult {
  stage: string; keep: number; dryRun: boolean;
  removed: PerHost;
  /** incomplete releases seen and left in place */
  incomplete: PerHost;
  plan: Plan;
}

export interface PurgeOptions extends RunRequest { stage: string; keep?: number; services?: string[] }

/** What each host holds: the releases beyond the number kept, and the incomplete ones left alone. */
export interface PurgeFacts { removable: PerHost; incomplete: PerHost; live: Record<string, 'a' | 'b'> }

export function planPurge(stage: Stage, keep: number, facts: PurgeFacts, now: Date): Plan {
  const items: PlanItem[] = facts.removable.map((r) => ({
    target: r.host,
    actions: [{ kind: 'exec', host: r.host, command: removeReleases(stage.services[r.service]!, r.releases), title: `remove ${r.releases.length} old release(s) of ${r.service} beyond the ${keep} kept` }],
  }));
  return {
    version: PLAN_VERSION, action: 'purge', stage: stage.name, from: stage.name, createdAt: now.toISOString(), services: [], liveAfter: facts.live,
    // A removal that fails fails the command (nothing to undo: what was removed was no slot's release).
    phases: [{ name: 'purge', title: `Remove releases beyond the ${keep} kept (never a slot's release, never an incomplete one)`, policy: 'fail', items }],
    onFailure: [],
  };
}

export async function purge(options: PurgeOptions): Promise<PurgeResult> {
  const stage = await loadProfile(options.project, options.stage);
  const services = selectServices(stage, options.services);
  const keep = options.keep ?? stage.keepReleases;
  const now = options.now ?? (() => new Date());
  const hosts = [...new Set(services.flatMap((s) => stage.services[s]!.hosts))];
  const result = await runVerb<PurgeFacts>(options, {
    name: 'purge', stage, hosts,
    observe: (run) => observePurge(stage, services, keep, run),
    plan: (facts) => {
      const plan = planPurge(stage, keep, facts, now());
      return facts.removable.length === 0 ? { plan, skipped: 'nothing to remove' } : { plan };
    },
  });
  const facts = result.facts!;
  for (const r of facts.incomplete) options.logger.info(`left ${r.releases.length} incomplete release(s) of ${r.service}: ${r.releases.join(', ')} (the next promotion reuses or removes them)`, { host: r.host });
  for (const r of facts.removable) options.logger.info(`${result.applied ? 'removed' : 'would remove'} ${r.releases.join(', ')}`, { host: r.host });
  return { stage: stage.name, keep, removed: facts.removable, incomplete: facts.incomplete, dryRun: options.dryRun === true, plan: result.plan };
}

async function observePurge(stage: Stage, services: readonly string[], keep: number, run: Observed): Promise<PurgeFacts> {
  const removable: PerHost = [];
  const incomplete: PerHost = [];
  for (const s of services) {
    const service = stage.services[s]!;
    const seen = await allLimited(service.hosts, stage.parallel, async (host) => ({ host, slots: await readHostSlots(run.target.pool.get(host), service) }));
    for (const { host, slots } of seen) {
      if (slots.partial.length > 0) incomplete.push({ service: s, host, releases: slots.partial });
      const gone = releasesToPurge(slots.complete, [slots.releases.a, slots.releases.b], keep);
      if (gone.length > 0) removable.push({ service: s, host, releases: gone });
    }
  }
  return { removable, incomplete, live: Object.fromEntries(services.map((s) => [s, run.recorded?.services[s]?.live ?? DEFAULT_SLOT])) };
}
