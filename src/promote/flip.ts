/*
 * `updateserver flip <stage>`: send traffic to the other slot, which keeps the release it has. The
 * slot is started where it is not running and health-checked on every host before any switch; a
 * release marked bad (it failed its checks) is refused unless --force.
 */
import { userInfo } from 'node:os';
import { loadProfile } from '../config/load.js';
import type { Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { readLiveSlots } from '../observe/live.js';
import { readHostSlots } from '../observe/slots.js';
import { buildPlan, type HostSlots, type ServiceFacts } from '../plan/build.js';
import { allLimited } from '../transport/runner.js';
import { hostsUsed, selectServices } from './stage-link.js';
import { appendRun, recordSwitch } from './record.js';
import { leftBehind } from './left-writes.js';
import type { FilesOutput } from '../data/files-left.js';
import { runVerb, type Observed, type Planned, type RunRequest } from '../run/run.js';
import type { PromoteResult } from './promote.js';
import { idleSlot } from '../config/slot.js';

export interface FlipOptions extends RunRequest {
  stage: string;
  services?: string[];
  force?: boolean;
  /** rollback: back to the slot that was live before; its release must be good, and the release left is marked bad. */
  rollback?: boolean;
}

export async function flip(options: FlipOptions): Promise<PromoteResult> {
  const now = options.now ?? (() => new Date());
  const { project, logger } = options;
  const stage = await loadProfile(project, options.stage);
  const services = selectServices(stage, options.services);
  // The plan's steps that list the files left behind print into this (src/data/files-left.ts).
  const outputs: FilesOutput[] = [];
  const result = await runVerb<Record<string, ServiceFacts>>(options, {
    name: options.rollback ? 'rollback' : 'flip', stage, hosts: hostsUsed(stage, services), settlesInterrupted: true, notifies: true,
    observe: (run) => observeFlip(stage, services, run, options),
    plan: (facts, run) => planFlip(stage, services, facts, run, options, now()),
    applyContext: async () => ({ outputs }),
    recorded: async (run, plan, apply, _facts, durationMs) => {
      // After the switch back and the drain: nothing more reaches the slot left behind; what users wrote
      // to it is reported (and kept for `updateserver replay`).
      const left = await leftBehind(stage, plan, run.recorded, { stateDir: project.stateDir, runId: options.runId ?? new Date().toISOString(), now: now(), outputs });
      for (const line of left.lines) {
        logger.warn(line);
        apply.warnings.push(line);
      }
      const { store } = run.state;
      await recordSwitch(store, stage, plan, run.recorded, now(), { markLeftBad: options.rollback ? `rolled back by ${options.user ?? userInfo().username} at ${now().toISOString()}` : undefined });
      // Traffic goes back to a slot whose database nothing touched since: its recorded data version holds.
      await appendRun(store, plan, 'ok', durationMs, now(), undefined, { data: Object.fromEntries(plan.services.map((s) => [s.service, run.recorded?.services[s.service]?.data?.[s.target]])), user: run.request.user, changes: left.report });
      return { changes: left.report, written: left.counts };
    },
  });
  return result;
}

/** The read phase of a flip: the live slots, and what each host holds in the slot traffic would go to. */
async function observeFlip(stage: Stage, services: readonly string[], run: Observed, options: FlipOptions): Promise<Record<string, ServiceFacts>> {
  const { target: link, recorded } = run;
  const live = await readLiveSlots(stage, link.balancers, recorded);
  const facts: Record<string, ServiceFacts> = {};
  for (const s of services) {
    const service = stage.services[s]!;
    const target = idleSlot(live[s]!);
    const hosts = Object.fromEntries(await allLimited(service.hosts, stage.parallel, async (h) => [h, await readHostSlots(link.pool.get(h), service)] as const)) as Record<string, HostSlots>;
    const releases = new Set(Object.values(hosts).map((h) => h.releases[target]));
    const missing = Object.entries(hosts).filter(([, h]) => h.releases[target] === undefined).map(([h]) => h);
    if (missing.length > 0) {
      throw new UpdateserverError(`cannot flip ${s} to slot ${target}: it holds no release on ${missing.join(', ')}`, { hint: `promote a release into ${stage.name} first: updateserver ${stage.name}` });
    }
    if (releases.size > 1) {
      throw new UpdateserverError(`cannot flip ${s} to slot ${target}: its hosts hold different releases there (${Object.entries(hosts).map(([h, x]) => `${h}: ${x.releases[target]}`).join(', ')})`, {
        hint: `promote again to put one release on every host: updateserver ${stage.name}`,
      });
    }
    const release = [...releases][0]!;
    const bad = recorded?.services[s]?.bad?.[release];
    if (bad !== undefined && (options.rollback || !options.force)) {
      throw new UpdateserverError(`slot ${target} of ${s} holds ${release}, which is marked bad: ${bad}`, {
        hint: options.rollback ? 'there is no good release to roll back to: promote a fixed release instead' : 'use --force to flip to it anyway, or promote a good release',
      });
    }
    facts[s] = { live: live[s]!, release, cacheDir: '', source: `slot ${target} of ${stage.name} itself`, hosts };
  }
  // Services not flipped keep their slot; the plan needs them to rewrite the whole map.
  for (const [s, slot] of Object.entries(live)) if (!facts[s]) facts[s] = { live: slot, release: '', cacheDir: '', source: '', hosts: {} };
  return facts;
}

/** The planner of flip and rollback: a promotion plan whose release is the one the idle slot already holds. */
function planFlip(stage: Stage, services: string[], facts: Record<string, ServiceFacts>, _run: Observed, options: FlipOptions, now: Date): Planned {
  return { plan: buildPlan({ project: options.project, stage, from: stage.name, facts, services, now, mode: 'flip', action: options.rollback ? 'rollback' : 'flip' }) };
}
