import { loadProfile } from '../config/load.js';
import { EXIT_OK } from '../errors.js';
import { describeData } from '../state/store.js';
import { withState } from '../state/backend.js';
import { fail, printJson } from './output.js';
import { integerOption } from './arguments.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';

export async function runHistory(stage: string, flags: PromoteFlags & { limit?: string }): Promise<number> {
  try {
    const limit = integerOption('--limit', flags.limit, 1, 100_000) ?? 20;
    const project = projectFrom(flags);
    const loaded = await loadProfile(project, stage);
    const entries = await withState(project, loaded, (s) => s.store.history(stage, limit));
    if (flags.json) { printJson(entries); return EXIT_OK; }
    if (entries.length === 0) process.stdout.write(`${stage}: no runs recorded yet\n`);
    for (const e of entries) {
      const what = Object.entries(e.services).map(([s, x]) => `${s} ${x.from}->${x.to} ${x.release}${x.data ? ` (data ${describeData(x.data)})` : ''}`).join(', ');
      process.stdout.write(`${e.at}  ${e.action.padEnd(11)} ${e.result.padEnd(11)} ${e.user}  ${what}  (${e.durationMs} ms)${e.message ? `\n    ${e.message.split('\n')[0]}` : ''}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
