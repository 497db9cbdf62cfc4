import { EXIT_OK } from '../errors.js';
import { createLogger } from '../log.js';
import { purge } from '../purge/purge.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import { integerOption, waitMsOf } from './arguments.js';
import type { PromoteFlags } from './options.js';

export async function runPurge(stage: string, flags: PromoteFlags & { keep?: string }): Promise<number> {
  const logger = createLogger({ consoleLevel: flags.verbose ? 'debug' : flags.quiet || flags.json ? 'warn' : 'info' });
  try {
    // At least 2: the two slots' releases are always kept.
    const keep = integerOption('--keep', flags.keep, 2, 100);
    const result = await purge({ project: projectFrom(flags), stage, keep, services: flags.service, dryRun: flags.dryRun === true, waitMs: waitMsOf(flags.wait), logger });
    if (flags.json) printJson({ ok: true, ...result });
    else {
      if (result.removed.length === 0) process.stdout.write(`${stage}: nothing to remove (at most ${result.keep} complete releases per service on each host)\n`);
      for (const r of result.removed) process.stdout.write(`${stage}: ${result.dryRun ? 'would remove' : 'removed'} ${r.releases.length} release(s) of ${r.service} on ${r.host}: ${r.releases.join(', ')}\n`);
      for (const r of result.incomplete) process.stdout.write(`${stage}: left ${r.releases.length} incomplete release(s) of ${r.service} on ${r.host}: ${r.releases.join(', ')} (a copy that did not finish; the next promotion reuses or removes it)\n`);
    }
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  } finally {
    await logger.close();
  }
}
