/*
 * The one shape of every command that changes something (promote, flip, rollback, refresh,
 * maintenance, purge): validate, lock, connect, read (observe), plan (a pure function of what was
 * read), then either stop there (a dry run, or nothing to do) or journal, notify, apply and record.
 * Whether a run is a dry run is decided here and nowhere else: the verbs only read and plan; a dry run
 * is the same run stopped after its plan.
 */
import type { Project, Stage } from '../config/model.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Plan, PlanVerb } from '../plan/plan.js';
import type { ApplyResult } from '../apply/apply.js';
import type { ApplyContext, StepEvent } from '../apply/context.js';
import type { RunSummary } from '../notify/email.js';
import type { ChangeCounts, ChangeReport } from '../data/changes/report.js';
import { openState, type StateBackend } from '../state/backend.js';
import type { StageState } from '../state/store.js';
import type { Interrupted } from '../state/journal.js';
import { StageLink, type Instrument } from '../promote/stage-link.js';
import { lockStage } from '../promote/lock.js';
import { describeInterrupted, hostsOfInterrupted, refuseUnlessTold, settleInterrupted } from '../promote/interrupted.js';
import { checkSameRelease, describeResume } from '../promote/resume-rollout.js';
import { settleAll } from '../transport/runner.js';
import { connecting } from '../transport/ssh.js';
import { withInstrument } from './instrument.js';
import type { LeftBehind } from '../promote/left-writes.js';

/** What the person running the command asked for, the same for every verb. */
export interface RunRequest {
  project: Project;
  logger: Logger;
  dryRun?: boolean;
  /** Wait up to this long for another run's lock. */
  waitMs?: number;
  /** After an interrupted run: clean up after it and stop (abandon) or go on (resume). */
  abandon?: boolean;
  resume?: boolean;
  now?: () => Date;
  /** Names the run in notifications (default: its start time). */
  runId?: string;
  /** Given the plan before it is applied; the listener it returns hears every step (the progress display). */
  progress?: (plan: Plan) => ((event: StepEvent) => void) | undefined;
  /** Wrappers around the run's connections and database clients (the recording test). */
  instrument?: Instrument;
  /** Who asked, for history: the console's signed-in user; the operating system's user by default. */
  user?: string;
}

/** Everything a verb's read phase may look at: the connections, the state store and what it recorded. */
export interface Observed {
  target: StageLink;
  /** The other stages opened for reading (promote: the previous stage; refresh: the later one). */
  others: StageLink[];
  state: StateBackend;
  recorded: StageState | undefined;
  request: RunRequest;
  /**
   * The run will stop after its plan (a dry run). Reading never writes anyway; the one reader that must
   * know is the first stage's staging of a release, which a run that applies names in the relay cache
   * and a read-only run stages outside the state directory.
   */
  readOnly: boolean;
}

/** A verb's plan, or the reason there is nothing to do (the plan is still shown). */
export interface Planned { plan: Plan; skipped?: string }

export interface Verb<Facts> {
  name: PlanVerb;
  stage: Stage;
  /** Hosts of the stage the run connects to (besides an interrupted run's). */
  hosts: readonly string[];
  /** Other stages only read: opened beside the stage, settled together. */
  others?: ReadonlyArray<{ stage: Stage; hosts: readonly string[] }>;
  /** Verbs that move traffic settle an interrupted run of the stage first (promote, flip, rollback). */
  settlesInterrupted?: boolean;
  /**
   * With --resume: the interrupted run's own plan to go on with instead of cleaning up after it, when
   * the verb can (a promotion stopped in the middle of its rollout: src/promote/resume-rollout.ts).
   */
  resumeFrom?(interrupted: Interrupted, stage: Stage): Plan | undefined;
  /**
   * Run without the stage's lock (and so without a journal: the stage's journal belongs to the lock
   * holder). Only for an operator's explicit emergency override (maintenance --force).
   */
  lockFree?: boolean;
  /** Verbs whose runs the profile's webhook hears about (those that move traffic). */
  notifies?: boolean;
  /** The read phase: everything the plan depends on. Changes nothing. */
  observe(run: Observed): Promise<Facts>;
  /** The planner: a pure function of what was read. */
  plan(facts: Facts, run: Observed): Planned;
  /** Extra context the apply needs (promote: rsync's tunnel over the run's connections). */
  applyContext?(run: Observed, facts: Facts): Promise<Partial<ApplyContext>>;
  /**
   * What a run that applied its plan leaves in the state store (after the journal is closed); it may
   * return what was written to the slot traffic left (a flip or rollback: src/promote/left-writes.ts).
   */
  recorded?(run: Observed, plan: Plan, apply: ApplyResult, facts: Facts, durationMs: number): Promise<LeftReport | void>;
  /**
   * A failed run's report of what was written to the slot it left (an automatic rollback), before it is
   * recorded: `left` is what the failure path's report step found.
   */
  failed?(run: Observed, plan: Plan, err: unknown, left: LeftBehind | undefined): Promise<LeftReport | undefined>;
  /** What the release mail adds for a run that applied its plan (promote: the changes since the previous live release). */
  notifyFacts?(run: Observed, plan: Plan, apply: ApplyResult, facts: Facts): Promise<Pick<RunSummary, 'changes'>>;
  /** Whether the history keeps a line for a failed run of this verb (recordFailure). */
  recordsFailures?: boolean;
  /**
   * Starts loading the code the verb needs once connected (its read phase and planner), called when
   * the run's first TCP connection has begun: loading overlaps the handshakes (issue 17).
   */
  prefetch?(): Promise<unknown>;
}

