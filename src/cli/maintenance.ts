import { EXIT_OK, ConfigError } from '../errors.js';
import { createLogger } from '../log.js';
import { setMaintenance, type MaintenanceMode } from '../maintenance/maintenance.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';
import { waitMsOf } from './arguments.js';
import { renderPlan } from '../plan/render.js';
import { printable } from '../config/text.js';

const MODES: readonly MaintenanceMode[] = ['on', 'off', 'read-only'];

export async function runMaintenance(stage: string, mode: string, flags: PromoteFlags): Promise<number> {
  const logger = createLogger({ consoleLevel: flags.verbose ? 'debug' : flags.quiet || flags.json ? 'warn' : 'info' });
  try {
    if (!(MODES as readonly string[]).includes(mode)) {
      throw new ConfigError([{ file: 'command line', path: 'mode', message: `"${mode}" is not a maintenance mode (on, read-only, off)` }]);
    }
    const result = await setMaintenance({ project: projectFrom(flags), stage, mode: mode as MaintenanceMode, services: flags.service, logger, dryRun: flags.dryRun === true, waitMs: waitMsOf(flags.wait), force: flags.force === true });
    if (flags.json) printJson({ ok: true, ...result });
    else if (!result.applied) {
      process.stdout.write(printable(renderPlan(result.plan, { failures: flags.verbose ? 'full' : 'collapsed' }), { multiLine: true }));
      process.stdout.write(`\nDry run: nothing was changed. Run \`updateserver maintenance ${stage} ${mode}\` to apply this plan.\n`);
    } else process.stdout.write(`${stage}: ${result.services.join(', ')} ${mode === 'off' ? 'back in normal service' : mode === 'on' ? 'in maintenance (every request gets the maintenance page)' : 'read-only (writes get 503, reads are served)'} on ${result.loadBalancers.join(', ')}\n`);
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  } finally {
    await logger.close();
  }
}
