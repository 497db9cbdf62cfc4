/* `updateserver continue <stage>` / `updateserver abort <stage>`: answer a paused rollout (src/rollout/control.ts). */
import { loadProfile } from '../config/load.js';
import { EXIT_OK } from '../errors.js';
import { answerPause, type PauseAnswer } from '../rollout/control.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';

export async function runPauseAnswer(action: PauseAnswer, stage: string, flags: PromoteFlags): Promise<number> {
  try {
    const project = projectFrom(flags);
    const loaded = await loadProfile(project, stage);
    const { progress, request, waitedMs } = await answerPause(project, loaded, action, { via: 'cli' });
    if (flags.json) printJson({ ok: true, stage, action, service: progress.service, step: progress.step, weight: progress.weight, user: request.user, answered: request.answered, waitedMs });
    else process.stdout.write(`${stage}: the paused run (pid ${progress.pid}) took "${action}" at step ${progress.step} of ${progress.service} (${progress.weight}%) after ${waitedMs} ms; ${action === 'continue' ? 'the rollout goes on' : 'all traffic goes back to the old slot and the new release is marked bad'} (its own output says how it ends)\n`);
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
