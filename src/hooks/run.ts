/*
 * Runs one hook action of a plan (issue 19): its line, exactly as planned, with the facts known only
 * now (the run id; for failed/finished the result) put in front. Its output goes to the run log
 * whatever the outcome, and into the error naming the host when it fails. What a failure does is the
 * plan's word (`failure`): stop and roll back throw; warn becomes a warning of the run.
 */
import { HostError, describeError } from '../errors.js';
import { runLocal } from '../transport/local.js';
import type { ExecResult } from '../transport/transport.js';
import type { Action } from '../plan/plan.js';
import type { ApplyContext } from '../apply/context.js';
import { hookLineAtRun } from '../plan/hooks.js';

type HookAction = Extract<Action, { kind: 'hook' }>;

/** The exit status `timeout` gives when it ended the command. */
const TIMED_OUT = 124;
/** How much output a failure message carries (the run log has all of it). */
const TAIL_LINES = 10;

export class HookFailed extends HostError {
  constructor(host: string, readonly point: string, readonly output: string, message: string) {
    super(host, message, { hint: 'fix the hook or what it found; its whole output is in the run\'s log (<state dir>/logs/, named at the end of the run)' });
  }
}

function outputOf(r: ExecResult | undefined): string {
  return r ? [r.stdout.trim(), r.stderr.trim()].filter((x) => x !== '').join('\n') : '';
}

export async function runHook(ctx: ApplyContext, action: HookAction, facts: Record<string, string> = {}): Promise<void> {
  const line = hookLineAtRun(action, { UPDATESERVER_RUN_ID: ctx.runId ?? '', ...facts });
  const where = action.host ?? 'local';
  const t0 = Date.now();
  let result: ExecResult | undefined;
  let error: unknown;
  try {
    // `timeout` in the line ends the command; this bound is for a host that stops answering.
    const bound = { timeoutMs: action.timeoutMs + 10_000 };
    result = action.host ? await ctx.pool.get(action.host).exec(line, bound) : await runLocal(['bash', '-c', line], { host: 'local', ...bound });
  } catch (err) {
    error = err;
  }
  const output = outputOf(result);
  const ms = Date.now() - t0;
  const fields = { host: where, hook: action.point, service: action.service, run: action.run, exitStatus: result?.code ?? null, ms, stdout: result?.stdout ?? '', stderr: result?.stderr ?? '' };
  if (error === undefined && result?.code === 0) {
    ctx.logger.info(`${action.point} hook ok (${ms} ms): ${action.run}${output ? `\n${output}` : ''}`, fields);
    return;
  }
  const why = error !== undefined ? describeError(error)
    : result?.code === TIMED_OUT ? `timed out after ${action.timeoutMs} ms` : `exit ${result?.code ?? 'signal'}`;
  const tail = output.split('\n').slice(-TAIL_LINES).join('\n');
  const failed = new HookFailed(where, action.point, output, `${action.point} hook of ${action.service} failed (${why}): ${action.run}${tail ? `\n${tail}` : ''}`);
  if (action.failure !== 'warn') {
    ctx.logger.error(failed.message, fields);
    throw failed;
  }
  const note = `(a warning: ${action.point === 'after-switch' ? 'not critical, the new release stays live' : 'the run\'s result is not changed'})`;
  ctx.logger.warn(`${failed.message}\n${note}`, fields);
  ctx.warnings.push(`${failed.message.split('\n')[0]} ${note}`);
}

/**
 * The plan's `finally` (failed when `error` is set, then finished): never throws, so the run's own
 * result and error are what the caller reports. Hooks of one phase run one target after another.
 */
export async function runFinally(ctx: ApplyContext, phases: readonly import('../plan/plan.js').Phase[] | undefined, error: unknown, rolledBack: boolean): Promise<void> {
  const facts = {
    UPDATESERVER_RESULT: error === undefined ? 'ok' : rolledBack ? 'rolled-back' : 'failed',
    UPDATESERVER_ERROR: error === undefined ? '' : describeError(error).split('\n')[0]!.slice(0, 1000),
  };
  for (const phase of phases ?? []) {
    if (phase.name === 'failed' && error === undefined) continue;
    for (const item of phase.items) {
      for (const action of item.actions) {
        if (action.kind !== 'hook') continue;
        try {
          await runHook(ctx, { ...action, failure: 'warn' }, facts);
        } catch (err) {
          ctx.logger.warn(`${phase.name} hook on ${item.target}: ${describeError(err)}`);
        }
      }
    }
  }
}
