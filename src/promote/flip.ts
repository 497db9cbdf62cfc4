/*
 * `updateserver flip <stage>`: send traffic to the other slot, which keeps the release it has. The
 * slot is started where it is not running and health-checked on every host before any switch; a
 * release marked bad (it failed its checks) is refused unless --force.
 */
import { userInfo } from 'node:os';
import { loadProfile } from '../config/load.js';
import type { Project } from '../config/model.js';
import { UpdateserverError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { readLiveSlots } from '../observe/live.js';
import { readHostSlots } from '../observe/slots.js';
import { buildPlan, type HostSlots, type ServiceFacts } from '../plan/build.js';
import { applyPlan } from '../apply/apply.js';
import type { StepEvent } from '../apply/context.js';
import type { Plan } from '../plan/plan.js';
import { runNotifier } from '../notify/notify.js';
import { openState } from '../state/backend.js';
import { allLimited } from '../transport/runner.js';
import { StageLink, hostsUsed, selectServices } from './stage-link.js';
import { appendRun, recordFailure, recordSwitch } from './record.js';
import { lockStage } from './lock.js';
import { leftBehind } from './left-writes.js';
import { hostsOfInterrupted, refuseUnlessTold, settleInterrupted } from './interrupted.js';
import type { PromoteResult } from './promote.js';
import { idleSlot } from '../config/slot.js';

export interface FlipOptions {
  project: Project;
  stage: string;
  logger: Logger;
  dryRun?: boolean;
  services?: string[];
  force?: boolean;
  waitMs?: number;
  abandon?: boolean;
  resume?: boolean;
  /** rollback: back to the slot that was live before; its release must be good, and the release left is marked bad. */
  rollback?: boolean;
  now?: () => Date;
  runId?: string;
  progress?: (plan: Plan) => ((event: StepEvent) => void) | undefined;
}

export async function flip(options: FlipOptions): Promise<PromoteResult> {
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const { project, logger } = options;
  const stage = await loadProfile(project, options.stage);
  const services = selectServices(stage, options.services);
  const state = openState(project, stage);
  const { store } = state;
  const link = new StageLink(stage);
  const lock = await lockStage(state, stage.name, options);
  try {
    const interrupted = await state.journals.readInterrupted(stage.name);
    refuseUnlessTold(interrupted, stage.name, options);
    await link.open([...new Set([...hostsUsed(stage, services), ...hostsOfInterrupted(interrupted)])]);
    const abandoned = await settleInterrupted(interrupted, stage, link, state, options);
    if (abandoned && interrupted) return { plan: interrupted.start.plan, applied: false, skipped: abandoned, durationMs: Date.now() - started };
    const recorded = await store.read(stage.name);
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
    const allFacts = { ...facts };
    for (const [s, slot] of Object.entries(live)) if (!allFacts[s]) allFacts[s] = { live: slot, release: '', cacheDir: '', source: '', hosts: {} };
    const plan = buildPlan({ project, stage, from: stage.name, facts: allFacts, services, now: now(), mode: 'flip', action: options.rollback ? 'rollback' : 'flip' });
    if (options.dryRun) return { plan, applied: false, skipped: 'dry run', durationMs: Date.now() - started };

    const t0 = Date.now();
    const journal = await state.journals.begin(plan);
    const notifier = runNotifier(stage.notify, plan, logger, options.runId ?? new Date(started).toISOString(), now);
    await notifier.started();
    const onStep = options.progress?.(plan);
    let apply;
    try {
      apply = await applyPlan({ stage, pool: link.pool, balancers: link.balancerMap(), logger, warnings: [], transfers: [], reports: [], journal, ...(onStep ? { onStep } : {}) }, plan);
    } catch (err) {
      await recordFailure(store, stage, plan, recorded, err, Date.now() - t0, now(), logger);
      await journal.finish(`failed: ${describeError(err)}`).catch((e: unknown) => logger.warn(`closing the journal: ${describeError(e)}`));
      await notifier.finished(err);
      throw err;
    }
    await journal.finish('ok');
    // After the switch back and the drain: nothing more reaches the slot left behind.
    const left = await leftBehind(stage, plan, recorded, { stateDir: project.stateDir, runId: options.runId ?? new Date(started).toISOString(), now: now() });
    for (const line of left.lines) {
      logger.warn(line);
      apply.warnings.push(line);
    }
    await recordSwitch(store, stage, plan, recorded, now(), { markLeftBad: options.rollback ? `rolled back by ${userInfo().username} at ${now().toISOString()}` : undefined });
    // Traffic goes back to a slot whose database nothing touched since: its recorded data version holds.
    await appendRun(store, plan, 'ok', Date.now() - t0, now(), undefined, { data: Object.fromEntries(plan.services.map((s) => [s.service, recorded?.services[s.service]?.data?.[s.target]])), changes: left.report });
    await notifier.finished(undefined, left.counts);
    return { plan, applied: true, apply, durationMs: Date.now() - started, ...(left.report ? { changes: left.report } : {}) };
  } finally {
    await link.close(logger);
    await lock?.release().catch((err: unknown) => logger.warn(`could not release the lock: ${describeError(err)}`));
    await state.close().catch((err: unknown) => logger.warn(`closing the state store: ${describeError(err)}`));
  }
}