/** What users wrote to the slot traffic left: the report (history, --json) and its counts (the webhook). */
export interface LeftReport { changes?: ChangeReport | undefined; written?: ChangeCounts | undefined }

export interface RunResult<Facts> {
  /** A flip or rollback: what was written to the slot traffic left. */
  changes?: ChangeReport;
  plan: Plan;
  applied: boolean;
  /** Why nothing was applied, when nothing was. */
  skipped?: string;
  apply?: ApplyResult;
  facts?: Facts;
  durationMs: number;
}

export async function runVerb<Facts>(request: RunRequest, verb: Verb<Facts>): Promise<RunResult<Facts>> {
  return withInstrument(request.instrument, () => run(request, verb));
}

/**
 * What a run loads only once its connections are being opened: applying, recording and notifying are
 * not needed before the first connection, and a command that starts sooner reaches it sooner (issue 17,
 * docs/decisions/0012-start-up-round-trips-fleet.md). Each import is cached by the module loader: the first call loads.
 */
const applyCode = () => import('../apply/apply.js');
const recordCode = () => import('../promote/record.js');
const notifyCode = () => import('../notify/notify.js');

async function run<Facts>(request: RunRequest, verb: Verb<Facts>): Promise<RunResult<Facts>> {
  const started = Date.now();
  const now = request.now ?? (() => new Date());
  const { project, logger, stage } = { ...request, stage: verb.stage };
  const dryRun = request.dryRun === true;
  const state = openState(project, stage);
  const target = new StageLink(stage, request.instrument);
  const others = (verb.others ?? []).map((o) => new StageLink(o.stage, request.instrument));
  // A dry run takes no lock (it only reports the holder): it changes nothing another run could see.
  // The holder's message names who asked when it is not the process's own user (the console).
  const lock = verb.lockFree ? undefined : await lockStage(state, stage.name, { dryRun, ...(request.waitMs === undefined ? {} : { waitMs: request.waitMs }), logger,
    ...(request.user ? { message: `updateserver console: ${request.user}: ${verb.name} ${stage.name}` } : {}) });
  try {
    let interrupted: Interrupted | undefined;
    if (verb.settlesInterrupted) {
      interrupted = await state.journals.readInterrupted(stage.name);
      refuseUnlessTold(interrupted, stage.name, { dryRun, ...(request.abandon ? { abandon: true } : {}), ...(request.resume ? { resume: true } : {}) });
    }
    const hosts = [...new Set([...verb.hosts, ...hostsOfInterrupted(interrupted)])];
    logger.info(`connecting to ${hosts.length} host(s) of ${stage.name}${others.length ? ` and ${others.map((o) => `the hosts of ${o.stage.name} it reads`).join(', ')}` : ''}`);
    // Every side settles before a failure is reported, so no connection is left half-open behind it.
    const opening = settleAll([target.open(hosts), ...others.map((o, i) => o.open(verb.others![i]!.hosts))]);
    // Once the first TCP connection has begun, the rest of the run's code loads while the handshakes run.
    // A failure to load surfaces where the code is used; this only starts it.
    void connecting.then(() => Promise.all([verb.prefetch?.(), ...(dryRun ? [] : [applyCode(), recordCode(), ...(verb.notifies ? [notifyCode()] : [])])])).catch(() => {});
    await opening;
    logger.debug('connected');
    // --resume in the middle of a rollout goes on from the step it had reached, the split left as it is.
    const resumed = request.resume && interrupted && !dryRun ? verb.resumeFrom?.(interrupted, stage) : undefined;
    if (verb.settlesInterrupted && !resumed) {
      const abandoned = await settleInterrupted(interrupted, stage, target, state, { dryRun, ...(request.abandon ? { abandon: true } : {}), logger });
      if (abandoned && interrupted) return { plan: interrupted.start.plan, applied: false, skipped: abandoned, durationMs: Date.now() - started };
    }
    const observed: Observed = { target, others, state, recorded: await state.store.read(stage.name), request, readOnly: dryRun };
    const facts = await verb.observe(observed);
    const fresh = verb.plan(facts, observed);
    if (resumed && interrupted) {
      checkSameRelease(resumed, fresh.plan);
      await state.journals.archive(interrupted, `resumed by pid ${process.pid}: ${describeResume(interrupted)}`);
      logger.warn(`${describeInterrupted(interrupted)}; ${describeResume(interrupted)}`);
    }
    const { plan, skipped } = resumed ? { plan: resumed, skipped: undefined } : fresh;
    if (skipped !== undefined) return { plan, applied: false, skipped, facts, durationMs: Date.now() - started };
    if (dryRun) return { plan, applied: false, skipped: 'dry run', facts, durationMs: Date.now() - started };

    const t0 = Date.now();
    const journal = verb.lockFree ? undefined : await state.journals.begin(plan);
    // One run id for the notifications, the hooks' environment and the console.
    const runId = request.runId ?? new Date(started).toISOString();
    const [{ applyPlan }, { appendRun, recordFailure }] = await Promise.all([applyCode(), recordCode()]);
    const notifier = verb.notifies ? (await notifyCode()).runNotifier(stage.notify, plan, logger, runId, now) : undefined;
    await notifier?.started();
    const onStep = request.progress?.(plan);
    let apply: ApplyResult;
    let ctx: ApplyContext | undefined;
    try {
      const extra = await verb.applyContext?.(observed, facts) ?? {};
      ctx = {
        stage, pool: target.pool, balancers: target.balancerMap(), logger, warnings: [], transfers: [], reports: [], runId, rollouts: state.rollouts, ...(journal ? { journal } : {}), ...extra, ...(onStep ? { onStep } : {}),
        report: { stateDir: project.stateDir, recorded: observed.recorded, now },
      };
      apply = await applyPlan(ctx, plan);
    } catch (err) {
      // Recording the failure never hides it.
      const left = await verb.failed?.(observed, plan, err, ctx?.left);
      if (verb.recordsFailures !== false) await recordFailure(state.store, stage, plan, observed.recorded, err, Date.now() - t0, now(), logger, request.user, left?.changes);
      await journal?.finish(`failed: ${describeError(err)}`).catch((e: unknown) => logger.warn(`closing the journal: ${describeError(e)}`));
      await notifier?.finished(err, { written: left?.written });
      throw err;
    }
    await journal?.finish('ok');
    const left = verb.recorded ? await verb.recorded(observed, plan, apply, facts, Date.now() - t0) : undefined;
    // A verb that moves no slot says what it did in its history line: its phases' titles.
    if (!verb.recorded) await appendRun(state.store, plan, 'ok', Date.now() - t0, now(), plan.services.length > 0 ? undefined : plan.phases.filter((p) => p.items.length > 0).map((p) => p.title).join('; '), { user: request.user });
    if (notifier) {
      // Read while the hosts are still connected; a failure here is the mail's, never the run's.
      const extraFacts = stage.notify?.email && verb.notifyFacts ? await verb.notifyFacts(observed, plan, apply, facts).catch((e: unknown) => { logger.warn(`the release mail's list of changes: ${describeError(e)}`); return {}; }) : {};
      await notifier.finished(undefined, { data: apply.data, warnings: apply.warnings, ...extraFacts, written: left ? left.written : undefined });
    }
    return { plan, applied: true, apply, facts, durationMs: Date.now() - started, ...(left && left.changes ? { changes: left.changes } : {}) };
  } finally {
    await Promise.all([target.close(logger), ...others.map((o) => o.close(logger))]);
    await lock?.release().catch((err: unknown) => logger.warn(`could not release the lock: ${describeError(err)}`));
    await state.close().catch((err: unknown) => logger.warn(`closing the state store: ${describeError(err)}`));
  }
}
