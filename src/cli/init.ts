import { resolve } from 'node:path';
import { EXIT_OK } from '../errors.js';
import { initProject } from '../init/init.js';
import { fail, printJson } from './output.js';

export async function runInit(dir: string | undefined, flags: { force?: boolean; json?: boolean }): Promise<number> {
  try {
    const result = await initProject(resolve(dir ?? process.cwd()), { force: flags.force === true });
    if (flags.json) {
      printJson({ ok: true, ...result });
      return EXIT_OK;
    }
    process.stdout.write(`Wrote a starter project in ${result.dir}:\n${result.written.map((f) => `  ${f}${result.overwritten.includes(f) ? ' (overwritten)' : ''}\n`).join('')}`);
    process.stdout.write('\nNext: put the code to release in app/, replace the example addresses in profiles/dev.yaml and\n' +
      'profiles/prod.yaml with your hosts and load balancers, then run `updateserver check dev`: it says what\n' +
      'to fix. `updateserver dev` makes the first release.\n');
    return EXIT_OK;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
