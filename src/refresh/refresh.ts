/*
 * `updateserver refresh <stage> --from <later stage>`: a later stage's live data copied back into an
 * earlier stage's idle (or a named, not live) slot database, then the earlier stage's `refresh.after`
 * SQL run on the copy (seed 002: production's data every night in development, with what must not
 * leak, such as users' e-mail addresses, rewritten). The later stage is only read: its database is
 * opened read-only and dumped from one consistent snapshot (never by TEMPLATE, which would hold its
 * new connections for the copy); nothing on its hosts or load balancers changes.
 */
import { loadPipeline } from '../config/load.js';
import { connectionOf, type Database, type DatabaseConnection, type Project, type SlotName, type Stage } from '../config/model.js';
import { ConfigError } from '../errors.js';
import { describeConnection } from '../data/connection.js';
import { refuseUnsafeTarget, type SnapshotResult } from '../data/snapshot.js';
import { readLiveSlots } from '../observe/live.js';
import { selectServices } from '../promote/stage-link.js';
import { PLAN_VERSION, type Action, type Plan, type PlanItem } from '../plan/plan.js';
import { runVerb, type RunRequest } from '../run/run.js';
import { DEFAULT_SLOT, idleSlot } from '../config/slot.js';
import { readHostSlots } from '../observe/slots.js';
import { allLimited } from '../transport/runner.js';
import { refreshFilesActions, refreshFilesServices, refreshFilesSteps, type FilesRefreshStep } from './files.js';

export interface RefreshOptions extends RunRequest {
  stage: string;
  from: string;
  services?: string[];
  /** The slot whose database is replaced; default the idle one. Never the live one. */
  slot?: SlotName;
}

export interface RefreshStep {
  service: string;
  slot: SlotName;
  source: DatabaseConnection;
  target: DatabaseConnection;
  /** The earlier stage's live slot database: never replaced. */
  live: DatabaseConnection;
  jobs: number;
  after: readonly string[];
}

export interface RefreshResult {
  stage: string;
  from: string;
  steps: RefreshStep[];
  /** Services whose `files:` data directories are refreshed (src/refresh/files.ts). */
  files: FilesRefreshStep[];
  applied: boolean;
  snapshots: SnapshotResult[];
  durationMs: number;
  plan: Plan;
}

/** The stages from `from` back to the first one; `stage` must be among them, before `from`. */
export async function refreshPipeline(project: Project, stageName: string, fromName: string): Promise<{ stage: Stage; from: Stage }> {
  const chain = await loadPipeline(project, fromName);
  const order = [...chain].reverse().map((s) => s.name).join(' -> ');
  const stage = chain.find((s) => s.name === stageName);
  if (stageName === fromName || !stage) {
    throw new ConfigError([{
      file: 'command line', path: '--from',
      message: stageName === fromName ? `a stage cannot be refreshed from itself ("${stageName}")` : `${fromName} is not later than ${stageName} in the pipeline (${order}): refresh copies a later stage's data back to an earlier one`,
    }]);
  }
  return { stage, from: chain[0]! };
}

/**
 * The services to refresh, with every rule that needs only the profiles: run before the lock or any
 * connection, so that a wrong --service or a service without a database is refused as bad input.
 */
export function refreshServices(stage: Stage, from: Stage, services: readonly string[] | undefined): Array<{ name: string; db: Database; fromDb: Database }> {
  const wanted = selectServices(stage, services);
  const out: Array<{ name: string; db: Database; fromDb: Database }> = [];
  for (const name of wanted) {
    const db = stage.services[name]!.database;
    if (!db || db.strategy === 'none') {
      // A service with data in files only is refreshed by src/refresh/files.ts.
      if (services?.includes(name) && !stage.services[name]!.files) throw new ConfigError([{ file: stage.file, path: `services.${name}.database`, message: `service ${name} has no database or files to refresh in ${stage.name}` }]);
      continue;
    }
    const fromDb = Object.hasOwn(from.services, name) ? from.services[name]?.database : undefined;
    if (!fromDb) throw new ConfigError([{ file: from.file, path: `services.${name}.database`, message: `${from.name} gives ${name} no database to refresh ${stage.name} from` }]);
    if (fromDb.engine !== db.engine) throw new ConfigError([{ file: stage.file, path: `services.${name}.database.engine`, message: `${name} is ${db.engine} here but ${fromDb.engine} in ${from.name}` }]);
    if (db.strategy === 'shared') {
      throw new ConfigError([{ file: stage.file, path: `services.${name}.database.strategy`, message: `${name} shares one database between its slots in ${stage.name}: it is always live, and refresh never replaces a live database` }]);
    }
    out.push({ name, db, fromDb });
  }
  if (out.length === 0 && !wanted.some((n) => stage.services[n]!.files)) throw new ConfigError([{ file: stage.file, path: 'services', message: `no service of ${stage.name} has a database or files to refresh` }]);
  return out;
}

