/*
 * What a run does when the journal shows that an earlier run of the stage died: say so and stop
 * (nothing changed), or clean up after it (--abandon), or clean up and go on (--resume).
 */
import type { Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Interrupted } from '../state/journal.js';
import type { StateBackend } from '../state/backend.js';
import type { StageLink } from './stage-link.js';

export function describeInterrupted(i: Interrupted): string {
  const s = i.start;
  const where = i.lastStep ? `during "${i.lastStep.title}" (phase ${i.lastStep.phase}, ${i.lastStep.state === 'begin' ? 'unfinished' : i.lastStep.state})` : 'before its first step';
  return `an earlier ${s.plan.action} of ${s.plan.stage} by ${s.user}@${s.machine} (pid ${s.pid}, started ${s.at}) did not finish: it stopped ${where}`;
}

/** Refuses to go on past an interrupted run unless told how (and --abandon without one): checked before any connection. */
export function refuseUnlessTold(i: Interrupted | undefined, stage: string, options: { resume?: boolean; abandon?: boolean; dryRun?: boolean }): void {
  if (options.dryRun) return;
  if (options.abandon && !i) throw new UpdateserverError(`--abandon: no interrupted run of ${stage} to clean up after; nothing was changed`);
  if (!i || options.resume || options.abandon) return;
  throw new UpdateserverError(`${describeInterrupted(i)}; nothing was changed now`, {
    hint: `run again with --abandon to clean up after it (the slot that was live before it is not touched), or with --resume to clean up and then promote again`,
  });
}

/** Hosts the interrupted run's clean-up needs. */
export function hostsOfInterrupted(i: Interrupted | undefined): string[] {
  return i ? [...new Set(i.start.plan.services.flatMap((s) => s.hosts))] : [];
}

/**
 * Once connected: cleans up after the interrupted run, if any. Returns the summary when the run
 * should stop there (--abandon), undefined when it goes on.
 */
export async function settleInterrupted(i: Interrupted | undefined, stage: Stage, link: StageLink, state: StateBackend, options: { abandon?: boolean; dryRun?: boolean; logger: Logger }): Promise<string | undefined> {
  if (!i || options.dryRun) return undefined;
  const summary = await recoverInterrupted(i, stage, link, state, options.logger);
  return options.abandon ? `abandoned the interrupted run: ${summary}` : undefined;
}

async function recoverInterrupted(i: Interrupted, stage: Stage, link: StageLink, state: StateBackend, logger: Logger): Promise<string> {
  // Loaded only when there is an interrupted run: the usual run starts without this code (issue 17).
  const [{ recoverPlan }, { appendRun, passedRecords, recordPassed, recordSwitch }, { hostCodeHash }] = await Promise.all([import('../apply/apply.js'), import('./record.js'), import('../observe/code-hash.js')]);
  const { store } = state;
  const plan = i.start.plan;
  const ctx = { stage, pool: link.pool, balancers: link.balancerMap(), logger, warnings: [], transfers: [], reports: [] };
  const result = await recoverPlan(ctx, plan, i.phases);
  const now = new Date();
  let passed;
  if (result.switched) {
    await recordSwitch(store, stage, plan, await store.read(stage.name), now);
    // The drain had begun: the new release had passed its checks. Its code hash is read from a host.
    passed = await passedRecords(stage, plan, (s, release) => hostCodeHash(link.pool.get(stage.services[s]!.hosts[0]!), stage.services[s]!, release), now);
    await recordPassed(store, stage.name, passed, plan);
  }
  await appendRun(store, plan, result.switched ? 'ok' : 'failed', 0, now, `interrupted run cleaned up: ${result.summary}`, { passed });
  await state.journals.archive(i, `cleaned up: ${result.summary}`);
  logger.warn(`${describeInterrupted(i)}. Cleaned up: ${result.summary}`);
  return result.summary;
}
