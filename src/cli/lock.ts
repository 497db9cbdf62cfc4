import { loadProfile } from '../config/load.js';
import { EXIT_OK, ConfigError } from '../errors.js';
import { describeHolder } from '../state/lock.js';
import { withState } from '../state/backend.js';
import { fail, printJson } from './output.js';
import { projectFrom } from './project.js';
import type { PromoteFlags } from './options.js';

export async function runLock(action: string, stage: string, flags: PromoteFlags & { message?: string; ttl?: string; force?: boolean }): Promise<number> {
  try {
    const project = projectFrom(flags);
    const loaded = await loadProfile(project, stage); // an unknown stage is bad input, not an absent lock
    if (!['status', 'acquire', 'release'].includes(action)) {
      throw new ConfigError([{ file: 'command line', path: 'lock', message: `unknown lock action "${action}" (status, acquire, release)` }]);
    }
    const ttlMs = flags.ttl === undefined ? undefined : Number(flags.ttl) * 1000;
    if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0)) throw new ConfigError([{ file: 'command line', path: '--ttl', message: 'expected a number of seconds' }]);
    return await withState(project, loaded, async ({ locks: store }) => {
      if (action === 'status') {
        const holder = await store.read(stage);
        const stale = holder ? await store.stale(holder) : undefined;
        if (flags.json) printJson({ stage, locked: holder !== undefined, holder, stale: stale ?? null });
        else process.stdout.write(holder ? `${stage}: locked by ${describeHolder(holder)}${stale ? ` (stale: ${stale}; the next run takes it over)` : ''}\n` : `${stage}: not locked\n`);
        return EXIT_OK;
      }
      if (action === 'acquire') {
        const held = await store.acquire(stage, { heartbeat: false, message: flags.message ?? 'taken by hand', ...(ttlMs ? { ttlMs } : {}) });
        if (flags.json) printJson({ ok: true, lock: held.info });
        else process.stdout.write(`${stage}: locked by ${describeHolder(held.info)}; release it with: updateserver lock release ${stage}\n`);
        return EXIT_OK;
      }
      const holder = await store.read(stage);
      if (!holder) { process.stdout.write(`${stage}: not locked\n`); return EXIT_OK; }
      if (holder.heartbeat !== undefined && !(await store.stale(holder)) && !flags.force) {
        throw new ConfigError([{ file: 'command line', path: 'release', message: `stage ${stage} is held by a running command: ${describeHolder(holder)}` }],
          'let it finish; use --force only if you are sure that process is gone');
      }
      await store.forceRelease(stage);
      if (flags.json) printJson({ ok: true, released: holder });
      else process.stdout.write(`${stage}: released the lock held by ${describeHolder(holder)}\n`);
      return EXIT_OK;
    });
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
