import { createLogger } from '../log.js';
import { pruneRunLogs, runLogFile } from '../state/run-logs.js';
import { promote, type PromoteOptions, type PromoteResult } from '../promote/promote.js';
import type { Plan } from '../plan/plan.js';
import { Progress } from './progress.js';
import { printable } from '../config/text.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import { EXIT_OK } from '../errors.js';

import { waitMsOf } from './arguments.js';
import { parseSteps } from '../rollout/profile.js';
import type { PromoteFlags } from './options.js';
export type { PromoteFlags } from './options.js';

/** promote and flip share everything but the function that builds and applies the plan. */
export async function runPromote(stage: string, flags: PromoteFlags, action: 'promote' | 'flip' | 'rollback' = 'promote'): Promise<number> {
  const project = projectFrom(flags);
  const runId = new Date().toISOString().replace(/[:.]/g, '-');
  const logFile = runLogFile(project.stateDir, stage, action, runId);
  // The step list replaces the info lines on a terminal; elsewhere its plain lines come with them.
  const showProgress = !flags.json && !flags.quiet && !flags.dryRun;
  const liveList = showProgress && process.stderr.isTTY === true && !flags.verbose;
  const logger = createLogger({ file: flags.dryRun ? undefined : logFile, consoleLevel: flags.verbose ? 'debug' : flags.quiet || flags.json || liveList ? 'warn' : 'info' });
  try {
    const waitMs = waitMsOf(flags.wait);
    const steps = action === 'promote' ? parseSteps(flags.steps) : undefined;
    const options: PromoteOptions = { project, stage, logger, dryRun: flags.dryRun, services: flags.service, force: flags.force, codeOnly: flags.codeOnly, waitMs, abandon: flags.abandon, resume: flags.resume, runId, ...(steps ? { steps } : {}),
      ...(showProgress ? { progress: (plan: Plan) => new Progress(plan, process.stderr).onStep } : {}) };
    // How long Node took to load the command before any work: start-up is part of every run's wall time.
    logger.debug(`command loaded ${Math.round(process.uptime() * 1000)} ms after the process started`);
    const result: PromoteResult = action === 'promote' ? await promote(options) : await (await import('../promote/flip.js')).flip({ ...options, rollback: action === 'rollback' });
    if (flags.json) {
      printJson({ ok: true, applied: result.applied, skipped: result.skipped, durationMs: result.durationMs, plan: result.plan, timings: result.apply?.timings, transfers: result.apply?.transfers ?? [], checks: result.apply?.reports ?? [], warnings: result.apply?.warnings ?? [], ...(result.changes ? { changes: result.changes } : {}) });
    } else if (flags.dryRun) {
      // Escaped, not obeyed: a release name (from a VERSION file, a git tag) cannot rewrite the terminal.
      // Loaded only to print a plan: a run that applies does not need it (issue 17).
      const { renderPlan } = await import('../plan/render.js');
      process.stdout.write(printable(renderPlan(result.plan, { failures: flags.verbose ? 'full' : 'collapsed' }), { multiLine: true }));
      process.stdout.write(`\nDry run: nothing was changed. Run \`updateserver ${action === 'promote' ? '' : `${action} `}${stage}\` to apply this plan.\n`);
    } else if (!result.applied) {
      process.stdout.write(`Nothing to do: ${printable(result.skipped ?? '')}\n`);
    } else {
      for (const s of result.plan.services) {
        process.stdout.write(`${stage}: ${s.service} now serves ${s.release} from slot ${s.target} (slot ${s.live}${s.liveRelease ? ` with ${s.liveRelease}` : ''} stopped, kept for rollback)\n`);
      }
      for (const w of result.apply?.warnings ?? []) process.stdout.write(`warning: ${w}\n`);
      const phases = (result.apply?.timings ?? []).map((t) => `${t.phase.split(' ')[0]?.toLowerCase()} ${t.ms} ms`).join(', ');
      process.stdout.write(`done in ${result.durationMs} ms (${phases}); log: ${logFile}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    logger.debug(`failed: ${err instanceof Error ? err.message : String(err)}`);
    // The failed health check's report (attempts, last error) travels on the error's cause chain.
    const checks: unknown[] = [];
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      const report = (e as { report?: unknown }).report;
      if (report !== undefined) checks.push(report);
    }
    return fail(err, flags.json === true, { checks });
  } finally {
    await logger.close();
    if (!flags.dryRun) await pruneRunLogs(project.stateDir).catch(() => {});
  }
}

