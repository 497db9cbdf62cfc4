/*
 * A promotion once its connections are open: the read phase, the planner and what the run records.
 * Loaded by promote.ts while the first handshakes run, not before the first connection (issue 17,
 * docs/decisions/0012-start-up-round-trips-fleet.md): none of this is needed to validate the profiles and connect.
 */
import type { SlotName, Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { readLiveSlots } from '../observe/live.js';
import { readHostSlots, readSourceSlots } from '../observe/slots.js';
import { buildPlan, type DataFacts, type HostSlots, type KeptData, type ServiceFacts } from '../plan/build.js';
import type { Plan } from '../plan/plan.js';
import { PromotionFailed, type ApplyResult } from '../apply/apply.js';
import type { LeftBehind } from './left-writes.js';
import { appendRun, passedRecords, recordPassed, recordSwitch } from './record.js';
import { cachedCodeHash } from '../observe/code-hash.js';
import type { StageState } from '../state/store.js';
import { allLimited } from '../transport/runner.js';
import { planPull, sourceManifest, stageFirstSource, type SourceRelease } from './source.js';
import type { relayRoute } from '../commands/relay.js';
import type { resolveGitSource } from '../release/git.js';
import { checkDiskSpace } from './preflight.js';
import { dataVersion, readDataFacts, readKeptData } from './data-facts.js';
import { existsSync } from 'node:fs';
import { releaseChanges } from '../notify/changes.js';
import type { Observed, Planned, LeftReport } from '../run/run.js';
import type { PromoteOptions } from './promote.js';

/** What a promotion reads before it plans. */
export interface PromoteFacts {
  services: Record<string, ServiceFacts>;
  releases: Record<string, SourceRelease>;
  /** Per service of a later stage: the source host's manifest the pull checks against, and its hash. */
  pulls: Record<string, { hash: string; manifest: string }>;
}

export interface PromoteInput {
  options: PromoteOptions;
  stage: Stage;
  from: Stage | undefined;
  services: string[];
  git: Awaited<ReturnType<typeof resolveGitSource>> | undefined;
  relay: ReturnType<typeof relayRoute>;
  now: () => Date;
}

/** The read phase: live slots on both stages, what each target host holds, the data facts, the release to promote. */
export async function observePromotion(input: PromoteInput, run: Observed): Promise<PromoteFacts> {
  const { options, stage, from, services, git, relay, now } = input;
  const { project, logger } = options;
  const target = run.target;
  const source = run.others[0];
  const { store } = run.state;
  const recorded = run.recorded;
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
  const pulls: PromoteFacts['pulls'] = {};
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
      // The manifest's text comes from the local cache when its hash is the one the probe read.
      const manifest = await sourceManifest(project, source.pool.get(hostName), service, release, slots.manifestHashes[slot]);
      guardPassed(from, s, release, fromState, hostName, manifest.hash);
      releases[s] = await planPull(project, from, service, from.hosts[hostName]!, release, slot, relay, manifest.text);
      pulls[s] = { hash: manifest.hash, manifest: manifest.text };
    }));
  } else {
    // One time for the run: the services released together carry the same {date} in their names.
    const at = now();
    for (const s of services) {
      // The first stage's release is staged where the run can name it; a read-only run stages it outside the state directory.
      releases[s] = await stageFirstSource(project, stage, stage.services[s]!, { now: at, data: dataVersion(dataOf[s]!), git }, { dryRun: run.readOnly });
    }
  }

  logger.debug(`release ready: ${services.map((s) => `${s} ${releases[s]!.release} (${releases[s]!.source})`).join(', ')}`);
  const facts: Record<string, ServiceFacts> = {};
  const slotsByService = await targetSlots;
  for (const [i, s] of services.entries()) {
    const hostSlots = slotsByService[i]!;
    facts[s] = { live: live[s]!, release: releases[s]!.release, cacheDir: releases[s]!.cacheDir, source: releases[s]!.source, ...(releases[s]!.fetch ? { fetch: releases[s]!.fetch } : {}), ...(from && pulls[s] ? { pull: { from: from.name, manifestHash: pulls[s]!.hash } } : {}), hosts: Object.fromEntries(hostSlots) as Record<string, HostSlots>, ...dataOf[s] };
    // files strategy copy (issue 18): the previous stage's live slot, on its first host of the service.
    const fromService = from?.services[s];
    if (from && fromService && stage.services[s]!.files?.strategy === 'copy') facts[s]!.filesSource = { stage: from.name, host: from.hosts[fromService.hosts[0]!]!, root: fromService.root, slot: fromLive![s]! };
  }
  // The disk check needs the release's size: the first stage measured its staging copy; a later one
  // finds the release in the local cache when this machine relayed it into the previous stage. A
  // read-only run without either skips it (the pull that would tell is not made).
  if (!run.readOnly || services.every((s) => releases[s]!.bytes !== undefined || existsSync(releases[s]!.cacheDir))) await checkDiskSpace(stage, services, facts, releases);
  // Services not being promoted keep their slot; the plan needs them to rewrite the whole map.
  for (const [s, slot] of Object.entries(live)) if (!facts[s]) facts[s] = { live: slot, release: '', cacheDir: '', source: '', hosts: {} };
  return { services: facts, releases, pulls };
}

