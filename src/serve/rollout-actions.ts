/*
 * The console's answer to a paused rollout (issue 20 with issue 22, docs/decisions/0017): a page per
 * stage showing where its rollout stands (the paused step, its deadline, the shares recorded), and the
 * continue and abort buttons, which do exactly what `updateserver continue|abort <stage>` does
 * (src/rollout/control.ts) with the signed-in user's name: the paused run logs who answered, and an
 * abort's message (the history's line, the release marked bad, the webhook and mail) names them. Same
 * rule as a release: only a user with the release right on the stage may answer; a view-only user sees
 * the page without the buttons, and a POST from them is refused (403). The CSRF token is checked by the
 * server before the route is reached, as for every POST.
 */
import type { Project, Stage } from '../config/model.js';
import { describeError, UpdateserverError } from '../errors.js';
import { answerPause, type PauseAnswer } from '../rollout/control.js';
import { withState } from '../state/backend.js';
import type { RolloutProgress } from '../state/rollout-control.js';
import { esc, page } from './html.js';
import { rightOn, type User } from './users.js';

export interface Reply { status: number; html: string }

/** The routes: GET /stages/<stage>/rollout, POST /stages/<stage>/rollout/(continue|abort). */
export const ROLLOUT_PAGE = /^\/stages\/([^/]+)\/rollout$/;
export const ROLLOUT_ANSWER = /^\/stages\/([^/]+)\/rollout\/(continue|abort)$/;

function describeProgress(p: RolloutProgress | undefined): string {
  if (!p) return '<p>No rollout has recorded its progress in this stage.</p>';
  const state = p.state === 'paused'
    ? `<strong>paused</strong> at step ${esc(p.step)} of ${esc(p.steps)} (${esc(p.weight)}% of requests to ${esc(p.newBackend)}) since ${esc(p.since)}; it aborts by itself at ${esc(p.deadline)}`
    : `at step ${esc(p.step)} of ${esc(p.steps)} (${esc(p.weight)}%) since ${esc(p.since)}, judged by its gates`;
  return `<p>Rollout of <strong>${esc(p.service)}</strong>: ${state} (run pid ${esc(p.pid)}).</p><p>The live gate figures: <code>updateserver status ${esc(p.stage)}</code>.</p>`;
}

export async function rolloutPage(project: Project, stage: Stage, user: User, csrf: string): Promise<Reply> {
  const progress = await withState(project, stage, (s) => s.rollouts.readProgress(stage.name));
  const canAnswer = rightOn(user, stage.name) === 'release' && progress?.state === 'paused';
  const form = (action: PauseAnswer, label: string, cls = '') => `<form class="inline" method="post" action="/stages/${encodeURIComponent(stage.name)}/rollout/${action}"><input type="hidden" name="csrf" value="${esc(csrf)}"><button${cls} type="submit">${label}</button></form>`;
  const buttons = canAnswer
    ? `<p>${form('continue', 'Continue the rollout')} ${form('abort', 'Abort: all traffic back on the old slot', ' class="secondary"')}</p>`
    : progress?.state === 'paused' ? `<p class="readonly">${esc(user.name)} may view ${esc(stage.name)} but not answer its rollout.</p>` : '';
  return { status: 200, html: page(`Rollout in ${stage.name}`, `${describeProgress(progress)}${buttons}<p><a href="/">Back to the pipeline</a></p>`, { user: user.name, csrf }) };
}

export async function answerFromConsole(project: Project, stage: Stage, user: User, csrf: string, action: PauseAnswer, waitMs?: number): Promise<Reply> {
  const opts = { user: user.name, csrf };
  if (rightOn(user, stage.name) !== 'release') return { status: 403, html: page('Refused', `<p>${esc(user.name)} may view ${esc(stage.name)} but not answer its rollout.</p>`, opts) };
  try {
    const { progress, waitedMs } = await answerPause(project, stage, action, { user: user.name, via: 'console', ...(waitMs === undefined ? {} : { waitMs }) });
    return { status: 200, html: page(`Rollout in ${stage.name}`, `<p class="ok">The paused run took <strong>${esc(action)}</strong> from ${esc(user.name)} at step ${esc(progress.step)} of ${esc(progress.service)} (${esc(progress.weight)}%) after ${esc(waitedMs)} ms.</p><p><a href="/">Back to the pipeline</a></p>`, opts) };
  } catch (err) {
    // Nothing paused, or the run gone: the operator's request was not taken (409), said as the CLI says it.
    const status = err instanceof UpdateserverError ? 409 : 500;
    return { status, html: page('Not taken', `<p class="bad">${esc(describeError(err))}</p><p><a href="/stages/${encodeURIComponent(stage.name)}/rollout">Back</a></p>`, opts) };
  }
}