/** What will be copied where, checked before anything is changed. */
export function refreshSteps(stage: Stage, from: Stage, live: { stage: Record<string, SlotName>; from: Record<string, SlotName> }, opts: { services?: string[]; slot?: SlotName }): RefreshStep[] {
  const steps: RefreshStep[] = [];
  for (const { name, db, fromDb } of refreshServices(stage, from, opts.services)) {
    const liveSlot = live.stage[name] ?? DEFAULT_SLOT;
    const slot = opts.slot ?? idleSlot(liveSlot);
    if (slot === liveSlot) {
      throw new ConfigError([{ file: 'command line', path: '--slot', message: `slot ${slot} of ${name} is live in ${stage.name}: refresh replaces only a slot that serves no traffic (the idle one is ${idleSlot(liveSlot)})` }]);
    }
    steps.push({ service: name, slot, source: connectionOf(fromDb, live.from[name] ?? DEFAULT_SLOT), target: connectionOf(db, slot), live: connectionOf(db, liveSlot), jobs: db.jobs, after: db.refreshAfter });
  }
  for (const s of steps) refuseUnsafeTarget(s.source, s.target, [s.live]);
  return steps;
}

/**
 * The planner: per service, the copy (never by TEMPLATE: that would hold the later stage's new
 * connections for the copy) and refresh.after on it, in one transaction on PostgreSQL (all or nothing),
 * statement by statement on MySQL.
 */
export function planRefresh(stage: Stage, from: Stage, steps: readonly RefreshStep[], live: Record<string, SlotName>, now: Date, files: readonly FilesRefreshStep[] = [], stateDir = '.updateserver'): Plan {
  const items: PlanItem[] = steps.map((step) => {
    const actions: Action[] = [{
      kind: 'data-copy', service: step.service, source: step.source, target: step.target, jobs: step.jobs, frozen: false, fastPath: 'off', live: step.live,
      title: `copy ${from.name}'s live ${describeConnection(step.source)} into slot ${step.slot}'s ${describeConnection(step.target)} (read-only, one snapshot)`,
    }];
    if (step.after.length > 0) {
      actions.push({
        kind: 'sql', service: step.service, connection: step.target, statements: step.after, transaction: step.target.engine === 'postgres',
        title: `run refresh.after (${step.after.length} statement(s)) on the copy`,
        hint: 'the copy is in the database but not renamed: fix refresh.after in the profile and run refresh again before using it',
      });
    }
    return { target: step.service, actions };
  });
  // Data in files: after the service's database, in the same item (one service, one story).
  for (const step of files) {
    const actions = refreshFilesActions(stage, step, stateDir);
    const item = items.find((i) => i.target === step.service);
    if (item) item.actions.push(...actions);
    else items.push({ target: step.service, actions });
  }
  return {
    version: PLAN_VERSION, action: 'refresh', stage: stage.name, from: from.name, createdAt: now.toISOString(), services: [], liveAfter: live,
    // Nothing live is touched: a failure leaves the idle slot's database to be refreshed again.
    phases: [{ name: 'data', title: `Copy ${from.name}'s live data into ${stage.name}'s idle slot${files.length > 0 ? (steps.length > 0 ? ' databases and files' : '\'s files') : ' databases'}`, policy: 'fail', items }],
    onFailure: [],
  };
}

export async function refresh(options: RefreshOptions): Promise<RefreshResult> {
  const { project } = options;
  const { stage, from } = await refreshPipeline(project, options.stage, options.from);
  refreshServices(stage, from, options.services);
  const filesServices = refreshFilesServices(stage, from, selectServices(stage, options.services));
  const now = options.now ?? (() => new Date());
  // Only the load balancers are asked (over SSH when they are remote): they decide what is live.
  const lbHosts = (s: Stage) => Object.values(s.loadBalancers).flatMap((lb) => (lb.host ? [lb.host] : []));
  // The earlier stage is the one changed: its lock keeps a promotion from replacing the same database
  // meanwhile. The two stages share one state store (checked with the pipeline).
  // Hosts of services with files are connected too: their idle slot is stopped before its files are
  // replaced. The later stage's host is reached by the plan's own rsync and ssh commands (OpenSSH).
  const filesHosts = filesServices.flatMap((s) => stage.services[s]!.hosts);
  const result = await runVerb<{ steps: RefreshStep[]; files: FilesRefreshStep[]; live: Record<string, SlotName> }>(options, {
    name: 'refresh', stage, hosts: [...new Set([...lbHosts(stage), ...filesHosts])], others: [{ stage: from, hosts: lbHosts(from) }],
    observe: async (run) => {
      const here = await readLiveSlots(stage, run.target.balancers, run.recorded);
      const there = await readLiveSlots(from, run.others[0]!.balancers, await run.state.store.read(from.name));
      const live = { stage: here, from: there };
      const steps = refreshSteps(stage, from, live, options);
      // The release each idle slot points at: its stop command may name {release}.
      const releases: Record<string, Record<string, string>> = {};
      for (const s of filesServices) {
        const target = options.slot ?? idleSlot(here[s] ?? DEFAULT_SLOT);
        const read = await allLimited(stage.services[s]!.hosts, stage.parallel, async (h) => [h, (await readHostSlots(run.target.pool.get(h), stage.services[s]!)).releases[target] ?? ''] as const);
        releases[s] = Object.fromEntries(read);
      }
      return { steps, files: refreshFilesSteps(stage, from, filesServices, live, releases, options.slot), live: here };
    },
    plan: (facts) => ({ plan: planRefresh(stage, from, facts.steps, facts.live, now(), facts.files, project.stateDir) }),
  });
  return { stage: stage.name, from: from.name, steps: result.facts?.steps ?? [], files: result.facts?.files ?? [], applied: result.applied, snapshots: result.apply?.snapshots ?? [], durationMs: result.durationMs, plan: result.plan };
}