/** The planner: the plan, or why there is nothing to do (already live), or a refusal (marked bad). */
export function planPromotion(input: PromoteInput, facts: PromoteFacts, run: Observed): Planned {
  const { options, stage, from, services, relay, now } = input;
  const f = facts.services;
  const plan = buildPlan({ project: options.project, stage, from: from?.name ?? 'source', facts: f, services, now: now(), codeOnly: options.codeOnly === true, relay, ...(options.rollouts ? { rollouts: options.rollouts } : {}) });
  const recorded = run.recorded;
  const badHere = services.filter((s) => recorded?.services[s]?.bad?.[f[s]!.release] !== undefined);
  if (badHere.length > 0 && !options.force) {
    throw new UpdateserverError(`${badHere.map((s) => `${s} ${f[s]!.release} is marked bad in ${stage.name}: ${recorded!.services[s]!.bad![f[s]!.release]}`).join('\n')}`, {
      hint: 'promote a fixed release, or --force to try this one again',
    });
  }
  const current = services.filter((s) => Object.values(f[s]!.hosts).every((h) => h.releases[f[s]!.live] === f[s]!.release && h.running[f[s]!.live]));
  if (current.length === services.length && !options.force) {
    return { plan, skipped: `${stage.name} already runs ${services.map((s) => `${s} ${f[s]!.release}`).join(', ')} (use --force to promote it again)` };
  }
  return { plan };
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

/** An automatic rollback left the new slot behind with whatever users wrote to it meanwhile. */
export function failedPromotion(err: unknown, left: LeftBehind | undefined): LeftReport | undefined {
  if (!(err instanceof PromotionFailed && err.rolledBack) || !left) return undefined;
  return { changes: left.report, written: left.counts };
}

/** The release mail lists what changed since the previous live release. */
export async function promotionChanges(input: PromoteInput, run: Observed, plan: Plan, facts: PromoteFacts) {
  const { options, stage, services } = input;
  return { changes: await releaseChanges(options.project, stage, plan, run.target.pool, Object.fromEntries(services.map((s) => [s, facts.releases[s]!.cacheDir]))) };
}

/** What a promotion that applied its plan records: the switch, what passed the stage, the history line. */
export async function recordPromotion(input: PromoteInput, run: Observed, plan: Plan, apply: ApplyResult, facts: PromoteFacts, durationMs: number): Promise<void> {
  const { stage, now } = input;
  const { store } = run.state;
  await recordSwitch(store, stage, plan, run.recorded, now(), { data: apply.data });
  const passed = await passedRecords(stage, plan, (s) => cachedCodeHash(facts.releases[s]!.cacheDir), now());
  await recordPassed(store, stage.name, passed, plan);
  await appendRun(store, plan, 'ok', durationMs, now(), undefined, { passed, data: apply.data, user: run.request.user });
}
