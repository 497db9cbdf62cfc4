/*
 * `updateserver <stage>`: read the world, build the plan, apply it, record the result.
 * This file is the whole story of a promotion; each step lives in its own module.
 */
import { loadPipeline } from '../config/load.js';
import type { Project, SlotName, Stage } from '../config/model.js';

import { UpdateserverError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { readLiveSlots } from '../observe/live.js';
import { readHostSlots } from '../observe/slots.js';
import { buildPlan, type HostSlots, type ServiceFacts } from '../plan/build.js';
import type { Plan } from '../plan/plan.js';
import { applyPlan, type ApplyResult } from '../apply/apply.js';
import { StateStore } from '../state/store.js';
import { StageLink, hostsUsed, selectServices } from './stage-link.js';
import { appendRun, recordFailure, recordSwitch } from './record.js';
import { allLimited } from '../transport/runner.js';
import { cacheRoot, pullStageRelease, stageLocalSource, type SourceRelease } from './source.js';
import { checkDiskSpace } from './preflight.js';
import { readDataFacts } from './data-facts.js';
import { takeLock } from './lock.js';
import { Journal, readInterrupted } from '../state/journal.js';
import { hostsOfInterrupted, refuseUnlessTold, settleInterrupted } from './interrupted.js';
import { join } from 'node:path';
import { settleAll } from '../transport/runner.js';

export interface PromoteOptions {
  project: Project;
  stage: string;
  logger: Logger;
  dryRun?: boolean;
  /** Promote only these services (all when empty). */
  services?: string[];
  /** After an interrupted run: clean up after it and stop (abandon) or go on (resume). */
  abandon?: boolean;
  resume?: boolean;
  /** Wait up to this long for another run's lock. */
  waitMs?: number;
  /** Promote even when the stage already runs the release. */
  force?: boolean;
  now?: () => Date;
}

export interface PromoteResult {
  plan: Plan;
  applied: boolean;
  /** Why nothing was applied, when nothing was. */
  skipped?: string;
  apply?: ApplyResult;
  durationMs: number;
}

export async function promote(options: PromoteOptions): Promise<PromoteResult> {
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const { project, logger } = options;
  // Every profile of the pipeline is validated before a single connection is opened.
  const [stage, from] = await loadPipeline(project, options.stage);
  if (!stage) throw new Error('internal: empty pipeline');
  const services = selectServices(stage, options.services);
  if (from) {
    const missing = services.filter((s) => !from.services[s]);
    if (missing.length > 0) {
      throw new UpdateserverError(`stage ${from.name} has no service ${missing.join(', ')} to promote into ${stage.name}`, {
        hint: `define it in ${from.file} or promote only the others with --service`,
      });
    }
  }
  const store = new StateStore(project.stateDir);
  const target = new StageLink(stage);
  const source = from ? new StageLink(from) : undefined;
  const lock = await takeLock(project, stage.name, options);
  const interrupted = await readInterrupted(project.stateDir, stage.name);
  try {
    refuseUnlessTold(interrupted, stage.name, options);
    logger.info(`connecting to ${hostsUsed(stage, services).length} host(s) of ${stage.name}${from ? ` and the live hosts of ${from.name}` : ''}`);
    // Both sides settle before a failure is reported, so no connection is left half-open behind it.
    await settleAll([
      target.open([...new Set([...hostsUsed(stage, services), ...hostsOfInterrupted(interrupted)])]),
      // From the previous stage only one host per service is needed: the release is the same on all.
      source?.open([...new Set([...services.map((s) => from!.services[s]!.hosts[0]!), ...Object.values(from!.loadBalancers).flatMap((lb) => (lb.host ? [lb.host] : []))])]),
    ]);

    const abandoned = await settleInterrupted(interrupted, stage, target, store, options);
    if (abandoned && interrupted) return { plan: interrupted.start.plan, applied: false, skipped: abandoned, durationMs: Date.now() - started };
    const recorded = await store.read(stage.name);
    const live = await readLiveSlots(stage, target.balancers, recorded);

    const releases: Record<string, SourceRelease> = {};
    let fromLive: Record<string, SlotName> | undefined;
    if (from && source) {
      const fromState = await store.read(from.name);
      fromLive = await readLiveSlots(from, source.balancers, fromState);
      await Promise.all(services.map(async (s) => {
        const service = from.services[s]!;
        const hostName = service.hosts[0]!;
        const slots = await readHostSlots(source.pool.get(hostName), service);
        const slot = fromLive![s] as SlotName;
        const release = slots.releases[slot];
        if (release === undefined || !slots.running[slot]) {
          throw new UpdateserverError(`stage ${from.name} has no live release of ${s} to promote: slot ${slot} on ${hostName} ${release === undefined ? 'points at no release' : `(${release}) is not running`}`, {
            hint: `promote ${from.name} first: updateserver ${from.name}`,
          });
        }
        // Pipeline guard: what failed or was rolled back in the previous stage does not travel on.
        const bad = fromState?.services[s]?.bad?.[release];
        if (bad !== undefined) {
          throw new UpdateserverError(`${s} ${release}, live in ${from.name}, is marked bad there: ${bad}`, { hint: `promote a good release into ${from.name} first` });
        }
        releases[s] = options.dryRun
          ? { release, cacheDir: join(cacheRoot(project, s), release), source: `stage ${from.name}, ${hostName} slot ${slot} (not pulled: dry run)` }
          : await pullStageRelease(project, from, service, source.pool.get(hostName), from.hosts[hostName]!, release, slot, await source.openTunnel());
      }));
    } else {
      for (const s of services) releases[s] = await stageLocalSource(project, stage, stage.services[s]!, now());
    }

    const facts: Record<string, ServiceFacts> = {};
    for (const s of services) {
      const service = stage.services[s]!;
      const hostSlots = await allLimited(service.hosts, stage.parallel, async (h) => [h, await readHostSlots(target.pool.get(h), service)] as const);
      const data = await readDataFacts(stage, s, live[s]!, from, fromLive?.[s]);
      facts[s] = { live: live[s]!, release: releases[s]!.release, cacheDir: releases[s]!.cacheDir, source: releases[s]!.source, hosts: Object.fromEntries(hostSlots) as Record<string, HostSlots>, ...(data ? { data } : {}) };
    }
    if (!options.dryRun) await checkDiskSpace(stage, services, facts, releases);
    // Services not being promoted keep their slot; the plan needs them to rewrite the whole map.
    const allFacts = { ...facts };
    for (const [s, slot] of Object.entries(live)) if (!allFacts[s]) allFacts[s] = { live: slot, release: '', cacheDir: '', source: '', hosts: {} };

    const plan = buildPlan({ project, stage, from: from?.name ?? 'source', facts: allFacts, services, now: now() });

    const badHere = services.filter((s) => recorded?.services[s]?.bad?.[facts[s]!.release] !== undefined);
    if (badHere.length > 0 && !options.force) {
      throw new UpdateserverError(`${badHere.map((s) => `${s} ${facts[s]!.release} is marked bad in ${stage.name}: ${recorded!.services[s]!.bad![facts[s]!.release]}`).join('\n')}`, {
        hint: 'promote a fixed release, or --force to try this one again',
      });
    }
    const current = services.filter((s) => Object.values(facts[s]!.hosts).every((h) => h.releases[facts[s]!.live] === facts[s]!.release && h.running[facts[s]!.live]));
    if (current.length === services.length && !options.force) {
      return { plan, applied: false, skipped: `${stage.name} already runs ${services.map((s) => `${s} ${facts[s]!.release}`).join(', ')} (use --force to promote it again)`, durationMs: Date.now() - started };
    }
    if (options.dryRun) return { plan, applied: false, skipped: 'dry run', durationMs: Date.now() - started };

    const balancers = target.balancerMap();
    const t0 = Date.now();
    let apply: ApplyResult;
    const journal = await Journal.begin(project.stateDir, plan);
    try {
      apply = await applyPlan({ stage, pool: target.pool, balancers, logger, warnings: [], transfers: [], reports: [], journal, tunnel: await target.openTunnel() }, plan);
    } catch (err) {
      await recordFailure(store, stage, plan, recorded, err, Date.now() - t0, now(), logger);
      await journal.finish(`failed: ${describeError(err)}`).catch((e: unknown) => logger.warn(`closing the journal: ${describeError(e)}`));
      throw err;
    }
    await journal.finish('ok');
    await recordSwitch(store, stage, plan, recorded, now(), { data: apply.data });
    await appendRun(store, plan, 'ok', Date.now() - t0, now(), undefined, apply.data);
    return { plan, applied: true, apply, durationMs: Date.now() - started };
  } finally {
    await Promise.all([target.close(logger), source?.close(logger)]);
    await lock?.release().catch((err: unknown) => logger.warn(`could not release the lock: ${describeError(err)}`));
  }
}
