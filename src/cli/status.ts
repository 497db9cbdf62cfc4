import { EXIT_OK } from '../errors.js';
import { renderStatus, stageStatus } from '../status/status.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';

export async function runStatus(stage: string, flags: { json?: boolean; project?: string; stateDir?: string }): Promise<number> {
  try {
    const status = await stageStatus(projectFrom(flags), stage);
    if (flags.json) printJson(status);
    else process.stdout.write(renderStatus(status));
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
