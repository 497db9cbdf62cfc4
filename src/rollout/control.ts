/*
 * `updateserver continue <stage>` and `updateserver abort <stage>` (and the console's buttons, which
 * call the same function): answer the pause of the run that holds the stage's lock, through the state
 * backend the run polls (src/rollout/pause.ts). The answer names the pause it is for, so it never ends
 * a later one; the caller waits until the run says it took it, and takes it back if no run does.
 */
import { userInfo } from 'node:os';
import type { Project, Stage } from '../config/model.js';
import { UpdateserverError } from '../errors.js';
import { withState } from '../state/backend.js';
import type { RolloutProgress, RolloutRequest } from '../state/rollout-control.js';

export type PauseAnswer = 'continue' | 'abort';

export interface Answered { progress: RolloutProgress; request: RolloutRequest; waitedMs: number }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The stage's paused rollout whose run still holds the lock, or why there is none (thrown). */
export function pausedOf(stage: string, progress: RolloutProgress | undefined, lockPid: number | undefined): RolloutProgress {
  if (!progress || progress.state !== 'paused') {
    throw new UpdateserverError(`no rollout of ${stage} is paused${progress ? ` (the rollout of ${progress.service} is at step ${progress.step}, ${progress.weight}%, judged by its gates)` : ''}; nothing was changed`, { hint: `updateserver status ${stage} shows where a rollout stands` });
  }
  if (lockPid !== progress.pid) {
    throw new UpdateserverError(`the run that paused the rollout of ${progress.service} in ${stage} (pid ${progress.pid}) no longer holds the stage's lock: it ended or died; nothing was changed`, { hint: `updateserver status ${stage}; after a run that died: updateserver ${stage} --resume (go on) or --abandon (all traffic back on the old slot)` });
  }
  return progress;
}

export async function answerPause(project: Project, stage: Stage, action: PauseAnswer, options: { user?: string; via?: 'cli' | 'console'; waitMs?: number } = {}): Promise<Answered> {
  return withState(project, stage, async (state) => {
    // A lock whose process is gone (killed while paused) still names its pid: stale is no holder.
    const holder = await state.locks.read(stage.name);
    const stale = holder ? await state.locks.stale(holder) : undefined;
    const progress = pausedOf(stage.name, await state.rollouts.readProgress(stage.name), stale ? undefined : holder?.pid);
    const request: RolloutRequest = { stage: stage.name, id: progress.id, action, user: options.user ?? userInfo().username, at: new Date().toISOString(), via: options.via ?? 'cli' };
    await state.rollouts.request(request);
    const t0 = Date.now();
    const waitMs = options.waitMs ?? 15_000;
    try {
      for (;;) {
        const seen = await state.rollouts.readRequest(stage.name);
        if (seen?.id === request.id && seen.at === request.at && seen.answered) return { progress, request: seen, waitedMs: Date.now() - t0 };
        if (seen && (seen.id !== request.id || seen.at !== request.at)) throw new UpdateserverError(`another operator answered the pause of ${stage.name} at the same time (${seen.action} by ${seen.user}); this ${action} was not taken`);
        if (Date.now() - t0 >= waitMs) {
          throw new UpdateserverError(`the paused run of ${stage.name} (pid ${progress.pid}) did not take the ${action} within ${waitMs} ms; it was withdrawn`, { hint: `updateserver status ${stage.name}; updateserver lock status ${stage.name}` });
        }
        await sleep(100);
      }
    } finally {
      // Taken or not, the request is done with: the run acts on it once.
      await state.rollouts.clearRequest(stage.name).catch(() => {});
    }
  });
}
