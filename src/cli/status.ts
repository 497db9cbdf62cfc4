import { EXIT_FAILED, EXIT_OK } from '../errors.js';
import { renderStatus, stageStatus } from '../status/status.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';

export async function runStatus(stage: string, flags: { json?: boolean; project?: string; stateDir?: string }): Promise<number> {
  try {
    const status = await stageStatus(projectFrom(flags), stage);
    if (flags.json) printJson(status);
    else process.stdout.write(renderStatus(status));
    // A problem (load balancers disagreeing with each other or with the record, a host unreachable) is
    // shown above and makes the exit status 1, so scripts and monitoring notice it.
    return status.problems.length > 0 ? EXIT_FAILED : EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
