/*
 * `updateserver <stage>`: read the world, build the plan, apply it, record the result.
 * This file is the whole story of a promotion; each step lives in its own module.
 */
import { loadPipeline } from '../config/load.js';
import type { Project, SlotName, Stage } from '../config/model.js';

import { ConfigError, UpdateserverError, describeError } from '../errors.js';
import { checkMigrationFiles } from '../config/migration-files.js';
import type { Logger } from '../log.js';
import { readLiveSlots } from '../observe/live.js';
import { readHostSlots, readSourceSlots } from '../observe/slots.js';
import { buildPlan, type DataFacts, type HostSlots, type KeptData, type ServiceFacts } from '../plan/build.js';
import type { Plan } from '../plan/plan.js';
import { applyPlan, type ApplyResult } from '../apply/apply.js';
import type { StepEvent } from '../apply/context.js';
import { runNotifier } from '../notify/notify.js';
import { openState } from '../state/backend.js';
import { StageLink, hostsUsed, selectServices, type Instrument } from './stage-link.js';
import { appendRun, passedRecords, recordFailure, recordPassed, recordSwitch } from './record.js';
import { cachedCodeHash } from '../observe/code-hash.js';
import type { StageState } from '../state/store.js';
import { allLimited } from '../transport/runner.js';
import { planPull, runPull, sourceManifest, stageFirstSource, type SourceRelease } from './source.js';
import { relayRoute } from '../commands/relay.js';
import { resolveGitSource } from '../release/git.js';
import { checkDiskSpace } from './preflight.js';
import { dataVersion, readDataFacts, readKeptData } from './data-facts.js';
import { lockStage } from './lock.js';
import { hostsOfInterrupted, refuseUnlessTold, settleInterrupted } from './interrupted.js';
import { existsSync } from 'node:fs';
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
  /** Skip the data step: no snapshot, copy or migration; each idle slot keeps the database it has. */
  codeOnly?: boolean;
  now?: () => Date;
  /** Names the run in notifications (default: its start time). */
  runId?: string;
  /** Given the plan before it is applied; the listener it returns hears every step (the progress display). */
  progress?: (plan: Plan) => ((event: StepEvent) => void) | undefined;
  /** Wrappers around the run's connections (the recording test). */
  instrument?: Instrument;
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
    const missing = services.filter((s) => !Object.hasOwn(from.services, s));
    if (missing.length > 0) {
      throw new ConfigError([{ file: from.file, path: 'services', message: `stage ${from.name} has no service ${missing.join(', ')} to promote into ${stage.name}` }],
        `define it in ${from.file} or promote only the others with --service`);
    }
  }
  // Migration files are input like the profiles: a misnamed file or a version defined twice stops the run here.
  await checkMigrationFiles(project, stage, services);
  // A git source's ref is resolved before the lock or any connection: an unknown ref changes nothing.
  const git = stage.source?.kind === 'git' ? await resolveGitSource(stage, stage.source) : undefined;
  const state = openState(project, stage);
  const { store } = state;
  const target = new StageLink(stage, options.instrument);
  const source = from ? new StageLink(from, options.instrument) : undefined;
  const lock = await lockStage(state, stage.name, options);
  try {
    const interrupted = await state.journals.readInterrupted(stage.name);
    refuseUnlessTold(interrupted, stage.name, options);
    logger.info(`connecting to ${hostsUsed(stage, services).length} host(s) of ${stage.name}${from ? ` and the live hosts of ${from.name}` : ''}`);
    // Both sides settle before a failure is reported, so no connection is left half-open behind it.
    await settleAll([
      target.open([...new Set([...hostsUsed(stage, services), ...hostsOfInterrupted(interrupted)])]),
      // From the previous stage only one host per service is needed: the release is the same on all.
      source?.open([...new Set([...services.map((s) => from!.services[s]!.hosts[0]!), ...Object.values(from!.loadBalancers).flatMap((lb) => (lb.host ? [lb.host] : []))])]),
    ]);

    logger.debug('connected');
    const abandoned = await settleInterrupted(interrupted, stage, target, state, options);
    if (abandoned && interrupted) return { plan: interrupted.start.plan, applied: false, skipped: abandoned, durationMs: Date.now() - started };
    const recorded = await store.read(stage.name);
    const live = await readLiveSlots(stage, target.balancers, recorded);
    logger.debug(`live slots read from the load balancers: ${Object.entries(live).map(([s, slot]) => `${s} ${slot}`).join(', ')}`);

    // What the target hosts hold is read while the release is brought in: the two do not depend on each other.
    const targetSlots = Promise.all(services.map((s) => allLimited(stage.services[s]!.hosts, stage.parallel, async (h) => [h, await readHostSlots(target.pool.get(h), stage.services[s]!)] as const)));
    // Handled where it is awaited; this keeps an early failure of the source from leaving it unobserved.
    targetSlots.catch(() => {});
    // So is what the previous stage's first host of each service holds (its live release is one of them).
    const sourceSlots = new Map(from && source ? services.map((s) => [s, readSourceSlots(source.pool.get(from.services[s]!.hosts[0]!), from.services[s]!)] as const) : []);
    for (const p of sourceSlots.values()) p.catch(() => {});
    let fromLive: Record<string, SlotName> | undefined;
    const fromState = from && source ? await store.read(from.name) : undefined;
    if (from && source) fromLive = await readLiveSlots(from, source.balancers, fromState);
    // Read before the release is named: {data} is the version the idle slot's database will have.
    const dataOf: Record<string, { data?: DataFacts; kept?: KeptData }> = {};
    for (const s of services) {
      if (options.codeOnly) {
        const kept = await readKeptData(stage, s, live[s]!);
        dataOf[s] = kept ? { kept } : {};
      } else {
        const data = await readDataFacts(stage, s, live[s]!, from, fromLive?.[s]);
        dataOf[s] = data ? { data } : {};
      }
    }

    const releases: Record<string, SourceRelease> = {};
    // The run holds an SSH connection to every host it reads or writes: rsync goes through it.
    const relay = relayRoute(true);
    if (from && source) {
      await Promise.all(services.map(async (s) => {
        const service = from.services[s]!;
        const hostName = service.hosts[0]!;
        const slots = await sourceSlots.get(s)!;
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
        // One read of the manifest serves the guard (its hash) and the pull (its file list).
        const manifest = await sourceManifest(project, source.pool.get(hostName), service, release, slots.manifestHashes[slot]);
        guardPassed(from, s, release, fromState, hostName, manifest.hash);
        releases[s] = await planPull(project, from, service, from.hosts[hostName]!, release, slot, relay, manifest.text);
        if (!options.dryRun) await runPull(project, from, service, releases[s]!, manifest.text, releases[s]!.fetch ? await source.openTunnel() : undefined);
      }));
    } else {
      for (const s of services) {
        releases[s] = await stageFirstSource(project, stage, stage.services[s]!, { now: now(), data: dataVersion(dataOf[s]!), git }, { dryRun: options.dryRun === true });
      }
    }

    logger.debug(`release ready: ${services.map((s) => `${s} ${releases[s]!.release} (${releases[s]!.source})`).join(', ')}`);
    const facts: Record<string, ServiceFacts> = {};
    const slotsByService = await targetSlots;
    for (const [i, s] of services.entries()) {
      const hostSlots = slotsByService[i]!;
      facts[s] = { live: live[s]!, release: releases[s]!.release, cacheDir: releases[s]!.cacheDir, source: releases[s]!.source, ...(releases[s]!.fetch ? { fetch: releases[s]!.fetch } : {}), hosts: Object.fromEntries(hostSlots) as Record<string, HostSlots>, ...dataOf[s] };
    }
    // A dry run checks disk too where it knows the release's size: the first stage measured its staging
    // copy; a later one finds the release in the local cache when this machine relayed it into the previous stage.
    if (!options.dryRun || services.every((s) => releases[s]!.bytes !== undefined || existsSync(releases[s]!.cacheDir))) await checkDiskSpace(stage, services, facts, releases);
    // Services not being promoted keep their slot; the plan needs them to rewrite the whole map.
    const allFacts = { ...facts };
    for (const [s, slot] of Object.entries(live)) if (!allFacts[s]) allFacts[s] = { live: slot, release: '', cacheDir: '', source: '', hosts: {} };

    const plan = buildPlan({ project, stage, from: from?.name ?? 'source', facts: allFacts, services, now: now(), codeOnly: options.codeOnly === true, relay });

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
    const journal = await state.journals.begin(plan);
    const notifier = runNotifier(stage.notify, plan, logger, options.runId ?? new Date(started).toISOString(), now);
    await notifier.started();
    const onStep = options.progress?.(plan);
    try {
      apply = await applyPlan({ stage, pool: target.pool, balancers, logger, warnings: [], transfers: [], reports: [], journal, tunnel: await target.openTunnel(), ...(onStep ? { onStep } : {}) }, plan);
    } catch (err) {
      await recordFailure(store, stage, plan, recorded, err, Date.now() - t0, now(), logger);
      await journal.finish(`failed: ${describeError(err)}`).catch((e: unknown) => logger.warn(`closing the journal: ${describeError(e)}`));
      await notifier.finished(err);
      throw err;
    }
    await journal.finish('ok');
    await recordSwitch(store, stage, plan, recorded, now(), { data: apply.data });
    const passed = await passedRecords(stage, plan, (s) => cachedCodeHash(releases[s]!.cacheDir), now());
    await recordPassed(store, stage.name, passed, plan);
    await appendRun(store, plan, 'ok', Date.now() - t0, now(), undefined, { passed, data: apply.data });
    await notifier.finished();
    return { plan, applied: true, apply, durationMs: Date.now() - started };
  } finally {
    await Promise.all([target.close(logger), source?.close(logger)]);
    await lock?.release().catch((err: unknown) => logger.warn(`could not release the lock: ${describeError(err)}`));
    await state.close().catch((err: unknown) => logger.warn(`closing the state store: ${describeError(err)}`));
  }
}

/**
 * Pipeline guard: the previous stage's live release goes on only if that stage recorded it as passed
 * (checked, switched to, kept) and the code on its host is still byte for byte what passed.
 */
function guardPassed(from: Stage, service: string, release: string, fromState: StageState | undefined, hostName: string, onHost: string): void {
  const record = fromState?.services[service]?.passed?.[release];
  if (!record) {
    throw new UpdateserverError(`${service} ${release}, live in ${from.name}, has no record of passing ${from.name} (it was not promoted there by updateserver, or its run did not finish)`, {
      hint: `promote it through ${from.name} first, so its checks run and are recorded: updateserver ${from.name} --force`,
    });
  }
  if (onHost !== record.codeHash) {
    throw new UpdateserverError(`${service} ${release} on ${hostName} (${from.name}) is not the code that passed ${from.name}: its manifest hashes to ${onHost.slice(0, 16)}..., the record says ${record.codeHash.slice(0, 16)}...`, {
      hint: `someone changed the release on ${hostName}; promote a clean release through ${from.name} again: updateserver ${from.name} --force`,
    });
  }
}
