/*
 * `updateserver <stage>`: read the world, build the plan, apply it, record the result.
 * This file is the whole story of a promotion; each step lives in its own module.
 */
import { loadPipeline } from '../config/load.js';
import type { SlotName, Stage } from '../config/model.js';

import { ConfigError, UpdateserverError } from '../errors.js';
import { checkMigrationFiles } from '../config/migration-files.js';
import { readLiveSlots } from '../observe/live.js';
import { readHostSlots, readSourceSlots } from '../observe/slots.js';
import { buildPlan, type DataFacts, type HostSlots, type KeptData, type ServiceFacts } from '../plan/build.js';
import type { Plan } from '../plan/plan.js';
import { PromotionFailed, type ApplyResult } from '../apply/apply.js';
import { reportAutomaticRollback } from './left-writes.js';
import type { FilesOutput } from '../data/files-left.js';
import type { ChangeReport } from '../data/changes/report.js';
import { hostsUsed, selectServices } from './stage-link.js';
import { appendRun, passedRecords, recordPassed, recordSwitch } from './record.js';
import { cachedCodeHash } from '../observe/code-hash.js';
import type { StageState } from '../state/store.js';
import { allLimited } from '../transport/runner.js';
import { planPull, sourceManifest, stageFirstSource, type SourceRelease } from './source.js';
import { relayRoute } from '../commands/relay.js';
import { resolveGitSource } from '../release/git.js';
import { checkDiskSpace } from './preflight.js';
import { dataVersion, readDataFacts, readKeptData } from './data-facts.js';
import { existsSync } from 'node:fs';
import { releaseChanges } from '../notify/changes.js';
import { runVerb, type Observed, type Planned, type RunRequest } from '../run/run.js';
import { rolloutOf, type Rollout } from '../rollout/profile.js';

export interface PromoteOptions extends RunRequest {
  stage: string;
  /** Promote only these services (all when empty). */
  services?: string[];
  /** Promote even when the stage already runs the release. */
  force?: boolean;
  /** Skip the data step: no snapshot, copy or migration; each idle slot keeps the database it has. */
  codeOnly?: boolean;
  /** --steps 5,25,50: a progressive rollout with these weights (src/rollout/profile.ts). */
  steps?: number[];
  /** Resolved from the profiles and --steps by promote() before any connection; not set by callers. */
  rollouts?: Record<string, Rollout>;
}

export interface PromoteResult {
  plan: Plan;
  applied: boolean;
  /** Why nothing was applied, when nothing was. */
  skipped?: string;
  apply?: ApplyResult;
  durationMs: number;
  /** A rollback or flip: what was written to the slot traffic left (src/promote/left-writes.ts). */
  changes?: ChangeReport;
}

export async function promote(options: PromoteOptions): Promise<PromoteResult> {
  const now = options.now ?? (() => new Date());
  const { project } = options;
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
  // A rollout is refused for a service whose slots have two databases, before any connection (exit 2).
  const rollouts: Record<string, Rollout> = {};
  for (const s of services) {
    const r = rolloutOf(stage.services[s]!, options.steps);
    if (r) rollouts[s] = r;
  }
  options = { ...options, rollouts };
  // Migration files are input like the profiles: a misnamed file or a version defined twice stops the run here.
  await checkMigrationFiles(project, stage, services);
  // A git source's ref is resolved before the lock or any connection: an unknown ref changes nothing.
  const git = stage.source?.kind === 'git' ? await resolveGitSource(stage, stage.source) : undefined;
  // The run holds an SSH connection to every host it reads or writes: rsync goes through it.
  const relay = relayRoute(true);
  // An automatic rollback's steps that list the files left in the new slot print into this.
  const outputs: FilesOutput[] = [];
  return runVerb<PromoteFacts>(options, {
    name: 'promote', stage, hosts: hostsUsed(stage, services), settlesInterrupted: true, notifies: true,
    // From the previous stage only one host per service is needed: the release is the same on all.
    ...(from ? { others: [{ stage: from, hosts: [...new Set([...services.map((s) => from.services[s]!.hosts[0]!), ...Object.values(from.loadBalancers).flatMap((lb) => (lb.host ? [lb.host] : []))])] }] } : {}),
    observe: (run) => observePromotion({ options, stage, from, services, git, relay, now }, run),
    plan: (facts, run) => planPromotion({ options, stage, from, services, git, relay, now }, facts, run),
    // The pull step checks against the manifests the read phase saw; rsync's tunnels go over the run's connections.
    applyContext: async (run, facts) => ({
      tunnel: await run.target.openTunnel(), outputs,
      pull: { manifests: new Map(Object.values(facts.pulls).map((p) => [p.hash, p.manifest])), tunnel: () => run.others[0]!.openTunnel() },
    }),
    // An automatic rollback left the new slot behind with whatever users wrote to it meanwhile.
    failed: async (run, plan, err) => {
      if (!(err instanceof PromotionFailed && err.rolledBack)) return undefined;
      const left = await reportAutomaticRollback(stage, plan, run.recorded, options.runId ?? new Date().toISOString(), project.stateDir, options.logger, outputs);
      return left ? { changes: left.report, written: left.counts } : undefined;
    },
    // The release mail lists what changed since the previous live release.
    notifyFacts: async (run, plan, _apply, facts) => ({ changes: await releaseChanges(project, stage, plan, run.target.pool, Object.fromEntries(services.map((s) => [s, facts.releases[s]!.cacheDir]))) }),
    recorded: async (run, plan, apply, facts, durationMs) => {
      const { store } = run.state;
      await recordSwitch(store, stage, plan, run.recorded, now(), { data: apply.data });
      const passed = await passedRecords(stage, plan, (s) => cachedCodeHash(facts.releases[s]!.cacheDir), now());
      await recordPassed(store, stage.name, passed, plan);
      await appendRun(store, plan, 'ok', durationMs, now(), undefined, { passed, data: apply.data, user: run.request.user });
    },
  });
}

/** What a promotion reads before it plans. */
interface PromoteFacts {
  services: Record<string, ServiceFacts>;
  releases: Record<string, SourceRelease>;
  /** Per service of a later stage: the source host's manifest the pull checks against, and its hash. */
  pulls: Record<string, { hash: string; manifest: string }>;
}

interface PromoteInput {
  options: PromoteOptions;
  stage: Stage;
  from: Stage | undefined;
  services: string[];
  git: Awaited<ReturnType<typeof resolveGitSource>> | undefined;
  relay: ReturnType<typeof relayRoute>;
  now: () => Date;
}

/** The read phase: live slots on both stages, what each target host holds, the data facts, the release to promote. */
async function observePromotion(input: PromoteInput, run: Observed): Promise<PromoteFacts> {
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
function planPromotion(input: PromoteInput, facts: PromoteFacts, run: Observed): Planned {
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
