/*
 * updateserver refresh <stage> --from <later stage>: the later stage's live data into the earlier
 * stage's idle slot database (src/refresh/refresh.ts). Prints what it did, or with --dry-run what it
 * would do; --json for scripts (a nightly cron job).
 */
import { createLogger } from '../log.js';
import { pruneRunLogs, runLogFile } from '../state/run-logs.js';
import { EXIT_OK } from '../errors.js';
import { describeConnection } from '../data/connection.js';
import { refresh, type RefreshResult } from '../refresh/refresh.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import { printable } from '../config/text.js';
import { waitMsOf } from './arguments.js';
import type { PromoteFlags } from './options.js';
import { parseSlot } from '../config/slot.js';
import { renderPlan } from '../plan/render.js';

export interface RefreshFlags extends PromoteFlags { from?: string; slot?: string }

function render(r: RefreshResult, dryRun: boolean): string {
  const out: string[] = [dryRun ? `Plan: refresh ${r.stage} from ${r.from}'s live data` : `${r.stage}: refreshed from ${r.from}'s live data`];
  for (const [i, s] of r.steps.entries()) {
    const done = r.snapshots[i];
    out.push(`  ${s.service}: slot ${s.slot} ${describeConnection(s.target)} <- ${describeConnection(s.source)} (read-only, one snapshot)`);
    out.push(done
      ? `    copied ${done.tables} table(s), ${done.rows} row(s) in ${done.ms} ms; row counts match`
      : `    ${s.source.engine === 'postgres' ? `pg_dump -Z0 | pg_restore${s.jobs > 1 ? ` (-j ${s.jobs})` : ''}` : 'mysqldump --single-transaction | mysql'}; compare row counts`);
    out.push(s.after.length === 0 ? '    refresh.after: nothing to run' : `    refresh.after (${s.after.length} statement(s)${s.target.engine === 'postgres' ? ', one transaction' : ''}):`);
    for (const sql of s.after) out.push(`      ${sql}`);
  }
  for (const f of r.files) {
    out.push(`  ${f.service}: slot ${f.slot}'s files (${f.paths.join(', ')}) on ${f.hosts.join(', ')} <- ${f.source.stage}'s ${f.service}/${f.source.slot} on ${f.source.host.name}`);
    out.push(`    ${f.command ? `"${f.command}" there first, then ` : ''}rsync (delta) through the local cache; size and SHA-256 of every file compared${dryRun ? '' : ': they match'}`);
  }
  out.push('', dryRun
    ? `Dry run: nothing was changed. Run \`updateserver refresh ${r.stage} --from ${r.from}\` to apply.`
    : `The refreshed slot serves no traffic; \`updateserver flip ${r.stage}\` sends traffic to it.`);
  return `${out.join('\n')}\n`;
}

export async function runRefresh(stage: string, flags: RefreshFlags): Promise<number> {
  const project = projectFrom(flags);
  const runId = new Date().toISOString().replace(/[:.]/g, '-');
  const logFile = runLogFile(project.stateDir, stage, 'refresh', runId);
  const logger = createLogger({ file: flags.dryRun ? undefined : logFile, consoleLevel: flags.verbose ? 'debug' : flags.quiet || flags.json ? 'warn' : 'info' });
  try {
    const slot = parseSlot(flags.slot);
    const waitMs = waitMsOf(flags.wait);
    const result = await refresh({
      // commander requires --from.
      project, stage, from: flags.from ?? '', logger, dryRun: flags.dryRun === true, waitMs,
      ...(flags.service ? { services: flags.service } : {}), ...(slot ? { slot } : {}),
    });
    if (flags.json) {
      printJson({
        ok: true, applied: result.applied, stage: result.stage, from: result.from, durationMs: result.durationMs,
        services: result.steps.map((s, i) => ({
          service: s.service, slot: s.slot, source: describeConnection(s.source), target: describeConnection(s.target), after: s.after,
          ...(result.snapshots[i] ? { snapshot: result.snapshots[i] } : {}),
        })),
        files: result.files.map((f) => ({ service: f.service, slot: f.slot, paths: f.paths, hosts: f.hosts, source: { stage: f.source.stage, host: f.source.host.name, slot: f.source.slot }, ...(f.command ? { command: f.command } : {}) })),
      });
    } else {
      process.stdout.write(printable(render(result, flags.dryRun === true), { multiLine: true }));
      // Every step with its exact command (the copies of files are commands on the hosts and here).
      if (flags.dryRun && flags.verbose) process.stdout.write(printable(`\n${renderPlan(result.plan, { failures: 'full' })}`, { multiLine: true }));
    }
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  } finally {
    await logger.close();
    if (!flags.dryRun) await pruneRunLogs(project.stateDir).catch(() => {});
  }
}
