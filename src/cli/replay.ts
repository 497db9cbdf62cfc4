import { EXIT_OK } from '../errors.js';
import { createLogger } from '../log.js';
import { replay } from '../replay/replay.js';
import { printable } from '../config/text.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import { waitMsOf } from './arguments.js';
import type { PromoteFlags } from './options.js';

export async function runReplay(stage: string, flags: PromoteFlags & { run: string; skip?: string[] }): Promise<number> {
  const logger = createLogger({ consoleLevel: flags.verbose ? 'debug' : flags.quiet || flags.json ? 'warn' : 'info' });
  try {
    const result = await replay({ project: projectFrom(flags), stage, runId: flags.run, logger, dryRun: flags.dryRun === true, services: flags.service, skip: flags.skip ?? [], waitMs: waitMsOf(flags.wait) });
    if (flags.json) printJson({ ok: true, ...result });
    else {
      for (const s of result.services) {
        process.stdout.write(`${stage}: ${s.service}: ${result.dryRun ? 'would replay' : 'replayed'} ${s.applied} change(s) into ${s.database} in one transaction${s.skipped.length ? `; skipped ${s.skipped.length} already so` : ''}${s.leftOut.length ? `; left out: ${s.leftOut.join(', ')}` : ''}\n`);
        if (result.dryRun || flags.verbose) for (const sql of s.statements) process.stdout.write(`  sql> ${printable(sql)};\n`);
        for (const k of s.skipped) process.stdout.write(`  skipped: ${printable(k)}\n`);
      }
      if (result.dryRun) process.stdout.write(`\nDry run: the statements ran in a transaction that was rolled back; nothing was changed. Run \`updateserver replay ${stage} --run ${flags.run}\` to apply them.\n`);
    }
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  } finally {
    await logger.close();
  }
}
