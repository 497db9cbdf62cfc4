/*
 * `updateserver <stage>`: read the world, build the plan, apply it, record the result.
 * This file (what comes before the first connection) and promote-read.ts (the read phase, the planner
 * and the recording, loaded while the handshakes run) are the whole story of a promotion; each step
 * lives in its own module.
 */
import { loadPipeline } from '../config/load.js';

import { ConfigError } from '../errors.js';
import { checkMigrationFiles } from '../config/migration-files.js';
import type { Plan } from '../plan/plan.js';
import type { ApplyResult } from '../apply/apply.js';
import type { FilesOutput } from '../data/files-left.js';
import type { ChangeReport } from '../data/changes/report.js';
import { hostsUsed, selectServices } from './stage-link.js';
import { relayRoute } from '../commands/relay.js';
import { resolveGitSource } from '../release/git.js';
import { runVerb, type RunRequest } from '../run/run.js';
import { resumedRolloutPlan } from './resume-rollout.js';
import type { PromoteFacts, PromoteInput } from './promote-read.js';
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
  const input: PromoteInput = { options, stage, from, services, git, relay, now };
  // The read phase, the planner and the recording load while the first handshakes run (issue 17).
  let read: typeof import('./promote-read.js') | undefined;
  const later = async () => (read ??= await import('./promote-read.js'));
  return runVerb<PromoteFacts>(options, {
    name: 'promote', stage, hosts: hostsUsed(stage, services), settlesInterrupted: true, notifies: true, resumeFrom: resumedRolloutPlan,
    // From the previous stage only one host per service is needed: the release is the same on all.
    ...(from ? { others: [{ stage: from, hosts: [...new Set([...services.map((s) => from.services[s]!.hosts[0]!), ...Object.values(from.loadBalancers).flatMap((lb) => (lb.host ? [lb.host] : []))])] }] } : {}),
    prefetch: later,
    observe: async (run) => (await later()).observePromotion(input, run),
    // The planner runs after the read phase, which loaded its module.
    plan: (facts, run) => {
      if (!read) throw new Error('internal: a promotion planned before its read phase');
      return read.planPromotion(input, facts, run);
    },
    // The pull step checks against the manifests the read phase saw; rsync's tunnels go over the run's connections.
    applyContext: async (run, facts) => ({
      tunnel: await run.target.openTunnel(), outputs,
      pull: { manifests: new Map(Object.values(facts.pulls).map((p) => [p.hash, p.manifest])), tunnel: () => run.others[0]!.openTunnel() },
    }),
    // An automatic rollback left the new slot behind with whatever users wrote to it meanwhile; the
    // failure path reported it (its report-changes step, src/plan/failure.ts).
    failed: async (_run, _plan, err, left) => (await later()).failedPromotion(err, left),
    notifyFacts: async (run, plan, _apply, facts) => (await later()).promotionChanges(input, run, plan, facts),
    recorded: async (run, plan, apply, facts, durationMs) => (await later()).recordPromotion(input, run, plan, apply, facts, durationMs),
  });
}
